package sim

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/meridian-ntp/meridian/internal/discipline"
	"github.com/meridian-ntp/meridian/internal/engine"
	"github.com/meridian-ntp/meridian/internal/mono"
	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/server"
	"github.com/meridian-ntp/meridian/internal/source"
)

// runner is one run of a scenario.
type runner struct {
	sc    Scenario
	rng   *rand.Rand
	c     clock
	start time.Time
	q     queue
	srvs  []simServer
	eng   *engine.Engine
	ec    engine.Config
	sends []engine.Send
	now   float64 // true time, s since start

	// timerAt is the true time of the engine's timer event; older timer
	// events in the queue are stale.
	timerAt float64
	// leapAt is when, in true time, UTC leaps: midnight for an inserted
	// second, 23:59:59 for a deleted one. armed is the leap second the
	// discipline armed the clock's kernel for.
	leapAt float64
	armed  ntp.Leap

	res      Result
	slewing  bool
	converge float64
	// Sums for the statistics: offsets over n ticks, rates over fn ticks
	// without a slew.
	sum2, fsum2 float64
	n, fn       int
}

// Run runs the scenario and returns its statistics.
func Run(sc Scenario) Result {
	r := newRunner(sc)
	end := sc.Duration.Seconds()
	for {
		ev := r.q.pop()
		if ev.at >= end {
			break
		}
		before := r.c.local
		r.c.advance(ev.at - r.now)
		r.now = ev.at
		r.kernelLeap(before)
		switch ev.kind {
		case evTick:
			r.tick()
		case evTimer:
			r.timer(ev)
		case evReply:
			r.reply(ev)
		case evRestart:
			r.restart()
		}
	}
	return r.result()
}

func newRunner(sc Scenario) *runner {
	r := &runner{sc: sc, rng: rand.New(rand.NewPCG(sc.Seed, sc.Seed^0x9E3779B97F4A7C15)),
		c: clock{local: sc.InitOffset.Seconds(), f: sc.InitFreq, wander: sc.Wander}, start: sc.Start,
		timerAt: -1, leapAt: sc.LeapAt.Seconds(), converge: sc.Converge.Seconds()}
	if r.start.IsZero() {
		r.start = defaultStart
	}
	if sc.Leap == ntp.LeapDelete {
		r.leapAt--
	}
	if r.converge <= 0 {
		r.converge = 1e-3
	}
	r.res.Converged = -1
	r.res.Requests = make([]int, len(sc.Servers))
	ec := engine.Config{Discipline: sc.Discipline, Poll: sc.Poll, Precision: -20, OwnRefIDs: []ntp.RefID{ClientRefID}}
	r.srvs = make([]simServer, len(sc.Servers))
	for i := range sc.Servers {
		r.srvs[i] = simServer{Server: sc.Servers[i], resp: server.NewResponder(server.Config{})}
		addr := netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})
		ec.Sources = append(ec.Sources, engine.SourceConfig{Name: addr.String(), Addr: netip.AddrPortFrom(addr, 123),
			RefID: addr.As4(), Options: engine.SourceOptions{IBurst: !sc.NoIBurst}, Group: sc.Servers[i].Group})
	}
	r.ec = ec
	r.eng = engine.New(ec, r.rands, r.mono())
	r.q.push(event{at: 1, kind: evTick})
	for _, at := range sc.Restarts {
		r.q.push(event{at: at.Seconds(), kind: evRestart})
	}
	r.schedule()
	return r
}

// rands gives the engine's sources their randomness.
func (r *runner) rands(i int) source.Rand {
	return rand.New(rand.NewPCG(r.sc.Seed+uint64(i)+1, 0x5EED))
}

// restart replaces the engine with a new one, as a restarted daemon
// would start: from the step file and the drift file the old one kept.
func (r *runner) restart() {
	d := r.eng.Discipline()
	ec := r.ec
	if !r.sc.ForgetSteps {
		ec.Discipline.Steps = d.Steps()
	}
	if ppm, sd, ok := d.Drift(r.mono()); ok {
		ec.Discipline.SetDrift(ppm, sd)
	}
	r.eng = engine.New(ec, r.rands, r.mono())
	r.c.a, r.slewing, r.armed = 0, false, ntp.LeapNone
	r.res.Restarts++
	r.schedule()
}

// mono returns the client's monotonic clock.
func (r *runner) mono() mono.Instant { return mono.Instant(r.c.mono * 1e9) }

// wall returns the client's clock as an NTP timestamp and as a time.
func (r *runner) wall() (ntp.Time, time.Time) {
	return ntpAt(r.start, r.c.local), r.start.Add(time.Duration(r.c.local * 1e9))
}

// utc returns the UTC time the clock should read at true time t: true
// time shifted by the leap second once it has happened.
func (r *runner) utc(t float64) float64 {
	if r.sc.LeapAt > 0 && t >= r.leapAt {
		switch r.sc.Leap {
		case ntp.LeapInsert:
			return t - 1
		case ntp.LeapDelete:
			return t + 1
		}
	}
	return t
}

// schedule queues the engine's next timer. The engine's timers run on
// the monotonic clock, which runs at the clock's rate; 1 ns more, so that
// the monotonic time then is not before the timer's for rounding.
func (r *runner) schedule() {
	next, _ := r.eng.Next() // the simulator's sources are fixed: always something
	r.timerAt = r.now + max(0, float64(next)/1e9-r.c.mono)/(1+r.c.rate()) + 1e-9
	r.q.push(event{at: r.timerAt, kind: evTimer})
}

