package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

func mustRun(t *testing.T, ctx context.Context, cfg Config) *Report {
	t.Helper()
	r, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", b.String())
	checkInvariants(t, r)
	return r
}

// checkInvariants checks what every report must satisfy.
func checkInvariants(t *testing.T, r *Report) {
	t.Helper()
	c := &r.Counts
	if c.Sent != c.Answered+c.Rejected()+c.Lost+c.Unfinished {
		t.Errorf("sent %d != answered %d + rejected %d + lost %d + unfinished %d",
			c.Sent, c.Answered, c.Rejected(), c.Lost, c.Unfinished)
	}
	if r.RTT.Count() != c.Answered {
		t.Errorf("%d RTT samples for %d answered requests", r.RTT.Count(), c.Answered)
	}
	if !r.Cancelled && c.Unfinished != 0 {
		t.Errorf("%d unfinished requests in a run that was not cancelled", c.Unfinished)
	}
	// A reply the kernel received after the timeout is late, not an
	// answer.
	if r.RTT.Count() > 0 && r.RTT.Max() >= r.Config.Timeout {
		t.Errorf("round trip of %v counted as answered with a timeout of %v", r.RTT.Max(), r.Config.Timeout)
	}
	if u := r.CPU; u != nil && u.Generator <= 0 && u.Requests > 0 {
		t.Errorf("no generator CPU time for %d requests", u.Requests)
	}
}

// scheduled checks that every request of an open-loop run's measured
// window was accounted for: sent, skipped or refused by the kernel.
func scheduled(t *testing.T, r *Report, want uint64) {
	t.Helper()
	if got := r.Sent + r.Skipped + r.SendErrors; got != want {
		t.Errorf("sent %d + skipped %d + send errors %d = %d; want %d", r.Sent, r.Skipped, r.SendErrors, got, want)
	}
	if r.Skipped > 0 {
		t.Logf("the generator fell behind and skipped %d requests (a busy machine)", r.Skipped)
	}
}

// needSent skips the rest of a test whose point needs at least n
// requests measured, if the generator, starved of CPU by a busy machine,
// skipped so many that fewer were sent.
func needSent(t *testing.T, r *Report, n uint64) {
	t.Helper()
	if r.Sent < n {
		t.Skipf("only %d requests sent (%d skipped); this test needs %d: the machine is too busy", r.Sent, r.Skipped, n)
	}
}

// TestOpenLoopExactCounts runs 2000 requests/s for 1 s against a server
// that drops every tenth request and misbehaves in every way it can on
// others; every count must match what the server did.
func TestOpenLoopExactCounts(t *testing.T) {
	policy := func(n uint64) act {
		switch n % 20 {
		case 0, 10:
			return actDrop
		case 1, 11:
			return actDuplicate
		case 2, 12:
			return actWrongOrigin
		case 3, 13:
			return actShort
		case 4, 14:
			return actWrongMode
		case 5:
			return actKissRATE
		case 15:
			return actKissDENY
		case 6, 16:
			return actUnsync
		}
		return actReply
	}
	s := startServer(t, policy, 0)
	r := mustRun(t, context.Background(), Config{Server: s.Addr, Rate: 2000, Duration: time.Second,
		Sockets: 16, Timeout: 5 * time.Second})
	scheduled(t, r, 2000)
	if got := s.received.Load(); got != r.Sent {
		t.Fatalf("server received %d; bench sent %d", got, r.Sent)
	}
	answered := s.count(actReply) + s.count(actDuplicate) + s.count(actWrongOrigin) + s.count(actShort) + s.count(actWrongMode)
	want := Counts{
		Sent: r.Sent, Answered: answered, Lost: s.count(actDrop), Skipped: r.Skipped, SendErrors: r.SendErrors,
		Kiss:           [4]uint64{s.count(actKissRATE), s.count(actKissDENY), 0, 0},
		Unsynchronized: s.count(actUnsync),
		Malformed:      s.count(actShort), WrongMode: s.count(actWrongMode), WrongOrigin: s.count(actWrongOrigin),
		Duplicate: s.count(actDuplicate),
	}
	if r.Counts != want {
		t.Errorf("counts\n%+v\nwant\n%+v", r.Counts, want)
	}
	// One request in ten was dropped: the loss is 10% up to rounding of
	// the last, partial ten.
	if loss := r.LossRatio(); math.Abs(loss-0.1) > 1/float64(r.Sent) {
		t.Errorf("loss %.4f; want 0.1 ± 1/%d", loss, r.Sent)
	}
	if r.Duration != time.Second || r.Cancelled || r.CPU == nil {
		t.Errorf("duration %v cancelled %v cpu %v", r.Duration, r.Cancelled, r.CPU)
	}
}

