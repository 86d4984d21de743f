package discipline

import (
	"math"
	"time"

	"github.com/meridian-ntp/meridian/internal/mono"
)

// Config configures a Discipline. Zero fields take the documented
// defaults.
type Config struct {
	// MaxSlewPPM is the largest frequency correction the clock takes, in
	// parts per million, slewing included (default 83333, chrony's: the
	// kernel's frequency setting reaches ±500 ppm, its tick length ±10%).
	MaxSlewPPM float64
	// MakeStep and MakeStepLimit: an offset above MakeStep is stepped
	// rather than slewed, during the first MakeStepLimit clock updates
	// (defaults 0.1 s and 3, chrony's "makestep 0.1 3"); MakeStepLimit
	// -1 never steps.
	MakeStep      time.Duration
	MakeStepLimit int
	// MinSlew is the shortest time over which an offset is slewed away
	// (default 2 s).
	MinSlew time.Duration
	// MinPoll and MaxPoll bound the poll interval of every source, as
	// log2 seconds (defaults 6 and 10: 64 s to 1024 s, chrony's and
	// ntpd's defaults).
	MinPoll, MaxPoll int8
}

func (c *Config) defaults() {
	if c.MaxSlewPPM <= 0 {
		c.MaxSlewPPM = 83333
	}
	if c.MakeStep <= 0 {
		c.MakeStep = 100 * time.Millisecond
	}
	if c.MakeStepLimit == 0 {
		c.MakeStepLimit = 3
	}
	if c.MinSlew <= 0 {
		c.MinSlew = 2 * time.Second
	}
	if c.MinPoll == 0 {
		c.MinPoll = 6
	}
	if c.MaxPoll == 0 {
		c.MaxPoll = 10
	}
	c.MaxPoll = max(c.MaxPoll, c.MinPoll)
}

// Adjustment is what the caller must do to the clock.
type Adjustment struct {
	// Step, if not zero, is added to the clock at once.
	Step time.Duration
	// FreqPPM is the frequency correction the clock must run with from
	// now on, in parts per million (positive: faster).
	FreqPPM float64
	// Wake, if not zero, is when HandleTimer must be called (the end of a
	// slew).
	Wake mono.Instant
}

// Discipline turns the samples of its sources into corrections of the
// local clock. It is not safe for concurrent use.
type Discipline struct {
	cfg     Config
	sources map[int]*estimator

	// The corrections applied so far: corr is their integral at corrAt
	// (seconds), freq the frequency correction in force since (s/s).
	corr    float64
	corrAt  mono.Instant
	freq    float64
	nu      float64 // the estimated natural drift rate, s/s
	slewEnd mono.Instant
	slewing bool
	updates int
}

// New returns a Discipline with no sources, taking no correction yet, at
// time now.
func New(cfg Config, now mono.Instant) *Discipline {
	cfg.defaults()
	return &Discipline{cfg: cfg, sources: map[int]*estimator{}, corrAt: now}
}

// Corrected returns the integral of the corrections applied up to now
// (seconds of time added to the clock), for Measurement.Corrected.
func (d *Discipline) Corrected(now mono.Instant) float64 {
	return d.corr + d.freq*now.Sub(d.corrAt).Seconds()
}

// setFreq records that the frequency correction changes to f at now.
func (d *Discipline) setFreq(now mono.Instant, f float64) {
	d.corr = d.Corrected(now)
	d.corrAt = now
	d.freq = f
}

// Sample folds in a measurement of source src (any small integer the
// caller keeps for it) and returns the clock's new adjustment.
func (d *Discipline) Sample(now mono.Instant, src int, m Measurement) Adjustment {
	e := d.sources[src]
	if e == nil {
		e = newEstimator()
		e.poll = d.cfg.MinPoll
		d.sources[src] = e
	}
	e.add(m)
	e.adaptPoll(d.cfg.MinPoll, d.cfg.MaxPoll)
	return d.update(now)
}

// Poll returns the interval at which source src should be polled now.
func (d *Discipline) Poll(src int) time.Duration {
	p := d.cfg.MinPoll
	if e := d.sources[src]; e != nil {
		p = e.poll
	}
	return time.Duration(1<<p) * time.Second
}

// HandleTimer ends a slew that has run its course.
func (d *Discipline) HandleTimer(now mono.Instant) Adjustment {
	if d.slewing && !now.Before(d.slewEnd) {
		d.slewing = false
		d.setFreq(now, d.nu)
	}
	return d.adjustment()
}

func (d *Discipline) adjustment() Adjustment {
	a := Adjustment{FreqPPM: d.freq * 1e6}
	if d.slewing {
		a.Wake = d.slewEnd
	}
	return a
}

// update combines the sources' estimates and sets the correction.
func (d *Discipline) update(now mono.Instant) Adjustment {
	cor := d.Corrected(now)
	var sw, theta, nu float64
	for _, e := range d.sources {
		t, n, vt, _ := e.estimate(now, cor)
		w := 1 / max(vt, 1e-20)
		sw += w
		theta += w * t
		nu += w * n
	}
	if sw == 0 {
		return d.adjustment()
	}
	theta, nu = theta/sw, nu/sw
	d.updates++
	d.nu = nu
	maxSlew := d.cfg.MaxSlewPPM * 1e-6
	if math.Abs(theta) > d.cfg.MakeStep.Seconds() && d.cfg.MakeStepLimit > 0 && d.updates <= d.cfg.MakeStepLimit {
		step := time.Duration(theta * 1e9)
		d.corr += theta
		d.setFreq(now, clamp(nu, maxSlew))
		d.slewing = false
		a := d.adjustment()
		a.Step = step
		return a
	}
	// Slew theta away over tau, as fast as the slew limit allows, and
	// never faster than MinSlew.
	room := maxSlew - math.Abs(nu)
	tau := d.cfg.MinSlew.Seconds()
	if room > 0 {
		tau = max(tau, math.Abs(theta)/room)
	}
	d.setFreq(now, clamp(nu+theta/tau, maxSlew))
	d.slewing = true
	d.slewEnd = now.Add(time.Duration(tau * 1e9))
	return d.adjustment()
}

func clamp(x, limit float64) float64 { return max(-limit, min(limit, x)) }
