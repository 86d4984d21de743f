package clock

import (
	"sync"
	"time"

	"github.com/meridian-ntp/meridian/internal/ntp"
)

// Virtual is a software clock over a base clock: it runs at the base
// clock's rate times (1 + the frequency correction), and steps add to it.
// It records what it was told, for tests. It is safe for concurrent use.
type Virtual struct {
	base func() time.Time

	// mu guards the fields below.
	mu      sync.Mutex
	at      time.Time     // base time of the last change
	offset  time.Duration // the virtual clock minus the base at at
	ppm     float64
	leap    ntp.Leap
	synced  bool
	maxErr  time.Duration
	estErr  time.Duration
	steps   []time.Duration
	freqSet int
}

var _ Clock = (*Virtual)(nil)

// NewVirtual returns a virtual clock that starts at the base clock's
// time plus offset; base nil means time.Now.
func NewVirtual(base func() time.Time, offset time.Duration) *Virtual {
	if base == nil {
		base = time.Now
	}
	return &Virtual{base: base, at: base(), offset: offset}
}

// settle folds the time run since the last change into offset. v.mu
// must be held.
func (v *Virtual) settle() time.Time {
	now := v.base()
	v.offset += time.Duration(float64(now.Sub(v.at)) * v.ppm * 1e-6)
	v.at = now
	return now
}

// Now reads the virtual clock.
func (v *Virtual) Now() time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.settle()
	return now.Add(v.offset)
}

// FromSystem converts a reading of the base clock (the system clock, by
// default) to the virtual clock's time, at the virtual clock's current
// offset from its base.
func (v *Virtual) FromSystem(t time.Time) time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.settle()
	return t.Add(v.offset)
}

// SetFrequency sets the frequency correction.
func (v *Virtual) SetFrequency(ppm float64) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.settle()
	v.ppm = ppm
	v.freqSet++
	return nil
}

// Frequency returns the frequency correction.
func (v *Virtual) Frequency() (float64, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.ppm, nil
}

// Step adds d to the clock.
func (v *Virtual) Step(d time.Duration) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.settle()
	v.offset += d
	v.steps = append(v.steps, d)
	return nil
}

// SetLeap records the leap second armed.
func (v *Virtual) SetLeap(l ntp.Leap) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.leap = l
	return nil
}

// SetStatus records the status.
func (v *Virtual) SetStatus(synced bool, maxErr, estErr time.Duration) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.synced, v.maxErr, v.estErr = synced, maxErr, estErr
	return nil
}

// Record is what a Virtual clock was told.
type Record struct {
	Steps        []time.Duration
	FrequencySet int // calls of SetFrequency
	Leap         ntp.Leap
	Synced       bool
	MaxErr       time.Duration
	EstErr       time.Duration
}

// Record returns what the clock was told so far.
func (v *Virtual) Record() Record {
	v.mu.Lock()
	defer v.mu.Unlock()
	return Record{Steps: append([]time.Duration(nil), v.steps...), FrequencySet: v.freqSet, Leap: v.leap,
		Synced: v.synced, MaxErr: v.maxErr, EstErr: v.estErr}
}