// TestClosedLoopKeepsConcurrency loads a server that answers only once
// it holds as many requests as the concurrency: the run goes on only if
// the closed loop keeps that many outstanding, each socket its share. The
// run is cancelled once the server has answered three full batches.
func TestClosedLoopKeepsConcurrency(t *testing.T) {
	for _, tt := range []struct{ conc, sockets, perSocket int }{{4, 64, 1}, {6, 4, 2}} {
		t.Run(fmt.Sprintf("concurrency %d sockets %d", tt.conc, tt.sockets), func(t *testing.T) {
			g := startGate(t, tt.conc)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// The goroutine exits once it has cancelled the run, at the
			// third batch or after a bound far beyond what that takes.
			go func() {
				defer cancel()
				for i := 0; i < 3000 && g.full.Load() < 3; i++ {
					time.Sleep(10 * time.Millisecond)
				}
			}()
			r := mustRun(t, ctx, Config{Server: g.Addr, Concurrency: tt.conc, Sockets: tt.sockets,
				Duration: time.Minute, Timeout: MaxTimeout})
			if want := min(tt.conc, tt.sockets); r.Config.Sockets != want {
				t.Errorf("%d sockets; want %d", r.Config.Sockets, want)
			}
			if g.full.Load() < 3 || r.Answered < 2*uint64(tt.conc) {
				t.Errorf("%d full batches, %d answered; want the loop to refill", g.full.Load(), r.Answered)
			}
			// A socket has more than its share only if a request timed
			// out and was replaced.
			if r.Lost == 0 && g.perPort.Load() != int64(tt.perSocket) {
				t.Errorf("up to %d requests of one socket outstanding; want %d", g.perPort.Load(), tt.perSocket)
			}
			if r.Unfinished > uint64(tt.conc) {
				t.Errorf("%d unfinished; want at most the concurrency, %d", r.Unfinished, tt.conc)
			}
		})
	}
}

func TestTimeoutsCountAsLoss(t *testing.T) {
	s := startServer(t, func(uint64) act { return actDrop }, 0)
	t.Run("closed loop", func(t *testing.T) {
		s.received.Store(0)
		r := mustRun(t, context.Background(), Config{Server: s.Addr, Concurrency: 4,
			Duration: 500 * time.Millisecond, Timeout: 100 * time.Millisecond})
		needSent(t, r, 4)
		if r.Answered != 0 || r.Lost != r.Sent || s.received.Load() != r.Sent {
			t.Errorf("sent %d lost %d answered %d, server received %d; want all lost",
				r.Sent, r.Lost, r.Answered, s.received.Load())
		}
	})
	t.Run("open loop", func(t *testing.T) {
		s.received.Store(0)
		r := mustRun(t, context.Background(), Config{Server: s.Addr, Rate: 200,
			Duration: 500 * time.Millisecond, Timeout: 100 * time.Millisecond, Tick: MaxTick})
		scheduled(t, r, 100)
		if r.Answered != 0 || r.Lost != r.Sent || s.received.Load() != r.Sent || r.LossRatio() != 1 {
			t.Errorf("sent %d lost %d answered %d, server received %d; want all lost",
				r.Sent, r.Lost, r.Answered, s.received.Load())
		}
	})
}

