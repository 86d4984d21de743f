// Package sim is a deterministic simulator of an NTP client: true time, a
// local oscillator whose frequency wanders, a network with random delays,
// and servers, driving the real client (package engine: the associations
// and the clock discipline) against Meridian's own server code (package
// server) in virtual time, with real NTP packets between them. A seed makes every run repeatable; days of operation take
// a second or two.
//
// The model is that of chrony's clknetsim as the chrony project used it
// for its published comparison: the local clock runs at rate
// (1+f)(1+a), f the oscillator's frequency error (a random walk with a
// step of Wander·N(0,1) every second) and a the discipline's correction;
// each packet's one-way delay is drawn at send time; servers answer in zero
// time with exact timestamps of their own time.
package sim

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/meridian-ntp/meridian/internal/discipline"
	"github.com/meridian-ntp/meridian/internal/engine"
	"github.com/meridian-ntp/meridian/internal/mono"
	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/server"
	"github.com/meridian-ntp/meridian/internal/source"
)

// Network is the delay model of the path to a server.
type Network struct {
	// Base is the fixed one-way delay of each direction.
	Base time.Duration
	// Jitter is the mean of the exponentially distributed delay added to
	// each packet (0: none).
	Jitter time.Duration
	// Asymmetry is added to the delay from client to server only, and
	// UpJitter, the mean of another exponential delay, too.
	Asymmetry, UpJitter time.Duration
	// Loss is the probability that a packet (each direction) is lost.
	Loss float64
}

// Server is a simulated server.
type Server struct {
	Network Network
	// Offset, if set, gives the server's clock minus true time at true
	// time t (seconds since the start); nil: the server keeps true time.
	Offset func(t float64) float64
	// Down, if set, reports whether the server is unreachable at true
	// time t: requests sent then get no reply.
	Down func(t float64) bool
	// Leap, if set, is the leap indicator the server sends at true time t.
	Leap func(t float64) ntp.Leap
	// Group is the server's network, for the client's diversity rule.
	Group string
	// RefID, if set, is the reference ID the server sends (its stratum
	// is then 2), instead of stratum 1 and GPS.
	RefID ntp.RefID
}

// Scenario is one simulated run.
type Scenario struct {
	Seed uint64
	// Duration of the run; the statistics cover [Skip, Duration).
	Duration, Skip time.Duration
	// InitOffset is the local clock minus true time at the start.
	InitOffset time.Duration
	// InitFreq is the oscillator's initial frequency error (s/s) and
	// Wander its random-walk step per second.
	InitFreq, Wander float64
	// Servers are polled every Poll; 0: as the discipline asks. The
	// client starts with a burst of requests (iburst) unless NoIBurst.
	Servers  []Server
	Poll     time.Duration
	NoIBurst bool
	// Start is the true time at which the run starts (default
	// 2026-01-01 00:00:00 UTC): packets carry NTP timestamps of it.
	Start time.Time
	// LeapAt, if not zero, is when (after Start) a leap second of kind
	// Leap happens: UTC, and with it every server's time and the time the
	// client must keep, goes back a second (LeapInsert) or forward one
	// (LeapDelete). LeapAt must be a UTC midnight.
	LeapAt time.Duration
	Leap   ntp.Leap
	// Discipline configures the discipline under test.
	Discipline discipline.Config
	// Converge is the offset within which the clock counts as converged
	// (default 1 ms): Result.Converged is the first time its offset from
	// true time is within it.
	Converge time.Duration
}

// Result summarises a run over its statistics window.
type Result struct {
	// RMSOffset and MaxOffset are the RMS and largest absolute offset of
	// the local clock from true time, sampled every second; FinalOffset
	// is the last sample.
	RMSOffset, MaxOffset, FinalOffset time.Duration
	// FreqRMS is the RMS of the clock's residual frequency error
	// ((1+f)(1+a) - 1), sampled every second while no slew is under way:
	// the error of the discipline's frequency estimate.
	FreqRMS float64
	// Converged is when the clock's offset first came within
	// Scenario.Converge of true time, or -1 if it never did.
	Converged time.Duration
	// Samples is how many server replies the discipline took, Refused
	// how many the client's checks turned down.
	Samples, Refused int
	// Steps counts the clock steps and Stepped adds them up.
	Steps   int
	Stepped time.Duration
	// Steered counts the adjustments that stepped the clock or set a
	// frequency correction other than zero.
	Steered int
	// LeapsApplied counts the leap seconds the client's clock made, as
	// the kernel would, armed by the discipline.
	LeapsApplied int
	// Alarm is the discipline's alarm at the end, "" if none, and
	// Truechimers the servers it selected at its last update.
	Alarm       string
	Truechimers []int
}

// clock is the simulated local clock.
type clock struct {
	local  float64 // local clock reading (s since the start of true time)
	mono   float64 // local monotonic clock (no steps)
	f, a   float64 // oscillator error and correction
	wander float64
}

