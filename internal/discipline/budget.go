package discipline

import (
	"math"
	"slices"
	"time"
)

// Step is a step of the clock, as the step budget counts it.
type Step struct {
	At   time.Time     // the clock's reading just after the step
	Size time.Duration // positive: forward
}

// StepWindow is the span over which the step budget adds steps up.
const StepWindow = 24 * time.Hour

// MaxSteps bounds the steps remembered; older ones are merged.
const MaxSteps = 64

// Budget bounds the steps of a clock: their sizes, added up over the
// last StepWindow, may not pass its limit. The discipline keeps one for
// the steps it decides on; the clock keeper (package privsep) keeps its
// own for the steps it is asked to make. It is not safe for concurrent
// use.
type Budget struct {
	limit time.Duration // negative: no bound
	steps []Step        // oldest first
}

// NewBudget returns a budget of limit (negative: no bound) that starts
// with the steps made before (a step file's), in any order.
func NewBudget(limit time.Duration, steps []Step) *Budget {
	s := slices.Clone(steps)
	slices.SortStableFunc(s, func(a, b Step) int { return a.At.Compare(b.At) })
	return &Budget{limit: limit, steps: s}
}

// Allows reports whether a step of size at utc keeps the steps of the
// last StepWindow within the limit. A step recorded in the future (the
// clock has gone back since) counts as recent. The sum saturates: steps
// of a step file may each be as large as a time.Duration allows.
func (b *Budget) Allows(utc time.Time, size time.Duration) bool {
	return b.limit < 0 || addSat(b.spent(utc), size.Abs()) <= b.limit
}

// spent returns the steps of the last StepWindow at utc, added up.
func (b *Budget) spent(utc time.Time) time.Duration {
	var spent time.Duration
	for _, s := range b.steps {
		if utc.Sub(s.At) < StepWindow {
			spent = addSat(spent, s.Size.Abs())
		}
	}
	return spent
}

// addSat returns a+b for non-negative a and b, at most the largest
// duration.
func addSat(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Record adds a step of size made at utc, in time order (a step back
// puts the clock's reading before earlier steps'), forgetting those past
// the window and merging the oldest two while there are more than
// MaxSteps (so that the budget never forgets a step inside the window).
func (b *Budget) Record(utc time.Time, size time.Duration) {
	at := utc.Add(size)
	b.steps = slices.DeleteFunc(b.steps, func(s Step) bool { return at.Sub(s.At) >= StepWindow })
	b.steps = append(b.steps, Step{At: at, Size: size})
	slices.SortStableFunc(b.steps, func(x, y Step) int { return x.At.Compare(y.At) })
	for len(b.steps) > MaxSteps {
		b.steps[1].Size = addSat(b.steps[0].Size.Abs(), b.steps[1].Size.Abs())
		b.steps = b.steps[1:]
	}
}

// Remaining returns how much of the limit the steps of the last
// StepWindow leave at utc, and false if there is no limit.
func (b *Budget) Remaining(utc time.Time) (time.Duration, bool) {
	if b.limit < 0 {
		return 0, false
	}
	return max(b.limit-b.spent(utc), 0), true
}

// Steps returns the steps remembered, oldest first. The result is the
// caller's.
func (b *Budget) Steps() []Step { return slices.Clone(b.steps) }
