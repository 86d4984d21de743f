package discipline

import (
	"math"
	"slices"
	"time"

	"github.com/meridian-ntp/meridian/internal/leapfile"
	"github.com/meridian-ntp/meridian/internal/mono"
	"github.com/meridian-ntp/meridian/internal/ntp"
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
	// Sources is how many sources are configured (default 1). During
	// the first StartWait after New, the clock is not steered before more
	// than half of them have given samples, so that the first step does
	// not rest on the first source to answer; after it, the sources that
	// answer decide, however few.
	Sources int
	// MinSources is how many sources must agree (be selected as
	// truechimers) for the clock to be steered (default 1).
	MinSources int
	// Panic is the largest offset the discipline corrects (default
	// 1000 s); a larger one is refused, and reported, until the sources
	// agree on less. Negative: no limit.
	Panic time.Duration
	// DriftPPM and DriftSDPPM are the oscillator's frequency error as the
	// drift file last recorded it, in ppm (positive: fast), and its
	// standard deviation; DriftSDPPM 0 means no drift file, and the
	// first estimate then starts from nothing (500 ppm either way).
	DriftPPM, DriftSDPPM float64
	// Observe: the caller measures and serves but never steers the clock
	// (the clock backend "none"): the corrections the discipline decides
	// are not applied, so the estimates must not assume they were.
	Observe bool
	// StepBudget bounds the steps: their sizes, added up over the last
	// StepWindow, may not pass it (default: Panic, and no bound if Panic
	// has none; negative: no bound).
	// A step that would pass it is refused, like an offset beyond Panic:
	// the clock is held and the alarm says why, until the offset falls
	// within MakeStep or the window frees room. Steps lists the steps
	// made before this start (the step file), so that restarts, each
	// allowing a step, do not reset the budget: a series of steps below
	// every threshold with restarts between them (the small-step-big-step
	// attack, CVE-2015-5300; THREATS D5) moves the clock by StepBudget a
	// day at most.
	StepBudget time.Duration
	Steps      []Step
	// Leaps, if set and not expired, is the table of leap seconds
	// (leap-seconds.list): it alone decides whether a leap second is
	// armed, whatever the sources announce (THREATS E3). Expired or nil,
	// the sources decide.
	Leaps *leapfile.File
}

// SetDrift starts the estimate from a remembered frequency error (a
// drift file's, or a restart's): ppm, with standard deviation sdPPM, no
// less than the discipline's floor (so that a remembered deviation of 0
// is not taken for none).
func (c *Config) SetDrift(ppm, sdPPM float64) {
	c.DriftPPM, c.DriftSDPPM = ppm, max(sdPPM, minDriftSD*1e6)
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
	c.Sources = max(c.Sources, 1)
	c.MinSources = max(c.MinSources, 1)
	if c.Panic == 0 {
		c.Panic = 1000 * time.Second
	}
	if c.StepBudget == 0 {
		c.StepBudget = c.Panic
	}
}

// Alarm says why the discipline is not steering the clock.
type Alarm uint8

// Alarms.
const (
	AlarmNone       Alarm = iota
	AlarmWaiting          // fewer than half the sources have answered yet
	AlarmNoMajority       // no majority of the sources agree
	AlarmTooFew           // fewer than MinSources sources agree
	AlarmPanic            // the sources agree on an offset beyond Panic
	AlarmStepBudget       // a step would pass the step budget
)

var alarmText = [...]string{"", "waiting for a majority of the sources", "no majority of the sources agree",
	"too few sources agree", "offset beyond the panic threshold", "a step would pass the step budget of the last 24 hours"}

func (a Alarm) String() string {
	if int(a) < len(alarmText) {
		return alarmText[a]
	}
	return "unknown"
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
	// Leap is the leap second the kernel must be armed for now:
	// LeapInsert or LeapDelete at the end of the current UTC day, or
	// LeapNone (disarm).
	Leap ntp.Leap
}

// Options are one source's options. Zero fields take the Config's
// values.
type Options struct {
	// MinPoll and MaxPoll bound the source's poll interval, log2 seconds
	// (0: Config.MinPoll and Config.MaxPoll).
	MinPoll, MaxPoll int8
	// NoSelect: the source is measured and shown but never selected, so
	// it never steers the clock nor counts toward a majority.
	NoSelect bool
	// Prefer: while any preferred source is a truechimer, only the
	// preferred truechimers are combined (the others still count toward
	// the majority and MinSources).
	Prefer bool
}