// rate returns how fast the clock runs against true time, less one.
func (c *clock) rate() float64 { return (1+c.f)*(1+c.a) - 1 }

// advance runs the clock for dt seconds of true time.
func (c *clock) advance(dt float64) {
	d := dt * (1 + c.rate())
	c.local += d
	c.mono += d
}

// event kinds.
const (
	evTick = iota
	evTimer
	evReply
)

type event struct {
	at   float64 // true time
	kind int
	srv  int
	pkt  []byte // a reply on its way to the client
}

// defaultStart is Scenario.Start's default.
var defaultStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// ntpAt returns the NTP timestamp of s seconds after start.
func ntpAt(start time.Time, s float64) ntp.Time {
	return ntp.TimeFrom(start.Add(time.Duration(math.Round(s * 1e9))))
}

// simServer is a simulated server: Meridian's own responder, serving at
// stratum 1.
type simServer struct {
	Server
	resp *server.Responder
}

// Run runs the scenario and returns its statistics.
func Run(sc Scenario) Result {
	rng := rand.New(rand.NewPCG(sc.Seed, sc.Seed^0x9E3779B97F4A7C15))
	c := clock{local: sc.InitOffset.Seconds(), f: sc.InitFreq, wander: sc.Wander}
	monoAt := func() mono.Instant { return mono.Instant(c.mono * 1e9) }
	start := sc.Start
	if start.IsZero() {
		start = defaultStart
	}
	q := &queue{}
	q.push(event{at: 1, kind: evTick})
	srvs := make([]simServer, len(sc.Servers))
	ec := engine.Config{Discipline: sc.Discipline, Poll: sc.Poll, Precision: -20, OwnRefIDs: []ntp.RefID{ClientRefID}}
	for i := range sc.Servers {
		srvs[i] = simServer{Server: sc.Servers[i], resp: server.NewResponder(server.Config{})}
		ec.Sources = append(ec.Sources, engine.SourceConfig{RefID: ntp.RefID{192, 0, 2, byte(i + 1)}, IBurst: !sc.NoIBurst,
			Group: sc.Servers[i].Group})
	}
	eng := engine.New(ec, func(i int) source.Rand { return rand.New(rand.NewPCG(sc.Seed+uint64(i)+1, 0x5EED)) }, monoAt())
	d := eng.Discipline()
	var sends []engine.Send
	// timerAt is the true time of the engine's timer event; older timer
	// events in the queue are stale.
	timerAt := -1.0
	schedule := func(now float64) {
		// The engine's timers run on the monotonic clock, which runs at
		// the clock's rate; 1 ns more, so that the monotonic time then is
		// not before the timer's for rounding.
		timerAt = now + max(0, float64(eng.Next())/1e9-c.mono)/(1+c.rate()) + 1e-9
		q.push(event{at: timerAt, kind: evTimer})
	}
	// utc returns the UTC time the clock should read at true time t:
	// true time shifted by the leap second once it has happened.
	// The leap happens at midnight UTC: for a deleted second, that is
	// when the continuous time reaches 23:59:59.
	leapAt := sc.LeapAt.Seconds()
	if sc.Leap == ntp.LeapDelete {
		leapAt--
	}
	utc := func(t float64) float64 {
		if sc.LeapAt > 0 && t >= leapAt {
			switch sc.Leap {
			case ntp.LeapInsert:
				return t - 1
			case ntp.LeapDelete:
				return t + 1
			}
		}
		return t
	}
	var armed ntp.Leap
	leaps := 0
	// kernelLeap makes the leap second the kernel would make, armed,
	// when the local clock passes the end of its UTC day: it repeats the
	// day's last second for an insertion, skips it for a deletion.
	startUnix := float64(start.Unix())
	kernelLeap := func(before float64) {
		if armed == ntp.LeapNone {
			return
		}
		end := math.Floor((startUnix+before)/86400+1)*86400 - startUnix
		switch {
		case armed == ntp.LeapInsert && c.local >= end:
			c.local--
		case armed == ntp.LeapDelete && c.local >= end-1:
			c.local++
		default:
			return
		}
		armed = ntp.LeapNone
		leaps++
	}
	end, skip := sc.Duration.Seconds(), sc.Skip.Seconds()
	now := 0.0
	var res Result
	var sum2, fsum2 float64
	var n, fn int
	slewing := false
	converge := sc.Converge.Seconds()
	if converge <= 0 {
		converge = 1e-3
	}
	res.Converged = -1
	apply := func(a discipline.Adjustment) {
		if a.Step != 0 {
			c.local += a.Step.Seconds()
			res.Steps++
			res.Stepped += a.Step
		}
		c.a = a.FreqPPM * 1e-6
		armed = a.Leap
		if a.Step != 0 || a.FreqPPM != 0 {
			res.Steered++
		}
		slewing = a.Wake != 0
	}
	// deliver carries a request to its server, sent at true time now, and
	// queues the reply.
	deliver := func(now float64, snd engine.Send) {
		ss := &srvs[snd.Src]
		up, ok1 := oneWay(rng, ss.Network, true)
		down, ok2 := oneWay(rng, ss.Network, false)
		if !ok1 || !ok2 || ss.Down != nil && ss.Down(now) {
			return
		}
		t2 := utc(now + up)
		if ss.Offset != nil {
			t2 += ss.Offset(now + up)
		}
		rx := ntpAt(start, t2)
		resp := make([]byte, ntp.HeaderLen)
		n, _ := ss.resp.Respond(mono.Instant((now+up)*1e9), ss.state(start, now+up, t2), netip.AddrFrom4([4]byte{198, 51, 100, 1}), rx, snd.Packet, resp)
		if n == 0 {
			return
		}
		server.StampTransmit(resp, rx)
		q.push(event{at: now + up + down, kind: evReply, srv: snd.Src, pkt: resp[:n]})
	}
	schedule(0)
	for {
		ev := q.pop()
		if ev.at >= end {
			break
		}
		before := c.local
		c.advance(ev.at - now)
		now = ev.at
		kernelLeap(before)
		switch ev.kind {
		case evTick:
			if res.Converged < 0 && math.Abs(c.local-utc(now)) <= converge {
				res.Converged = time.Duration(now * 1e9)
			}
			if now >= skip {
				off := c.local - utc(now)
				// Within a second of the leap, UTC is ambiguous: the client's
				// leap happens when its own clock reaches midnight, a few
				// microseconds from true midnight, and a tick may fall
				// between the two.
				if sc.LeapAt > 0 && math.Abs(now-leapAt) < 1 && math.Abs(c.local-now) < math.Abs(off) {
					off = c.local - now
				}
				sum2 += off * off
				res.FinalOffset = time.Duration(off * 1e9)
				if !slewing {
					fsum2 += c.rate() * c.rate()
					fn++
				}
				n++
				if a := time.Duration(math.Abs(off) * 1e9); a > res.MaxOffset {
					res.MaxOffset = a
				}
			}
			c.f += c.wander * rng.NormFloat64()
			q.push(event{at: now + 1, kind: evTick})
		case evTimer:
			if ev.at != timerAt {
				continue // stale
			}
			var adj discipline.Adjustment
			var changed bool
			sends, adj, changed = eng.HandleTimer(monoAt(), ntpAt(start, c.local), sends[:0])
			if changed {
				apply(adj)
			}
			for _, snd := range sends {
				deliver(now, snd)
			}
			schedule(now)
		case evReply:
			adj, ok, err := eng.HandleResponse(monoAt(), ev.srv, ev.pkt, ntpAt(start, c.local), start.Add(time.Duration(c.local*1e9)))
			if err != nil {
				res.Refused++
				continue
			}
			if ok {
				res.Samples++
				apply(adj)
				schedule(now)
			}
		}
	}
	res.LeapsApplied = leaps
	if a := d.Alarm(); a != discipline.AlarmNone {
		res.Alarm = a.String()
	}
	for i := range sc.Servers {
		if d.Truechimer(i) {
			res.Truechimers = append(res.Truechimers, i)
		}
	}
	if n > 0 {
		res.RMSOffset = time.Duration(math.Sqrt(sum2/float64(n)) * 1e9)
	}
	if fn > 0 {
		res.FreqRMS = math.Sqrt(fsum2 / float64(fn))
	}
	return res
}

