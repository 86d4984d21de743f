package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Report is the outcome of a run.
type Report struct {
	// Config is the run's configuration, defaults filled in.
	Config Config
	// Duration is the measured window as it ran: shorter than
	// Config.Duration if the run was cancelled.
	Duration  time.Duration
	Cancelled bool
	// Counts are the outcomes of the requests sent in the measured
	// window, and the invalid replies received from its start on.
	Counts
	// RTT holds the round-trip times of the valid replies to measured
	// requests: from just before the request's send call to the
	// kernel's receive timestamp of the reply.
	RTT Histogram
	// CPU is nil if the run was cancelled before the measured window
	// began or the server's process exited during it.
	CPU *CPU
}

// CPU is the CPU time used during the measured window.
type CPU struct {
	// Generator is the CPU time of this process, all threads.
	Generator time.Duration
	// Server is the CPU time of the server's process, all threads, if
	// Config.ServerPID is set. Its resolution is 10 ms.
	Server time.Duration
	// CPUs is the busy time of Config.ServerCPUs, if set, summed. Its
	// resolution is 10 ms per CPU.
	CPUs time.Duration
	// Requests and Replies count the requests sent and the replies
	// matched to a request (valid or rejected) whose send time or kernel
	// receive time falls in the measured window, whichever window their
	// request belongs to: the divisors for the CPU time per request and
	// per reply.
	Requests, Replies uint64
}

// share returns d as a percentage of one CPU's time over the window of r.
func (r *Report) share(d time.Duration) float64 {
	if r.Duration <= 0 {
		return 0
	}
	return 100 * float64(d) / float64(r.Duration)
}

// Percentiles reported, as fractions and as names.
var percentiles = [...]struct {
	q    float64
	name string
}{{0.5, "p50"}, {0.9, "p90"}, {0.99, "p99"}, {0.999, "p99.9"}}

func perSecond(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func micros(d time.Duration) float64 { return float64(d) / 1e3 }

// mode describes the load.
func (r *Report) mode() string {
	c := &r.Config
	load := fmt.Sprintf("closed loop, %d requests outstanding", c.Concurrency)
	if c.Rate > 0 {
		load = fmt.Sprintf("open loop, %d requests/s in ticks of %v", c.Rate, c.Tick)
	}
	from := ""
	if c.SourceAddrs > 1 {
		from = fmt.Sprintf(" from %d addresses", c.SourceAddrs)
	}
	return fmt.Sprintf("%s, %d sockets%s, %d %s", load, c.Sockets, from, c.Workers, plural(c.Workers, "worker"))
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}

// WriteText writes r for a person to read.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	line := func(k, format string, a ...any) {
		fmt.Fprintf(&b, "%-16s"+format+"\n", append([]any{k}, a...)...)
	}
	line("server", "%v", r.Config.Server)
	line("load", "%s", r.mode())
	window := fmt.Sprintf("%.3f s after %v of warmup, timeout %v", r.Duration.Seconds(), r.Config.Warmup, r.Config.Timeout)
	if r.Cancelled {
		window += " (cancelled)"
	}
	line("window", "%s", window)
	r.writeCounts(line)
	r.writeRTT(line)
	r.writeCPU(line)
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) writeCounts(line func(k, format string, a ...any)) {
	c := &r.Counts
	line("sent", "%12d  %12.1f/s", c.Sent, perSecond(c.Sent, r.Duration))
	line("answered", "%12d  %12.1f/s", c.Answered, perSecond(c.Answered, r.Duration))
	line("lost", "%12d  %12.3f %%", c.Lost, 100*c.LossRatio())
	other := ""
	if c.OtherRejected > 0 {
		other = fmt.Sprintf(", other %d", c.OtherRejected)
	}
	line("rejected", "%12d  (kiss-o'-death %s; unsynchronized %d, bad version %d, bad timestamps %d%s)",
		c.Rejected(), kissText(c), c.Unsynchronized, c.BadVersion, c.BadTimestamps, other)
	line("invalid", "%12d  (malformed %d, wrong mode %d, wrong origin %d, late %d, duplicate %d)",
		c.Invalid(), c.Malformed, c.WrongMode, c.WrongOrigin, c.Late, c.Duplicate)
	if c.Unfinished > 0 {
		line("unfinished", "%12d  (no reply yet when cancelled; not counted as lost)", c.Unfinished)
	}
	if c.Skipped > 0 {
		line("skipped", "%12d  (due but not sent: the generator fell behind its schedule)", c.Skipped)
	}
	if c.SendErrors > 0 {
		line("send errors", "%12d  (the kernel refused to send them; not counted as lost)", c.SendErrors)
	}
	if c.RecvErrors > 0 {
		line("receive errors", "%12d  (such as ICMP port unreachable)", c.RecvErrors)
	}
}