func TestWarmupExcludedAndProgress(t *testing.T) {
	s := startServer(t, nil, 0)
	var progress bytes.Buffer
	r := mustRun(t, context.Background(), Config{Server: s.Addr, Rate: 1000, Warmup: 1100 * time.Millisecond,
		Duration: 400 * time.Millisecond, Timeout: 5 * time.Second, Progress: &progress})
	scheduled(t, r, 400)
	// The warmup's 1100 requests reach the server too, or such of them
	// as the generator did not skip.
	if got := s.received.Load(); got < r.Sent || got > r.Sent+1100 {
		t.Errorf("server received %d; want the %d measured and up to 1100 more", got, r.Sent)
	}
	if r.Answered != r.Sent {
		t.Errorf("answered %d of %d", r.Answered, r.Sent)
	}
	// A line a second, unless the machine is so busy that the run ends
	// before the first second's line is written.
	t.Logf("progress:\n%s", progress.String())
	if progress.Len() > 0 {
		for _, l := range strings.Split(strings.TrimSuffix(progress.String(), "\n"), "\n") {
			if !progressLine.MatchString(l) {
				t.Errorf("progress line %q does not match %v", l, progressLine)
			}
		}
	}
}

// TestProgressPhases writes the progress lines of the phases of a run.
func TestProgressPhases(t *testing.T) {
	var b strings.Builder
	w := &worker{}
	// Warmup for 1 s, then a window of 1.5 s.
	p := &plan{base: time.Unix(1000, 0), start: int64(time.Second), end: int64(2500 * time.Millisecond)}
	o := &orchestra{p: p, cfg: &Config{Progress: &b}, workers: []*worker{w}}
	o.lastAt = p.base
	w.pub.sent.Store(1000)
	w.pub.answered.Store(990)
	w.pub.lost.Store(10)
	o.progress(p.base.Add(time.Second + time.Millisecond)) // a late tick
	w.pub.sent.Store(3000)
	o.progress(p.base.Add(2 * time.Second))
	w.pub.answered.Store(2990)
	o.progress(p.base.Add(3 * time.Second)) // more of it after the window than in it
	w.pub.sent.Store(3100)
	p.stop.Store(1 + int64(3200*time.Millisecond)) // cancelled
	o.progress(p.base.Add(3500 * time.Millisecond))
	want := "    1s  sent       999/s  answered       989/s  rejected       0/s  loss   1.00%  (warmup)\n" +
		"    2s  sent      2002/s  answered         0/s  rejected       0/s  loss   0.00%\n" +
		"    3s  sent         0/s  answered      2000/s  rejected       0/s  loss   0.00%  (waiting for the last replies)\n" +
		"    4s  sent       200/s  answered         0/s  rejected       0/s  loss   0.00%  (waiting for the last replies)\n"
	if b.String() != want {
		t.Errorf("progress\n%s\nwant\n%s", b.String(), want)
	}
}

var progressLine = regexp.MustCompile(`^ +\d+s  sent +\d+/s  answered +\d+/s  rejected +\d+/s  loss +\d+\.\d\d%` +
	`(  skipped \d+)?(  \(warmup\)|  \(waiting for the last replies\))?$`)

func TestWriteProgress(t *testing.T) {
	var b strings.Builder
	last := totals{sent: 100, answered: 90, rejected: 5, lost: 5, skipped: 1}
	cur := totals{sent: 1100, answered: 1050, rejected: 25, lost: 25, skipped: 4}
	// 20 lost of the 1000 decided: 960 answered, 20 rejected, 20 lost.
	writeProgress(&b, 3*time.Second, 2*time.Second, cur, last, "  (warmup)")
	want := "    3s  sent       500/s  answered       480/s  rejected      10/s  loss   2.00%  skipped 3  (warmup)\n"
	if b.String() != want {
		t.Errorf("writeProgress = %q; want %q", b.String(), want)
	}
	if !progressLine.MatchString(strings.TrimSuffix(want, "\n")) {
		t.Errorf("%q does not match %v", want, progressLine)
	}
}

