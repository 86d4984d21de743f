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
	"time"

	"github.com/meridian-ntp/meridian/internal/discipline"
	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/server"
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
	// SpikeRate is the probability that a packet (each direction) is
	// held up by Spike more (a queue filling up, a route flapping).
	SpikeRate float64
	Spike     time.Duration
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
	// Kiss, if set, gives the kiss code (RATE, DENY, RSTR) the server
	// answers with at true time t instead of its time; the zero code:
	// none.
	Kiss func(t float64) ntp.RefID
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
	// Restarts are the times at which the client restarts (the daemon,
	// not the machine): a new engine takes over, given the steps the old
	// one made (as the step file keeps them, unless ForgetSteps) and the
	// drift it estimated (as the drift file does), with the clock's
	// frequency correction reset.
	Restarts    []time.Duration
	ForgetSteps bool
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
	// Requests counts the requests each server received.
	Requests []int
	// Restarts counts the client's restarts.
	Restarts int
	// Smearing lists the servers the discipline suspected, at some time,
	// of smearing a leap second.
	Smearing []int
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
	evRestart
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

// oneWay draws one packet's delay in seconds, or reports it lost.
func oneWay(rng *rand.Rand, n Network, up bool) (float64, bool) {
	if n.Loss > 0 && rng.Float64() < n.Loss {
		return 0, false
	}
	d := n.Base.Seconds() + n.Jitter.Seconds()*rng.ExpFloat64()
	if n.SpikeRate > 0 && rng.Float64() < n.SpikeRate {
		d += n.Spike.Seconds()
	}
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