func (r *Report) writeRTT(line func(k, format string, a ...any)) {
	if r.RTT.Count() == 0 {
		return
	}
	var rtt []string
	for _, p := range percentiles {
		rtt = append(rtt, fmt.Sprintf("%s %.1f", p.name, micros(r.RTT.Quantile(p.q))))
	}
	rtt = append(rtt, fmt.Sprintf("max %.1f", micros(r.RTT.Max())))
	line("rtt µs", "%s  (min %.1f, mean %.1f)", strings.Join(rtt, "  "),
		micros(r.RTT.Min()), micros(r.RTT.Mean()))
}

func (r *Report) writeCPU(line func(k, format string, a ...any)) {
	u := r.CPU
	if u == nil {
		return
	}
	if r.Config.ServerPID != 0 {
		line("server cpu", "%.2f s ±%.2f (%.0f%% of a CPU), %.2f µs per reply (pid %d, %d replies)",
			u.Server.Seconds(), procResolution.Seconds(), r.share(u.Server), perItem(u.Server, u.Replies),
			r.Config.ServerPID, u.Replies)
	}
	if cpus := r.Config.ServerCPUs; len(cpus) > 0 {
		line("server cpus", "%.2f s ±%.2f busy (%.0f%% of a CPU), %.2f µs per reply (CPUs %s: all that ran there, softirq included)",
			u.CPUs.Seconds(), procResolution.Seconds()*float64(len(cpus)), r.share(u.CPUs), perItem(u.CPUs, u.Replies), cpuList(cpus))
	}
	line("generator cpu", "%.2f s (%.0f%% of a CPU), %.2f µs per request (%d requests)",
		u.Generator.Seconds(), r.share(u.Generator), perItem(u.Generator, u.Requests), u.Requests)
}

func kissText(c *Counts) string {
	var s []string
	for i, code := range KissCodes {
		s = append(s, fmt.Sprintf("%s %d", code.Text(0), c.Kiss[i]))
	}
	return strings.Join(s, ", ")
}

// perItem returns d per item in µs, or 0 if there are none.
func perItem(d time.Duration, n uint64) float64 {
	if n == 0 {
		return 0
	}
	return micros(d) / float64(n)
}

// JSON is the machine-readable form of a Report. Durations are in
// seconds, round-trip times in µs.
type JSON struct {
	Server      string  `json:"server"`
	Mode        string  `json:"mode"` // "open" or "closed"
	Rate        int     `json:"rate,omitempty"`
	Concurrency int     `json:"concurrency,omitempty"`
	Sockets     int     `json:"sockets"`
	SourceAddrs int     `json:"source_addrs"`
	Workers     int     `json:"workers"`
	Tick        float64 `json:"tick_s,omitempty"` // open loop
	Timeout     float64 `json:"timeout_s"`
	Warmup      float64 `json:"warmup_s"`
	Duration    float64 `json:"duration_s"`
	Cancelled   bool    `json:"cancelled"`

	Sent          uint64            `json:"sent"`
	Answered      uint64            `json:"answered"`
	Lost          uint64            `json:"lost"`
	Unfinished    uint64            `json:"unfinished"`
	Skipped       uint64            `json:"skipped"`
	SendErrors    uint64            `json:"send_errors"`
	RecvErrors    uint64            `json:"receive_errors"`
	SentPerSec    float64           `json:"sent_per_s"`
	AnsweredPer   float64           `json:"answered_per_s"`
	LossPercent   float64           `json:"loss_percent"`
	Rejected      uint64            `json:"rejected"`
	Invalid       uint64            `json:"invalid"`
	Kiss          map[string]uint64 `json:"kiss"`
	Unsync        uint64            `json:"unsynchronized"`
	BadVersion    uint64            `json:"bad_version"`
	BadTimestamps uint64            `json:"bad_timestamps"`
	OtherRejected uint64            `json:"other_rejected"`
	Malformed     uint64            `json:"malformed"`
	WrongMode     uint64            `json:"wrong_mode"`
	WrongOrigin   uint64            `json:"wrong_origin"`
	Late          uint64            `json:"late"`
	Duplicate     uint64            `json:"duplicate"`

	RTT *RTTJSON `json:"rtt_us,omitempty"`
	CPU *CPUJSON `json:"cpu,omitempty"`
}

