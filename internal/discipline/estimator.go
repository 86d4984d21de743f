package discipline

import (
	"math"
	"slices"
	"time"

	"github.com/meridian-ntp/meridian/internal/mono"
	"github.com/meridian-ntp/meridian/internal/ntp"
)

// wanderLevels are the frequency wanders, in s/s per square root of a
// second, of the filters in an estimator's bank: from an oven-controlled
// oscillator to a cheap crystal in a room whose temperature swings.
var wanderLevels = [...]float64{1e-11, 3e-11, 1e-10, 3e-10, 1e-9, 3e-9, 1e-8, 3e-8, 1e-7, 3e-7}

// delayWindow is how many recent samples the minimum delay is taken
// over: long enough that the minimum is near the path's true minimum
// (in simulation, 64 samples did worse at high jitter, 256 no better).
// A change of route that raises the minimum is followed only after this
// many samples: 36 hours at a poll of 1024 s.
const delayWindow = 128

// minBias is how far the minimum of delayWindow samples typically lies
// above the path's true minimum, as a share of the median excess delay
// (for exponential delays about 0.1). floorShare adds a variance of
// (floorShare × median excess)² to every sample, so that the filter never
// takes one sample at the minimum for exact. Both were chosen in
// simulation, in chrony's model, for polls of 64 and 1024 s and jitter of
// 1 and 10 ms: without the floor, 1024 s polls did 15% worse at 10 ms of
// jitter; without the bias, 64 s polls did 8% worse.
const (
	minBias    = 0.1
	floorShare = 0.055
)

// Measurement is one sample of a source, as the estimator takes it.
type Measurement struct {
	// At is when the sample was taken (its receive time), on the
	// monotonic clock.
	At mono.Instant
	// Offset is the source's time minus the local clock's.
	Offset time.Duration
	// Delay is the round-trip delay.
	Delay time.Duration
	// RootDistance is the server's own distance from its reference:
	// half its root delay plus its root dispersion.
	RootDistance time.Duration
	// Leap is the leap indicator of the server's reply.
	Leap ntp.Leap
	// UTC is the local clock's reading at the sample, as a time: it
	// tells which day a leap second may be armed on.
	UTC time.Time
	// Group names the network the source is in (its IPv4 /24 or IPv6
	// /48, say): the sources of one group count as one in selection.
	// Empty: a group of its own.
	Group string
}

// estimator tracks the offset of one source's time from the local clock
// and the local clock's frequency error, from that source's samples.
type estimator struct {
	bank    [len(wanderLevels)]kalman
	n       int          // samples taken
	last    mono.Instant // time of the last sample
	lastCor float64      // Discipline.Corrected at the last sample
	delays  []float64    // recent delays, oldest first, at most delayWindow
	poll    int8         // the poll interval, log2 seconds
	// rootDist is the server's root distance in its last sample, s.
	rootDist float64
	// truechimer: selected at the last update; combined: and combined
	// into the clock's estimate (see Options.Prefer).
	truechimer, combined bool
	// jumps counts the times the source's time jumped (see add).
	jumps int
	// leap is the leap indicator of the last sample; smearUntil is when
	// the source, suspected of smearing a leap second, may be selected
	// again.
	leap       ntp.Leap
	smearUntil mono.Instant
	// initNu and initNuSD start the drift estimate (from the drift file).
	initNu, initNuSD float64
	group            string
}

// The wander levels' prior: see newEstimator.
const (
	priorLevel = 4 // wanderLevels[4] = 1e-9
	priorStep  = 1.0
)

// Initial uncertainty: the frequency error of an uncalibrated crystal;
// with a drift file, no less than minDriftSD (the oscillator may have
// aged or warmed since it was written).
const (
	initFreqSD = 500e-6
	minDriftSD = 0.1e-6
)

// A jump: an innovation over jumpMin seconds and over jumpSigmas standard
// deviations of what the filter expected.
// A young filter (fewer than jumpMinSamples samples) does not know its
// drift well enough to call anything a jump.
const (
	jumpMin        = 0.5
	jumpSigmas     = 100
	jumpMinSamples = 8
)

func newEstimator() *estimator {
	e := &estimator{}
	for i, w := range wanderLevels {
		e.bank[i].q = w * w
		// A prior for the likelihoods: a computer's crystal wanders by
		// about 1e-9 (priorLevel); a level k steps away starts k·priorStep
		// behind, so that the first few samples, which cannot tell the
		// levels apart, do not hand the lead to an extreme one whose
		// frequency estimate follows every sample's noise.
		e.bank[i].logLik = -priorStep * math.Abs(float64(i-priorLevel))
	}
	return e
}