// TestCancelStillReports cancels a closed loop once its requests, which
// the server never answers, are out: they are unfinished, not lost, and
// the run stops without waiting for their timeout or the window's end.
func TestCancelStillReports(t *testing.T) {
	s := startServer(t, func(uint64) act { return actDrop }, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The goroutine exits once it has cancelled the run, or given up.
	go func() {
		defer cancel()
		for range 3000 {
			if s.received.Load() >= 4 {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	r := mustRun(t, ctx, Config{Server: s.Addr, Concurrency: 4, Duration: time.Minute, Timeout: MaxTimeout})
	// Had the cancellation not stopped it, the run would have gone on
	// for a minute, and its requests timed out and been replaced.
	if !r.Cancelled || r.Duration >= time.Minute || r.Sent != 4 || r.Unfinished != 4 || r.Lost != 0 {
		t.Errorf("cancelled %v, duration %v, sent %d, unfinished %d, lost %d; want true, under 1m, 4 4 0",
			r.Cancelled, r.Duration, r.Sent, r.Unfinished, r.Lost)
	}
	var b strings.Builder
	if err := r.WriteText(&b); err != nil || !strings.Contains(b.String(), "(cancelled)") || !strings.Contains(b.String(), "unfinished") {
		t.Errorf("report does not say it was cancelled: %v\n%s", err, b.String())
	}
}

func TestNoServer(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close() // nothing listens there now
	r := mustRun(t, context.Background(), Config{Server: addr, Rate: 100, Duration: 300 * time.Millisecond,
		Timeout: 100 * time.Millisecond, Sockets: 4})
	scheduled(t, r, 30)
	needSent(t, r, 1)
	if r.Answered != 0 || r.Lost != r.Sent {
		t.Errorf("answered %d lost %d of %d", r.Answered, r.Lost, r.Sent)
	}
	if r.RecvErrors+r.SendErrors == 0 {
		t.Error("no ICMP port unreachable reported")
	}
}

// TestServerCPU measures this process as the server, as the test server
// runs in it. In a closed loop, the requests sent in the window are the
// measured ones, and the replies received in it are those to measured
// requests but for the at most Concurrency in flight at its end.
func TestServerCPU(t *testing.T) {
	s := startServer(t, nil, 0)
	const conc = 4
	r := mustRun(t, context.Background(), Config{Server: s.Addr, Concurrency: conc, Duration: time.Second,
		Timeout: 5 * time.Second, ServerPID: os.Getpid()})
	u := r.CPU
	if u == nil {
		t.Fatal("no CPU figures")
	}
	if u.Requests != r.Sent {
		t.Errorf("%d requests in the CPU window; want the %d measured", u.Requests, r.Sent)
	}
	replied := r.Answered + r.Rejected()
	if u.Replies > replied || u.Replies+conc < replied {
		t.Errorf("%d replies in the CPU window; want %d at most and %d at least", u.Replies, replied, int64(replied)-conc)
	}
	if u.Server < 0 || u.Generator <= 0 {
		t.Errorf("server CPU %v, generator CPU %v", u.Server, u.Generator)
	}
	j := r.ToJSON()
	if j.CPU == nil || j.CPU.ServerPID != os.Getpid() || j.CPU.ServerSeconds == nil || *j.CPU.ServerSeconds != u.Server.Seconds() ||
		j.CPU.ServerPercent == nil || j.CPU.Requests != u.Requests || j.CPU.Replies != u.Replies {
		t.Errorf("JSON cpu %+v; want %+v", j.CPU, u)
	}
	if _, err := Run(context.Background(), Config{Server: s.Addr, ServerPID: 1 << 30}); err == nil {
		t.Error("Run with a server PID that cannot exist succeeded")
	}
}

// TestRunLeavesNoGoroutine runs, and cancels a run, with progress lines
// and a warmup: once Run returns, its goroutines must be gone.
func TestRunLeavesNoGoroutine(t *testing.T) {
	s := startServer(t, nil, 0)
	before := runtime.NumGoroutine()
	mustRun(t, context.Background(), Config{Server: s.Addr, Rate: 2000, Warmup: 100 * time.Millisecond,
		Duration: 200 * time.Millisecond, Sockets: 8, Workers: 3, Progress: io.Discard})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	mustRun(t, ctx, Config{Server: s.Addr, Concurrency: 8, Duration: time.Minute, Workers: 2, Progress: io.Discard})
	// A goroutine that has called wg.Done or closed a channel may take a
	// moment to be gone; wait for it, within a bound far beyond that.
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > before && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after Run; %d before\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// testReport returns a report with every figure set, as a run of 2 s
// would leave it.
func testReport() *Report {
	r := &Report{
		Config: Config{Server: netip.MustParseAddrPort("[2001:db8::1]:123"), Rate: 500, Sockets: 8, Workers: 2,
			Duration: 2 * time.Second, Warmup: time.Second, Timeout: 250 * time.Millisecond, Tick: 500 * time.Microsecond,
			ServerPID: 42},
		Duration: 2 * time.Second,
		Counts: Counts{Sent: 1000, Answered: 950, Lost: 20, Skipped: 3, SendErrors: 1, RecvErrors: 2,
			Kiss: [4]uint64{10, 5, 0, 1}, Unsynchronized: 7, BadVersion: 4, BadTimestamps: 2, OtherRejected: 1,
			Malformed: 1, WrongMode: 2, WrongOrigin: 3, Late: 4, Duplicate: 5},
		CPU: &CPU{Generator: 500 * time.Millisecond, Server: 250 * time.Millisecond, Requests: 1000, Replies: 500},
	}
	for i := range r.Answered {
		r.RTT.Record(time.Duration(10+i%100) * time.Microsecond)
	}
	return r
}

func TestReportJSON(t *testing.T) {
	r := testReport()
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var j JSON
	if err := json.Unmarshal(b.Bytes(), &j); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if j.Server != "[2001:db8::1]:123" || j.Mode != "open" || j.Rate != 500 || j.Concurrency != 0 || j.Sockets != 8 ||
		j.SourceAddrs != 1 ||
		j.Workers != 2 || j.Tick != 0.0005 || j.Timeout != 0.25 || j.Warmup != 1 || j.Duration != 2 || j.Cancelled {
		t.Errorf("JSON does not describe the run:\n%s", b.String())
	}
	if j.Sent != 1000 || j.Answered != 950 || j.Lost != 20 || j.Skipped != 3 || j.SendErrors != 1 || j.RecvErrors != 2 ||
		j.SentPerSec != 500 || j.AnsweredPer != 475 || j.LossPercent != 2 || j.Rejected != 30 || j.Invalid != 15 ||
		j.Kiss["RATE"] != 10 || j.Kiss["DENY"] != 5 || j.Kiss["RSTR"] != 0 || j.Kiss["NTSN"] != 1 || j.Unsync != 7 ||
		j.BadVersion != 4 || j.BadTimestamps != 2 || j.OtherRejected != 1 || j.Malformed != 1 || j.WrongMode != 2 ||
		j.WrongOrigin != 3 || j.Late != 4 || j.Duplicate != 5 {
		t.Errorf("JSON counts do not match the report:\n%s", b.String())
	}
	// 950 samples of 10 to 109 µs: 10 to 59 ten times each, the others
	// nine times. Rank 475 is 57 µs, rank 941 108 µs, within the
	// histogram's 0.4%; the mean is 55275/950 µs exactly.
	if h := j.RTT; h == nil || h.Samples != 950 || h.Min != 10 || h.Max != 109 || math.Abs(h.P50-57) > 0.25 ||
		math.Abs(h.P99-108) > 0.45 || math.Abs(h.Mean-55275.0/950) > 0.001 {
		t.Errorf("rtt_us %+v", j.RTT)
	}
	if c := j.CPU; c == nil || c.GeneratorSeconds != 0.5 || c.GeneratorPercent != 25 || c.GeneratorPerRequest != 500 ||
		c.Requests != 1000 || c.ServerPID != 42 || c.ServerSeconds == nil || *c.ServerSeconds != 0.25 ||
		c.ServerPercent == nil || *c.ServerPercent != 12.5 || c.ServerPerReply == nil || *c.ServerPerReply != 500 ||
		c.Replies != 500 {
		t.Errorf("cpu %+v", j.CPU)
	}
	// Without a server process, no server figures; without replies, no
	// round-trip times.
	// A closed loop has no rate and no tick.
	r.Config.ServerPID, r.RTT = 0, Histogram{}
	r.Config.Rate, r.Config.Concurrency = 0, 5
	b.Reset()
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if s := b.String(); strings.Contains(s, "server_") || strings.Contains(s, "rtt_us") ||
		strings.Contains(s, `"rate"`) || strings.Contains(s, "tick_s") || !strings.Contains(s, `"concurrency": 5,`) ||
		!strings.Contains(s, `"mode": "closed",`) {
		t.Errorf("JSON of a closed loop without a server PID or replies:\n%s", s)
	}
}

func TestReportText(t *testing.T) {
	r := testReport()
	r.Cancelled, r.Unfinished = true, 30
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"server          [2001:db8::1]:123\n",
		"load            open loop, 500 requests/s in ticks of 500µs, 8 sockets, 2 workers\n", // one address: not said
		"window          2.000 s after 1s of warmup, timeout 250ms (cancelled)\n",
		"sent                    1000         500.0/s\n",
		"answered                 950         475.0/s\n",
		"lost                      20         2.062 %\n", // 20 of the 970 whose fate is known
		"rejected                  30  (kiss-o'-death RATE 10, DENY 5, RSTR 0, NTSN 1; unsynchronized 7, bad version 4, bad timestamps 2, other 1)\n",
		"invalid                   15  (malformed 1, wrong mode 2, wrong origin 3, late 4, duplicate 5)\n",
		"unfinished                30", "skipped                    3", "send errors                1", "receive errors             2",
		"rtt µs          p50 57.0  p90 ", "(min 10.0, mean 58.2)\n",
		"server cpu      0.25 s ±0.01 (12% of a CPU), 500.00 µs per reply (pid 42, 500 replies)\n",
		"generator cpu   0.50 s (25% of a CPU), 500.00 µs per request (1000 requests)\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, b.String())
		}
	}
}

func TestConfigErrors(t *testing.T) {
	srv := netip.MustParseAddrPort("127.0.0.1:123")
	for _, c := range []Config{
		{},
		{Server: netip.MustParseAddrPort("127.0.0.1:0")},
		{Server: srv, Rate: 10, Concurrency: 10},
		{Server: srv, Rate: -1},
		{Server: srv, Rate: MaxRate + 1},
		{Server: srv, Concurrency: MaxConcurrency + 1},
		{Server: srv, Duration: -time.Second},
		{Server: srv, Duration: MaxDuration + 1},
		{Server: srv, Warmup: MaxWarmup + 1},
		{Server: srv, Sockets: MaxSockets + 1},
		{Server: srv, Workers: -1},
		{Server: srv, Workers: MaxWorkers + 1},
		{Server: srv, Timeout: MaxTimeout + 1},
		{Server: srv, Tick: MinTick - 1},
		{Server: srv, Tick: MaxTick + 1},
		{Server: srv, ServerPID: -1},
		{Server: srv, Rate: MaxRate, Timeout: 2 * time.Second},
		{Server: srv, SourceAddrs: -1},
		{Server: srv, SourceAddrs: MaxSourceAddrs + 1, Sockets: MaxSockets},
		{Server: netip.MustParseAddrPort("[::1]:123"), SourceAddrs: 2},
		{Server: netip.MustParseAddrPort("[::ffff:127.0.0.1]:123"), SourceAddrs: 2},
		{Server: netip.MustParseAddrPort("192.0.2.1:123"), SourceAddrs: 2},
		{Server: srv, Rate: 10, Sockets: 4, SourceAddrs: 5},
		{Server: srv, Concurrency: 2, SourceAddrs: 3},
		{Server: srv, SourceAddrs: DefaultConcurrency + 1, Sockets: MaxSockets},
	} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("Run(%+v) succeeded", c)
		}
	}
	if _, err := Run(context.Background(), Config{Server: srv, Rand: bytes.NewReader(nil)}); err == nil || !errors.Is(err, errShortRand()) {
		t.Errorf("Run with an empty random source: %v", err)
	}
}

func errShortRand() error { return ioUnexpectedEOF }

var ioUnexpectedEOF = func() error { _, err := (&bytes.Reader{}).Read(make([]byte, 1)); return err }()

// TestRunAllocsDoNotGrowWithRequests checks the whole loop for allocation
// per request: a run ten times as long must not allocate meaningfully
// more. (The test server, in this process too, allocates nothing per
// request either: it is written to that end.)
func TestRunAllocsDoNotGrowWithRequests(t *testing.T) {
	s := startServer(t, nil, 0)
	mallocs := func(d time.Duration) (uint64, uint64) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r, err := Run(context.Background(), Config{Server: s.Addr, Rate: 5000, Duration: d, Sockets: 8})
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		return after.Mallocs - before.Mallocs, r.Sent
	}
	mallocs(100 * time.Millisecond) // warm up the runtime
	short, n1 := mallocs(200 * time.Millisecond)
	long, n2 := mallocs(2 * time.Second)
	t.Logf("%d requests: %d allocations; %d requests: %d allocations", n1, short, n2, long)
	if n2 <= n1 {
		t.Fatalf("the long run sent %d requests, the short one %d", n2, n1)
	}
	if perRequest := (float64(long) - float64(short)) / float64(n2-n1); perRequest > 0.05 {
		t.Errorf("%.3f allocations per request", perRequest)
	}
}