// RTTJSON summarises round-trip times in µs.
type RTTJSON struct {
	Samples uint64  `json:"samples"`
	Min     float64 `json:"min"`
	Mean    float64 `json:"mean"`
	P50     float64 `json:"p50"`
	P90     float64 `json:"p90"`
	P99     float64 `json:"p99"`
	P999    float64 `json:"p99.9"`
	Max     float64 `json:"max"`
}

// CPUJSON is CPU time over the measured window; the percentages are of
// one CPU's time over the window.
type CPUJSON struct {
	GeneratorSeconds    float64  `json:"generator_s"`
	GeneratorPercent    float64  `json:"generator_percent"`
	GeneratorPerRequest float64  `json:"generator_us_per_request"`
	Requests            uint64   `json:"requests"`
	ServerPID           int      `json:"server_pid,omitempty"`
	ServerSeconds       *float64 `json:"server_s,omitempty"`
	ServerPercent       *float64 `json:"server_percent,omitempty"`
	ServerPerReply      *float64 `json:"server_us_per_reply,omitempty"`
	ServerCPUs          []int    `json:"server_cpus,omitempty"`
	CPUsSeconds         *float64 `json:"server_cpus_s,omitempty"`
	CPUsPercent         *float64 `json:"server_cpus_percent,omitempty"`
	CPUsPerReply        *float64 `json:"server_cpus_us_per_reply,omitempty"`
	Replies             uint64   `json:"replies"`
}

// ToJSON converts r.
func (r *Report) ToJSON() JSON {
	c := &r.Counts
	j := JSON{
		Server: r.Config.Server.String(), Mode: "closed", Rate: r.Config.Rate, Concurrency: r.Config.Concurrency,
		Sockets: r.Config.Sockets, SourceAddrs: max(1, r.Config.SourceAddrs), Workers: r.Config.Workers, Timeout: r.Config.Timeout.Seconds(),
		Warmup: r.Config.Warmup.Seconds(), Duration: r.Duration.Seconds(), Cancelled: r.Cancelled,
		Sent: c.Sent, Answered: c.Answered, Lost: c.Lost, Unfinished: c.Unfinished, Skipped: c.Skipped,
		SendErrors: c.SendErrors, RecvErrors: c.RecvErrors,
		SentPerSec: perSecond(c.Sent, r.Duration), AnsweredPer: perSecond(c.Answered, r.Duration),
		LossPercent: 100 * c.LossRatio(), Rejected: c.Rejected(), Invalid: c.Invalid(),
		Kiss: map[string]uint64{}, Unsync: c.Unsynchronized, BadVersion: c.BadVersion, BadTimestamps: c.BadTimestamps, OtherRejected: c.OtherRejected,
		Malformed: c.Malformed, WrongMode: c.WrongMode, WrongOrigin: c.WrongOrigin, Late: c.Late, Duplicate: c.Duplicate,
	}
	if r.Config.Rate > 0 {
		j.Mode, j.Tick = "open", r.Config.Tick.Seconds()
	}
	for i, code := range KissCodes {
		j.Kiss[code.Text(0)] = c.Kiss[i]
	}
	if h := &r.RTT; h.Count() > 0 {
		j.RTT = &RTTJSON{Samples: h.Count(), Min: micros(h.Min()), Mean: micros(h.Mean()),
			P50: micros(h.Quantile(0.5)), P90: micros(h.Quantile(0.9)), P99: micros(h.Quantile(0.99)),
			P999: micros(h.Quantile(0.999)), Max: micros(h.Max())}
	}
	j.CPU = r.cpuJSON()
	return j
}

func (r *Report) cpuJSON() *CPUJSON {
	u := r.CPU
	if u == nil {
		return nil
	}
	j := &CPUJSON{GeneratorSeconds: u.Generator.Seconds(), GeneratorPercent: r.share(u.Generator),
		GeneratorPerRequest: perItem(u.Generator, u.Requests), Requests: u.Requests, Replies: u.Replies}
	if r.Config.ServerPID != 0 {
		s, pct, per := u.Server.Seconds(), r.share(u.Server), perItem(u.Server, u.Replies)
		j.ServerPID, j.ServerSeconds, j.ServerPercent, j.ServerPerReply = r.Config.ServerPID, &s, &pct, &per
	}
	if len(r.Config.ServerCPUs) > 0 {
		s, pct, per := u.CPUs.Seconds(), r.share(u.CPUs), perItem(u.CPUs, u.Replies)
		j.ServerCPUs, j.CPUsSeconds, j.CPUsPercent, j.CPUsPerReply = r.Config.ServerCPUs, &s, &pct, &per
	}
	return j
}

// cpuList formats CPU numbers as a comma-separated list.
func cpuList(cpus []int) string {
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}

// WriteJSON writes r as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r.ToJSON())
}