// Discipline turns the samples of its sources into corrections of the
// local clock. It is not safe for concurrent use.
type Discipline struct {
	cfg     Config
	sources map[int]*estimator
	opts    map[int]Options

	// The corrections applied so far: corr is their integral at corrAt
	// (seconds), freq the frequency correction in force since (s/s).
	corr    float64
	corrAt  mono.Instant
	freq    float64
	nu      float64 // the estimated natural drift rate, s/s
	slewEnd mono.Instant
	slewing bool
	updates int
	alarm   Alarm
	leap    ntp.Leap
	started mono.Instant
	budget  *Budget
}

// StartWait is how long after start the discipline waits for a majority
// of the configured sources before it steers with fewer: long enough for
// every source's first exchanges, iburst or not.
const StartWait = 30 * time.Second

// New returns a Discipline with no sources, taking no correction yet, at
// time now.
func New(cfg Config, now mono.Instant) *Discipline {
	cfg.defaults()
	return &Discipline{cfg: cfg, sources: map[int]*estimator{}, opts: map[int]Options{}, corrAt: now, started: now,
		budget: NewBudget(cfg.StepBudget, cfg.Steps)}
}

// SetOptions sets source src's options; a source without is polled and
// selected by the Config alone.
func (d *Discipline) SetOptions(src int, o Options) Options {
	// A bound given alone moves the other when it must: maxpoll 4 alone
	// polls every 16 s, minpoll 12 alone every 4096 s.
	switch {
	case o.MinPoll == 0 && o.MaxPoll == 0:
		o.MinPoll, o.MaxPoll = d.cfg.MinPoll, d.cfg.MaxPoll
	case o.MinPoll == 0:
		o.MinPoll = min(d.cfg.MinPoll, o.MaxPoll)
	case o.MaxPoll == 0:
		o.MaxPoll = max(d.cfg.MaxPoll, o.MinPoll)
	}
	o.MaxPoll = max(o.MaxPoll, o.MinPoll)
	d.opts[src] = o
	if e := d.sources[src]; e != nil {
		e.poll = max(o.MinPoll, min(o.MaxPoll, e.poll))
	}
	return o
}

// Remove forgets source src: its estimate no longer takes part, and a
// later source of the same number starts afresh.
func (d *Discipline) Remove(src int) {
	delete(d.sources, src)
	delete(d.opts, src)
}

// options returns source src's options, the Config's if it has none.
func (d *Discipline) options(src int) Options {
	if o, ok := d.opts[src]; ok {
		return o
	}
	return Options{MinPoll: d.cfg.MinPoll, MaxPoll: d.cfg.MaxPoll}
}

// Corrected returns the integral of the corrections applied up to now
// (seconds of time added to the clock), for Measurement.Corrected.
func (d *Discipline) Corrected(now mono.Instant) float64 {
	if d.cfg.Observe {
		return 0
	}
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
	if e != nil && e.smearUntil != 0 && !now.Before(e.smearUntil) {
		// Its smear is over: its filter, which followed the smear, would
		// mislead; start it afresh.
		e = nil
	}
	if e == nil {
		e = newEstimator()
		if d.cfg.DriftSDPPM > 0 {
			e.initNu, e.initNuSD = -d.cfg.DriftPPM*1e-6, max(d.cfg.DriftSDPPM*1e-6, minDriftSD)
		}
		e.poll = d.options(src).MinPoll
		d.sources[src] = e
	}
	e.add(m, d.Corrected(m.At))
	o := d.options(src)
	e.adaptPoll(o.MinPoll, o.MaxPoll)
	a := d.update(now, m.UTC)
	d.leap = d.leapVote(m.UTC)
	d.spotSmear(now, e, m.UTC)
	a.Leap = d.leap
	return a
}