// oneWay draws one packet's delay in seconds, or reports it lost.
func oneWay(rng *rand.Rand, n Network, up bool) (float64, bool) {
	if n.Loss > 0 && rng.Float64() < n.Loss {
		return 0, false
	}
	d := n.Base.Seconds() + n.Jitter.Seconds()*rng.ExpFloat64()
	if up {
		d += n.Asymmetry.Seconds()
		if n.UpJitter > 0 {
			d += n.UpJitter.Seconds() * rng.ExpFloat64()
		}
	}
	return d, true
}

// state returns the state the server serves at true time t, when its
// clock reads own: stratum 1, synchronized to a GPS receiver, its
// reference time its own time.
func (s *simServer) state(start time.Time, t, own float64) *server.State {
	leap := ntp.LeapNone
	if s.Leap != nil {
		leap = s.Leap(t)
	}
	st := &server.State{Leap: leap, Stratum: 1, Precision: -20, RefID: ntp.RefID{'G', 'P', 'S', 0},
		Reference: ntpAt(start, own)}
	if s.RefID != (ntp.RefID{}) {
		st.Stratum, st.RefID = 2, s.RefID
	}
	return st
}

// ClientRefID is the reference ID of the simulated client's own address,
// 198.51.100.1: a server that sends it is synchronized to the client.
var ClientRefID = ntp.RefID{198, 51, 100, 1}