func TestSourceAddr(t *testing.T) {
	for _, tt := range []struct {
		n, i int
		want string
	}{
		{0, 0, "invalid IP"}, {1, 7, "invalid IP"}, {2, 0, "127.0.0.1"}, {2, 1, "127.0.0.2"}, {2, 2, "127.0.0.1"},
		{4, 7, "127.0.0.4"}, {MaxSourceAddrs, MaxSourceAddrs - 1, "127.0.0.254"}, {MaxSourceAddrs, MaxSourceAddrs, "127.0.0.1"},
	} {
		if got := sourceAddr(tt.n, tt.i).String(); got != tt.want {
			t.Errorf("sourceAddr(%d, %d) = %s; want %s", tt.n, tt.i, got, tt.want)
		}
	}
}

// TestSourceAddrs checks that the server sees the requests of a run come
// from exactly the source addresses asked for, each from its share of the
// sockets, and that the report says so.
func TestSourceAddrs(t *testing.T) {
	for _, tt := range []struct {
		name                         string
		cfg                          Config
		addrs, sockets, perAddrPorts int
	}{
		{"open loop, one address", Config{Rate: 1000, Sockets: 8}, 1, 8, 8},
		{"open loop, 4 addresses", Config{Rate: 1000, Sockets: 8, SourceAddrs: 4}, 4, 8, 2},
		{"open loop, 3 addresses, 7 sockets", Config{Rate: 1000, Sockets: 7, SourceAddrs: 3}, 3, 7, -1},
		{"closed loop, 3 addresses", Config{Concurrency: 6, Sockets: 64, SourceAddrs: 3}, 3, 6, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, nil, 0)
			cfg := tt.cfg
			cfg.Server, cfg.Duration, cfg.Timeout, cfg.Workers = s.Addr, 500*time.Millisecond, 5*time.Second, 2
			r := mustRun(t, context.Background(), cfg)
			if r.Answered == 0 {
				t.Fatal("no request answered")
			}
			if want := max(1, tt.cfg.SourceAddrs); r.Config.SourceAddrs != want || r.ToJSON().SourceAddrs != want {
				t.Errorf("report: %d source addresses, JSON %d; want %d", r.Config.SourceAddrs, r.ToJSON().SourceAddrs, want)
			}
			var text strings.Builder
			if err := r.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			if from := fmt.Sprintf(" from %d addresses", tt.addrs); (tt.addrs > 1) != strings.Contains(text.String(), from) {
				t.Errorf("text report and %q:\n%s", from, text.String())
			}
			// Every socket sends in a run this long: 500 requests over
			// at most 8 sockets, or 6 outstanding all the time.
			ports := map[netip.Addr]int{}
			for ap := range s.clients() {
				ports[ap.Addr()]++
			}
			if len(ports) != tt.addrs {
				t.Fatalf("server saw %d source addresses %v; want %d", len(ports), ports, tt.addrs)
			}
			total := 0
			for i := range tt.addrs {
				a := netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + i)})
				if ports[a] == 0 {
					t.Errorf("no request from %v; saw %v", a, ports)
				}
				if tt.perAddrPorts > 0 && ports[a] != tt.perAddrPorts {
					t.Errorf("%d sockets sent from %v; want %d", ports[a], a, tt.perAddrPorts)
				}
				total += ports[a]
			}
			if total != tt.sockets {
				t.Errorf("server saw %d client sockets; want %d", total, tt.sockets)
			}
		})
	}
}