// Drift returns the oscillator's frequency error as the sources now
// estimate it, in ppm (positive: fast), and its standard deviation, for
// the drift file; ok is false before the clock has been steered.
func (d *Discipline) Drift(now mono.Instant) (ppm, sdPPM float64, ok bool) {
	if d.updates == 0 {
		return 0, 0, false
	}
	var sw, nu float64
	for _, e := range d.sources {
		if !e.truechimer {
			continue
		}
		_, n, _, vn := e.estimate(now, d.Corrected(now))
		w := 1 / max(vn, 1e-30)
		sw += w
		nu += w * n
	}
	if sw == 0 {
		return 0, 0, false
	}
	return -nu / sw * 1e6, math.Sqrt(1/sw) * 1e6, true
}

// Synced reports whether the clock is being steered from its sources:
// it has been updated at least once and no alarm stands.
func (d *Discipline) Synced() bool { return d.updates > 0 && d.alarm == AlarmNone }

// Estimate returns source src's offset estimate at now and its standard
// deviation, in seconds, and whether it has any.
func (d *Discipline) Estimate(now mono.Instant, src int) (theta, sd float64, ok bool) {
	e := d.sources[src]
	if e == nil {
		return 0, 0, false
	}
	t, _, vt, _ := e.estimate(now, d.Corrected(now))
	return t, math.Sqrt(vt), true
}

// leapVote returns the leap second to arm at utc: the one more than half
// of the truechimers announce, and only on the last day of a month (RFC
// 5905 §7.3, and THREATS E1-E3: one source, or a minority, cannot make
// the clock leap, and no announcement arms the kernel before the day the
// leap can happen).
func (d *Discipline) leapVote(utc time.Time) ntp.Leap {
	if utc.IsZero() || utc.UTC().AddDate(0, 0, 1).Day() != 1 {
		return ntp.LeapNone
	}
	if d.cfg.Leaps != nil && !d.cfg.Leaps.Expired(utc) {
		return d.cfg.Leaps.LeapAt(utc)
	}
	return d.LeapAnnounced()
}

// smearTail is how long after a leap second a source suspected of
// smearing it stays out of selection: the end of a smear that spreads the
// second over the 24 hours around it, as some public servers do.
const smearTail = 12 * time.Hour

// smearGuard: in the last hour before the leap, and during it, a source
// that stops announcing is not suspected: it may have made the leap
// already while this clock, a little behind, has not.
const smearGuard = time.Hour

// spotSmear marks source e, just sampled, if it is suspected of smearing
// a leap second (THREATS E4): on the day a leap second is armed that most
// truechimers announce, a source whose reply does not announce it is
// likely spreading it over a day (RFC 8633 §3.7.1 advises against mixing
// such servers with others). Its time drifts from UTC by up to half a
// second by midnight; it is kept out of selection from then until
// smearTail after the leap, so that it neither pulls the clock early on
// nor is called a falseticker whose estimate the leap then spoils.
func (d *Discipline) spotSmear(now mono.Instant, e *estimator, utc time.Time) {
	if d.leap == ntp.LeapNone || e.leap == d.leap || d.LeapAnnounced() != d.leap {
		return
	}
	u := utc.UTC()
	midnight := time.Date(u.Year(), u.Month(), u.Day()+1, 0, 0, 0, 0, time.UTC)
	if midnight.Sub(u) < smearGuard {
		return
	}
	e.smearUntil = now.Add(midnight.Sub(u) + smearTail)
}

// Smearing reports whether source src is suspected at now of smearing a
// leap second, and kept out of selection for it.
func (d *Discipline) Smearing(now mono.Instant, src int) bool {
	e := d.sources[src]
	return e != nil && now.Before(e.smearUntil)
}

// LeapAnnounced returns the leap second more than half of the
// truechimers announce, whatever the day: what a server passes on to its
// clients.
func (d *Discipline) LeapAnnounced() ntp.Leap {
	var n, ins, del int
	for _, e := range d.sources {
		if !e.truechimer {
			continue
		}
		n++
		switch e.leap {
		case ntp.LeapInsert:
			ins++
		case ntp.LeapDelete:
			del++
		}
	}
	switch {
	case 2*ins > n:
		return ntp.LeapInsert
	case 2*del > n:
		return ntp.LeapDelete
	}
	return ntp.LeapNone
}

// Poll returns the interval at which source src should be polled now.
func (d *Discipline) Poll(src int) time.Duration {
	p := d.options(src).MinPoll
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
	a := Adjustment{FreqPPM: d.freq * 1e6, Leap: d.leap}
	if d.slewing {
		a.Wake = d.slewEnd
	}
	return a
}