// add folds in a measurement taken when the integral of the corrections
// applied to the clock was cor (see Discipline.Corrected).
func (e *estimator) add(m Measurement, cor float64) {
	e.leap, e.group, e.rootDist = m.Leap, m.Group, m.RootDistance.Seconds()
	z := m.Offset.Seconds()
	d := m.Delay.Seconds()
	e.delays = append(e.delays, d)
	if len(e.delays) > delayWindow {
		e.delays = e.delays[1:]
	}
	r := e.variance(d)
	prior, dt, corr := e.n, m.At.Sub(e.last).Seconds(), cor-e.lastCor
	e.n++
	e.last, e.lastCor = m.At, cor
	if prior == 0 {
		sd := initFreqSD
		if e.initNuSD > 0 {
			sd = e.initNuSD
		}
		for i := range e.bank {
			e.bank[i].theta, e.bank[i].nu = z, e.initNu
			e.bank[i].p = [2][2]float64{{r, 0}, {0, sd * sd}}
		}
		return
	}
	best := e.best()
	for i := range e.bank {
		e.bank[i].predict(dt, corr)
	}
	// A sample so far from the prediction that no delay explains it means
	// the source's time jumped (or ours did): start the offset afresh
	// rather than read the jump as drift, which would corrupt the
	// frequency of every filter.
	k := &e.bank[best]
	if innov := z - k.theta; prior >= jumpMinSamples && math.Abs(innov) > jumpMin && innov*innov > jumpSigmas*jumpSigmas*(k.p[0][0]+r) {
		e.jumps++
		for i := range e.bank {
			e.bank[i].theta = z
			e.bank[i].p[0][0] = r
			e.bank[i].p[0][1], e.bank[i].p[1][0] = 0, 0
		}
		return
	}
	for i := range e.bank {
		e.bank[i].update(z, r)
	}
}

// variance returns the measurement variance of a sample of delay d: its
// offset error is at most half its delay above the path's minimum, spread
// evenly between those bounds when the excess splits at random between
// the two directions, so its variance is excess²/12. The excess is counted
// from the window's minimum, which lies above the true minimum by about
// minBias of the median excess; the floor (see floorShare) and 10 ns for
// the timestamps are added.
func (e *estimator) variance(d float64) float64 {
	lo := slices.Min(e.delays)
	m := e.medianExcess(lo)
	x := d - lo + minBias*m
	r := x*x/12 + floorShare*floorShare*m*m + 1e-16
	// While the window holds few delays, its minimum says little about
	// the path's: the sample's error is then bounded only by half its
	// whole delay, evenly spread ((d/2)²/3), a bound that fades as the
	// window fills. Without it the first samples of a jittery path look
	// precise, and a frequency fitted to three of them two seconds apart
	// can be off by thousands of ppm.
	if w := 1 - float64(len(e.delays))/youngWindow; w > 0 {
		r += w * d * d / 12
	}
	return r
}

// youngWindow is how many delays the window must hold before its minimum
// is trusted fully.
const youngWindow = 16

// medianExcess returns the median delay above lo in the window.
func (e *estimator) medianExcess(lo float64) float64 {
	s := slices.Clone(e.delays)
	slices.Sort(s)
	return s[len(s)/2] - lo
}

// best returns the index of the likeliest filter of the bank.
func (e *estimator) best() int {
	b := 0
	for i := range e.bank {
		if e.bank[i].logLik > e.bank[b].logLik {
			b = i
		}
	}
	return b
}

// estimate returns the leading filter's estimate, extrapolated to now,
// given the corrections integral cor at now: the offset (s) and drift rate
// (s/s) and their variances.
func (e *estimator) estimate(now mono.Instant, cor float64) (theta, nu, varTheta, varNu float64) {
	k := e.bank[e.best()]
	dt := now.Sub(e.last).Seconds()
	k.predict(dt, cor-e.lastCor)
	return k.theta, k.nu, k.p[0][0], k.p[1][1]
}

// Poll adaptation: a source is polled less often while the error that the
// oscillator's wander would add over the longer interval stays well below
// the typical error of one sample (the path's median excess delay over
// √12), and more often when it no longer does. A noisy path thus goes to
// the longest poll (more samples would help it, but a client must not load
// its servers for that), and a quiet path with a wandering oscillator
// stays short enough to follow it. The typical error, unlike the
// filter's uncertainty, does not swing from one sample to the next, so
// neither does the poll.
const (
	pollUp       = 0.5 // lengthen while wander < pollUp × uncertainty
	pollDown     = 1.5 // shorten when wander > pollDown × uncertainty
	pollMinCount = 8   // samples before the first lengthening
)

// adaptPoll moves the poll exponent by at most one step after a sample.
func (e *estimator) adaptPoll(minPoll, maxPoll int8) {
	k := &e.bank[e.best()]
	sd := e.medianExcess(slices.Min(e.delays)) / math.Sqrt(12)
	grow := func(p int8) float64 {
		t := math.Ldexp(1, int(p))
		return math.Sqrt(k.q * t * t * t / 3)
	}
	switch {
	case e.n >= pollMinCount && e.poll < maxPoll && grow(e.poll+1) < pollUp*sd:
		e.poll++
	case e.poll > minPoll && grow(e.poll) > pollDown*sd:
		e.poll--
	}
	e.poll = max(minPoll, min(maxPoll, e.poll))
}
