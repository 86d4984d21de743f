// Package clock is the clock the client steers: the kernel's
// CLOCK_REALTIME through adjtimex (Kernel), a clock measured and served
// but never steered (None, like chronyd -x), and a software clock for
// tests (Virtual). The clock discipline decides; a Clock carries out.
package clock

import (
	"time"

	"github.com/meridian-ntp/meridian/internal/ntp"
)

// Clock is a clock the discipline can steer.
type Clock interface {
	// Now reads the clock.
	Now() time.Time
	// SetFrequency sets the clock's frequency correction, in parts per
	// million (positive: the clock runs faster), replacing the previous
	// one.
	SetFrequency(ppm float64) error
	// Frequency returns the frequency correction in force.
	Frequency() (float64, error)
	// Step adds d to the clock at once.
	Step(d time.Duration) error
	// SetLeap arms a leap second at the end of the current UTC day
	// (LeapInsert, LeapDelete) or disarms it (LeapNone).
	SetLeap(ntp.Leap) error
	// SetStatus records whether the clock is synchronized and its
	// maximum and estimated errors, for other programs to read
	// (timedatectl, node_exporter).
	SetStatus(synced bool, maxErr, estErr time.Duration) error
	// FromSystem converts t, a reading of the system clock (such as a
	// kernel receive timestamp), to this clock's time.
	FromSystem(t time.Time) time.Time
}

// None is a clock that is read but never steered: every setter does
// nothing and reports success. With it the daemon measures its sources
// and serves time without touching the system clock, as chronyd -x does;
// run it beside another daemon that keeps the clock, or in a container.
type None struct{}

var _ Clock = None{}

// Now reads the system clock.
func (None) Now() time.Time { return time.Now() }

// SetFrequency does nothing.
func (None) SetFrequency(float64) error { return nil }

// Frequency is always zero: None corrects nothing.
func (None) Frequency() (float64, error) { return 0, nil }

// Step does nothing.
func (None) Step(time.Duration) error { return nil }

// SetLeap does nothing.
func (None) SetLeap(ntp.Leap) error { return nil }

// SetStatus does nothing.
func (None) SetStatus(bool, time.Duration, time.Duration) error { return nil }

// FromSystem returns t: None is the system clock.
func (None) FromSystem(t time.Time) time.Time { return t }