// kernelLeap makes the leap second the kernel would make, armed, when the
// local clock passes the end of its UTC day (it read before before the
// last advance): it repeats the day's last second for an insertion, skips
// it for a deletion.
func (r *runner) kernelLeap(before float64) {
	if r.armed == ntp.LeapNone {
		return
	}
	startUnix := float64(r.start.Unix())
	end := math.Floor((startUnix+before)/86400+1)*86400 - startUnix
	switch {
	case r.armed == ntp.LeapInsert && r.c.local >= end:
		r.c.local--
	case r.armed == ntp.LeapDelete && r.c.local >= end-1:
		r.c.local++
	default:
		return
	}
	r.armed = ntp.LeapNone
	r.res.LeapsApplied++
}

// apply carries out an adjustment on the clock.
func (r *runner) apply(a discipline.Adjustment) {
	if a.Step != 0 {
		r.c.local += a.Step.Seconds()
		r.res.Steps++
		r.res.Stepped += a.Step
	}
	r.c.a = a.FreqPPM * 1e-6
	r.armed = a.Leap
	if a.Step != 0 || a.FreqPPM != 0 {
		r.res.Steered++
	}
	r.slewing = a.Wake != 0
}

// tick samples the clock's offset, then lets the oscillator wander.
func (r *runner) tick() {
	now := r.now
	if r.res.Converged < 0 && math.Abs(r.c.local-r.utc(now)) <= r.converge {
		r.res.Converged = time.Duration(now * 1e9)
	}
	if now >= r.sc.Skip.Seconds() {
		off := r.c.local - r.utc(now)
		// Within a second of the leap, UTC is ambiguous: the client's leap
		// happens when its own clock reaches midnight, a few microseconds
		// from true midnight, and a tick may fall between the two.
		if r.sc.LeapAt > 0 && math.Abs(now-r.leapAt) < 1 && math.Abs(r.c.local-now) < math.Abs(off) {
			off = r.c.local - now
		}
		r.sum2 += off * off
		r.n++
		r.res.FinalOffset = time.Duration(off * 1e9)
		if !r.slewing {
			r.fsum2 += r.c.rate() * r.c.rate()
			r.fn++
		}
		if a := time.Duration(math.Abs(off) * 1e9); a > r.res.MaxOffset {
			r.res.MaxOffset = a
		}
	}
	r.c.f += r.c.wander * r.rng.NormFloat64()
	r.q.push(event{at: now + 1, kind: evTick})
}

// timer runs the engine's timer: it sends what is due.
func (r *runner) timer(ev event) {
	if ev.at != r.timerAt {
		return // stale
	}
	wall, _ := r.wall()
	var adj discipline.Adjustment
	var changed bool
	r.sends, adj, changed = r.eng.HandleTimer(r.mono(), wall, r.sends[:0])
	if changed {
		r.apply(adj)
	}
	for _, snd := range r.sends {
		r.deliver(snd)
	}
	r.schedule()
}

// deliver carries a request to its server and queues the reply.
func (r *runner) deliver(snd engine.Send) {
	ss := &r.srvs[snd.Src]
	up, ok1 := oneWay(r.rng, ss.Network, true)
	down, ok2 := oneWay(r.rng, ss.Network, false)
	if !ok1 || !ok2 || ss.Down != nil && ss.Down(r.now) {
		return
	}
	arrive := r.now + up
	r.res.Requests[snd.Src]++
	t2 := r.utc(arrive)
	if ss.Offset != nil {
		t2 += ss.Offset(arrive)
	}
	rx := ntpAt(r.start, t2)
	resp := make([]byte, ntp.HeaderLen)
	n, _ := ss.resp.Respond(mono.Instant(arrive*1e9), ss.state(r.start, arrive, t2), netip.AddrFrom4([4]byte{198, 51, 100, 1}),
		rx, snd.Packet, resp)
	if n == 0 {
		return
	}
	if ss.Kiss != nil {
		if code := ss.Kiss(arrive); code != (ntp.RefID{}) {
			var h ntp.Header
			if h.Decode(resp[:n]) == nil {
				h.MakeKiss(code)
				n, _ = h.Encode(resp) // a header fits the buffer it came from
			}
		}
	}
	server.StampTransmit(resp, rx)
	r.q.push(event{at: arrive + down, kind: evReply, srv: snd.Src, pkt: resp[:n]})
}

// reply hands a reply to the engine.
func (r *runner) reply(ev event) {
	t4, utc := r.wall()
	adj, err := r.eng.HandleResponse(r.mono(), ev.srv, ev.pkt, t4, utc)
	if err != nil {
		r.res.Refused++
		return
	}
	r.res.Samples++
	if d := r.eng.Discipline(); d.Smearing(r.mono(), ev.srv) && !slices.Contains(r.res.Smearing, ev.srv) {
		r.res.Smearing = append(r.res.Smearing, ev.srv)
	}
	r.apply(adj)
	r.schedule()
}

// result finishes the statistics.
func (r *runner) result() Result {
	res := r.res
	d := r.eng.Discipline()
	if a := d.Alarm(); a != discipline.AlarmNone {
		res.Alarm = a.String()
	}
	for i := range r.sc.Servers {
		if d.Truechimer(i) {
			res.Truechimers = append(res.Truechimers, i)
		}
	}
	if r.n > 0 {
		res.RMSOffset = time.Duration(math.Sqrt(r.sum2/float64(r.n)) * 1e9)
	}
	if r.fn > 0 {
		res.FreqRMS = math.Sqrt(r.fsum2 / float64(r.fn))
	}
	return res
}