// update selects and combines the sources' estimates and sets the
// correction. While it cannot steer, the clock keeps its last frequency
// (holdover) and the alarm says why.
func (d *Discipline) update(now mono.Instant, utc time.Time) Adjustment {
	theta, nu, ok := d.combine(now)
	if !ok {
		return d.holdover(now)
	}
	if d.cfg.Panic > 0 && math.Abs(theta) > d.cfg.Panic.Seconds() {
		d.alarm = AlarmPanic
		return d.holdover(now)
	}
	stepping := math.Abs(theta) > d.cfg.MakeStep.Seconds() && d.cfg.MakeStepLimit > 0 && d.updates < d.cfg.MakeStepLimit
	step := time.Duration(theta * 1e9)
	if stepping && !d.cfg.Observe && !d.budget.Allows(utc, step) {
		d.alarm = AlarmStepBudget
		return d.holdover(now)
	}
	d.alarm = AlarmNone
	d.updates++
	d.nu = nu
	maxSlew := d.cfg.MaxSlewPPM * 1e-6
	if stepping {
		if !d.cfg.Observe {
			d.budget.Record(utc, step)
		}
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

// Steps returns the steps remembered, oldest first, for the step file:
// those the Config gave and those made since, less those that had left
// the window when the last step was made. The result is the caller's.
func (d *Discipline) Steps() []Step { return d.budget.Steps() }

// holdover stops any slew and keeps the clock at the last estimated drift.
func (d *Discipline) holdover(now mono.Instant) Adjustment {
	if d.slewing {
		d.slewing = false
		d.setFreq(now, d.nu)
	}
	return d.adjustment()
}

// combine selects the truechimers among the sources and returns their
// inverse-variance weighted offset and drift, or sets the alarm and
// reports false.
func (d *Discipline) combine(now mono.Instant) (theta, nu float64, ok bool) {
	cor := d.Corrected(now)
	cs := make([]candidate, 0, len(d.sources))
	for src, e := range d.sources {
		o := d.options(src)
		// A source suspected of smearing stays out until its next sample
		// after the smear, which starts its filter afresh.
		if o.NoSelect || e.smearUntil != 0 {
			e.truechimer, e.combined = false, false
			continue
		}
		t, n, vt, _ := e.estimate(now, cor)
		lo, hi := interval(t, vt, slices.Min(e.delays), e.rootDist)
		cs = append(cs, candidate{src: src, group: e.group, theta: t, nu: n, varTheta: vt, lo: lo, hi: hi, prefer: o.Prefer})
	}
	// Every source with an estimate has answered.
	if 2*len(d.sources) <= d.cfg.Sources && now.Sub(d.started) < StartWait {
		d.alarm = AlarmWaiting
		return 0, 0, false
	}
	if !selectDiverse(cs) {
		d.alarm = AlarmNoMajority
		return 0, 0, false
	}
	var sw float64
	agree, preferred := 0, false
	for _, c := range cs {
		d.sources[c.src].truechimer = c.truechime
		if c.truechime {
			agree++
			preferred = preferred || c.prefer
		}
	}
	for _, c := range cs {
		e := d.sources[c.src]
		e.combined = c.truechime && (c.prefer || !preferred)
		if !e.combined {
			continue
		}
		w := 1 / max(c.varTheta, 1e-20)
		sw += w
		theta += w * c.theta
		nu += w * c.nu
	}
	if agree < d.cfg.MinSources {
		d.alarm = AlarmTooFew
		return 0, 0, false
	}
	return theta / sw, nu / sw, true
}

// Alarm returns why the discipline is not steering the clock, or
// AlarmNone.
func (d *Discipline) Alarm() Alarm { return d.alarm }

// Truechimer reports whether source src was selected at the last update.
func (d *Discipline) Truechimer(src int) bool {
	e := d.sources[src]
	return e != nil && e.truechimer
}

// Combined reports whether source src's estimate was combined into the
// clock's at the last update: a truechimer, and preferred if any
// truechimer is.
func (d *Discipline) Combined(src int) bool {
	e := d.sources[src]
	return e != nil && e.combined
}

func clamp(x, limit float64) float64 { return max(-limit, min(limit, x)) }
