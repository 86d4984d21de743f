package privsep

import (
	"fmt"
	"math"
	"time"

	"github.com/meridian-ntp/meridian/internal/discipline"
	"github.com/meridian-ntp/meridian/internal/ntp"
)

// Policy is the keeper's own limits, applied to every request whatever
// the engine says. Zero fields take the defaults.
type Policy struct {
	// MaxStep is the largest step made (default 1000 s, the panic
	// threshold's default; negative: no bound).
	MaxStep time.Duration
	// MaxFreqPPM is the largest frequency correction, slewing included
	// (default 83333 ppm, the discipline's own largest).
	MaxFreqPPM float64
}

// Policy defaults.
const (
	DefaultMaxStep    = 1000 * time.Second
	DefaultMaxFreqPPM = 83333
)

// DriftPPM is the frequency correction that any oscillator's own error
// can need (the kernel's frequency offset covers ±500 ppm): the keeper
// lets the clock run at it for as long as the engine likes. What a
// correction beyond it moves the clock (a slew) counts against the step
// budget as a step would, so that slewing at 83333 ppm, 2 hours a day,
// is no way around it.
const DriftPPM = 500

// budgetSlack is what is left of a budget that counts as spent: a slew's
// share is measured in floating point.
const budgetSlack = time.Millisecond

// excess returns the part of a frequency correction beyond DriftPPM, as
// a rate (s/s).
func excess(ppm float64) float64 { return max(math.Abs(ppm)-DriftPPM, 0) * 1e-6 }

// budgetSpent reports whether b, a bounded budget, is spent at utc.
func budgetSpent(b *discipline.Budget, utc time.Time) bool {
	left, limited := b.Remaining(utc)
	return limited && left < budgetSlack
}

func (p *Policy) defaults() {
	if p.MaxStep == 0 {
		p.MaxStep = DefaultMaxStep
	}
	if p.MaxFreqPPM <= 0 {
		p.MaxFreqPPM = DefaultMaxFreqPPM
	}
}

// check reports why the policy refuses r at utc (the keeper's own reading
// of the clock), with the step budget b, or nil if it allows it. It
// changes nothing.
func (p *Policy) check(r Request, utc time.Time, b *discipline.Budget) error {
	switch r.Op {
	case OpFrequency:
		if math.Abs(r.FreqPPM) > p.MaxFreqPPM {
			return fmt.Errorf("frequency correction %.3f ppm beyond ±%.0f", r.FreqPPM, p.MaxFreqPPM)
		}
		// A slew beyond DriftPPM needs what is left of the budget.
		if excess(r.FreqPPM) > 0 && budgetSpent(b, utc) {
			return fmt.Errorf("a slew at %.3f ppm: the step budget of the last %v is spent", r.FreqPPM, discipline.StepWindow)
		}
	case OpStep:
		if p.MaxStep >= 0 && r.Step.Abs() > p.MaxStep {
			return fmt.Errorf("step of %v beyond %v", r.Step, p.MaxStep)
		}
		if !b.Allows(utc, r.Step) {
			return fmt.Errorf("step of %v beyond the step budget of the last %v", r.Step, discipline.StepWindow)
		}
	case OpLeap:
		if r.Leap != ntp.LeapNone && utc.UTC().AddDate(0, 0, 1).Day() != 1 {
			return fmt.Errorf("leap second armed on %s, not the last day of a month", utc.UTC().Format(time.DateOnly))
		}
	}
	return nil
}
