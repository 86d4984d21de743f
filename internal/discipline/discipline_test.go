package discipline

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/mono"
	"github.com/meridian-ntp/meridian/internal/ntp"
)

// TestKalmanLearnsDrift feeds exact measurements of an offset drifting at
// 10 ppm: the filter must find the drift, and must not mistake the
// corrections it is told about for drift.
func TestKalmanLearnsDrift(t *testing.T) {
	for _, corrRate := range []float64{0, 3e-6} {
		k := kalman{q: 1e-18}
		k.p = [2][2]float64{{1e-6, 0}, {0, 1e-6}}
		const nu = 10e-6
		theta := 0.0
		for range 20 {
			k.predict(64, corrRate*64)
			theta += (nu - corrRate) * 64
			k.update(theta, 1e-12)
		}
		if math.Abs(k.nu-nu) > 1e-9 || math.Abs(k.theta-theta) > 1e-7 {
			t.Errorf("corrections at %g: nu %g, theta %g; want %g, %g", corrRate, k.nu, k.theta, nu, theta)
		}
	}
}

// TestEstimatorWeighsByDelay: a sample with a long delay moves the
// estimate much less than one with a delay at the path's minimum.
func TestEstimatorWeighsByDelay(t *testing.T) {
	e := newEstimator()
	at := mono.Instant(0)
	for i := range 32 {
		at = at.Add(64 * time.Second)
		delay := 200*time.Microsecond + time.Duration(i%4)*100*time.Microsecond
		e.add(Measurement{At: at, Offset: 0, Delay: delay}, 0)
	}
	before, _, _, _ := e.estimate(at, 0)
	at = at.Add(64 * time.Second)
	e.add(Measurement{At: at, Offset: 5 * time.Millisecond, Delay: 10200 * time.Microsecond}, 0)
	slow, _, _, _ := e.estimate(at, 0)
	at = at.Add(64 * time.Second)
	e.add(Measurement{At: at, Offset: 5 * time.Millisecond, Delay: 200 * time.Microsecond}, 0)
	fast, _, _, _ := e.estimate(at, 0)
	t.Logf("5 ms offsets: at 10 ms above the minimum delay moved the estimate %.1f µs, at the minimum %.1f µs",
		(slow-before)*1e6, (fast-slow)*1e6)
	if math.Abs(slow-before) > 20e-6 {
		t.Errorf("a sample 10 ms slower than the minimum moved the offset by %v; want under 20 µs", slow-before)
	}
	if fast-slow < 20*math.Abs(slow-before) || fast-slow < 100e-6 {
		t.Errorf("a sample at the minimum delay moved the offset by %v; want 20 times more than the slow one and over 100 µs", fast-slow)
	}
}

func TestDisciplineSteps(t *testing.T) {
	d := New(Config{}, 0)
	at := mono.Instant(0)
	a := d.Sample(at, 0, Measurement{At: at, Offset: 500 * time.Millisecond, Delay: time.Millisecond})
	if a.Step < 499*time.Millisecond || a.Step > 501*time.Millisecond {
		t.Fatalf("first update with an offset of 0.5 s: step %v; want 0.5 s", a.Step)
	}
	// Past MakeStepLimit updates, an offset over MakeStep is slewed, at
	// the largest rate allowed.
	d = New(Config{MakeStepLimit: -1, MaxSlewPPM: 400}, 0)
	a = d.Sample(at, 0, Measurement{At: at, Offset: 500 * time.Millisecond, Delay: time.Millisecond})
	if a.Step != 0 || math.Abs(a.FreqPPM-400) > 1e-9 || a.Wake == 0 {
		t.Fatalf("offset of 0.5 s with stepping off: %+v; want no step, 400 ppm until a wake", a)
	}
	// The slew lasts until the offset is gone: 0.5 s at 400 ppm.
	if got := a.Wake.Sub(at); got < 1249*time.Second || got > 1251*time.Second {
		t.Errorf("slew of 0.5 s at 400 ppm ends after %v; want 1250 s", got)
	}
	a = d.HandleTimer(a.Wake)
	if a.FreqPPM != 0 || a.Wake != 0 {
		t.Errorf("after the slew: %+v; want the estimated drift (0 ppm) and no wake", a)
	}
	if got := d.Corrected(a.Wake.Add(1250 * time.Second)); math.Abs(got-0.5) > 1e-6 {
		t.Errorf("corrections applied: %v s; want 0.5 s", got)
	}
}

func TestDisciplineSlewsSmallOffsets(t *testing.T) {
	d := New(Config{MaxSlewPPM: 500}, 0)
	a := d.Sample(0, 0, Measurement{Offset: 2 * time.Millisecond, Delay: time.Millisecond})
	if a.Step != 0 || math.Abs(a.FreqPPM-500) > 1e-9 {
		t.Fatalf("offset of 2 ms: %+v; want a slew at 500 ppm (2 ms over 4 s)", a)
	}
	if got := a.Wake.Sub(0); got != 4*time.Second {
		t.Errorf("slew of 2 ms at 500 ppm ends after %v; want 4 s", got)
	}
}

func TestPollBounds(t *testing.T) {
	d := New(Config{MinPoll: 4, MaxPoll: 6}, 0)
	if got := d.Poll(3); got != 16*time.Second {
		t.Errorf("poll of an unknown source: %v; want 16s (MinPoll 4)", got)
	}
	// Exact samples on a quiet path: the poll climbs to MaxPoll and no
	// further.
	at := mono.Instant(0)
	for range 40 {
		at = at.Add(d.Poll(1))
		d.Sample(at, 1, Measurement{At: at, Offset: 0, Delay: time.Millisecond + time.Duration(at%7)*time.Microsecond})
	}
	if got := d.Poll(1); got != 64*time.Second {
		t.Errorf("poll after 40 samples: %v; want 64s (MaxPoll 6)", got)
	}
}

func TestSelectTruechimers(t *testing.T) {
	iv := func(lo, hi float64) candidate { return candidate{lo: lo, hi: hi} }
	for _, tt := range []struct {
		name string
		cs   []candidate
		ok   bool
		want []bool
	}{
		{"one", []candidate{iv(0, 1)}, true, []bool{true}},
		{"three agree, two apart", []candidate{iv(0, 2), iv(1, 3), iv(1.5, 4), iv(10, 11), iv(-5, -4)}, true,
			[]bool{true, true, true, false, false}},
		{"touching ends intersect", []candidate{iv(0, 1), iv(1, 2), iv(5, 6)}, true, []bool{true, true, false}},
		{"two pairs and one: no majority", []candidate{iv(0, 1), iv(0.5, 1.5), iv(10, 11), iv(10.5, 11.5), iv(20, 21)}, false,
			[]bool{false, false, false, false, false}},
		{"all agree", []candidate{iv(0, 10), iv(1, 2), iv(1.5, 3)}, true, []bool{true, true, true}},
		{"two of four: no majority", []candidate{iv(0, 1), iv(0, 1), iv(5, 6), iv(5, 6)}, false, []bool{false, false, false, false}},
	} {
		ok := selectTruechimers(tt.cs)
		var got []bool
		for _, c := range tt.cs {
			got = append(got, c.truechime)
		}
		if ok != tt.ok || !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, %v; want %v, %v", tt.name, ok, got, tt.ok, tt.want)
		}
	}
}

// TestPanicAndJump: a source whose time jumps by two hours after the
// clock has settled is read as a jump, not as drift, and the offset is
// refused: no step, the frequency kept, the alarm raised.
func TestPanicAndJump(t *testing.T) {
	d := New(Config{}, 0)
	at := mono.Instant(0)
	var a Adjustment
	for range 20 {
		at = at.Add(64 * time.Second)
		a = d.Sample(at, 0, Measurement{At: at, Offset: 0, Delay: time.Millisecond})
	}
	before := a.FreqPPM
	at = at.Add(64 * time.Second)
	a = d.Sample(at, 0, Measurement{At: at, Offset: 2 * time.Hour, Delay: time.Millisecond})
	if a.Step != 0 || a.Wake != 0 || math.Abs(a.FreqPPM-before) > 0.01 || d.Alarm() != AlarmPanic {
		t.Errorf("after a 2 h jump: %+v, alarm %v; want no step, no slew, the frequency kept (%v ppm), the panic alarm", a, d.Alarm(), before)
	}
	if e := d.sources[0]; e.jumps != 1 {
		t.Errorf("jumps counted: %d; want 1", e.jumps)
	}
}

// TestWaitsForMajority: with five sources configured, the first two to
// answer do not steer the clock; the third does.
func TestWaitsForMajority(t *testing.T) {
	d := New(Config{Sources: 5}, 0)
	for src := range 3 {
		a := d.Sample(0, src, Measurement{Offset: 300 * time.Millisecond, Delay: time.Millisecond})
		if src < 2 && (a.Step != 0 || d.Alarm() != AlarmWaiting) {
			t.Errorf("after %d sources: %+v, alarm %v; want nothing yet, waiting", src+1, a, d.Alarm())
		}
		if src == 2 && (a.Step < 299*time.Millisecond || d.Alarm() != AlarmNone) {
			t.Errorf("after 3 sources: %+v, alarm %v; want a step of 0.3 s", a, d.Alarm())
		}
	}
	// After StartWait, one source of five that answers is enough.
	d = New(Config{Sources: 5}, 0)
	at := mono.Instant(0)
	d.Sample(at, 0, Measurement{At: at, Offset: 300 * time.Millisecond, Delay: time.Millisecond})
	at = at.Add(StartWait)
	if a := d.Sample(at, 0, Measurement{At: at, Offset: 300 * time.Millisecond, Delay: time.Millisecond}); a.Step < 299*time.Millisecond {
		t.Errorf("one source of five, after StartWait: %+v, alarm %v; want a step of 0.3 s", a, d.Alarm())
	}
}

func TestLeapVote(t *testing.T) {
	d := New(Config{Sources: 3}, 0)
	for src, leap := range []ntp.Leap{ntp.LeapInsert, ntp.LeapInsert, ntp.LeapNone} {
		d.Sample(0, src, Measurement{Delay: time.Millisecond, Leap: leap})
	}
	for _, tt := range []struct {
		utc  time.Time
		want ntp.Leap
	}{
		{time.Date(2026, 6, 30, 12, 0, 0, 0, time.UTC), ntp.LeapInsert},
		{time.Date(2026, 6, 29, 23, 59, 59, 0, time.UTC), ntp.LeapNone},
		{time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC), ntp.LeapInsert},
		{time.Date(2026, 2, 28, 1, 0, 0, 0, time.UTC), ntp.LeapInsert},
		{time.Date(2028, 2, 28, 1, 0, 0, 0, time.UTC), ntp.LeapNone},
		{time.Date(2028, 2, 29, 1, 0, 0, 0, time.UTC), ntp.LeapInsert},
		{time.Date(2026, 7, 1, 0, 30, 0, 0, time.FixedZone("UTC+1", 3600)), ntp.LeapInsert}, // 23:30 UTC on June 30
		{time.Time{}, ntp.LeapNone},
	} {
		if got := d.leapVote(tt.utc); got != tt.want {
			t.Errorf("leapVote(%v) = %v; want %v", tt.utc, got, tt.want)
		}
	}
	// One of three announcing is a minority.
	d = New(Config{Sources: 3}, 0)
	for src, leap := range []ntp.Leap{ntp.LeapDelete, ntp.LeapNone, ntp.LeapNone} {
		d.Sample(0, src, Measurement{Delay: time.Millisecond, Leap: leap})
	}
	if got := d.leapVote(time.Date(2026, 6, 30, 12, 0, 0, 0, time.UTC)); got != ntp.LeapNone {
		t.Errorf("one of three announcing a deletion: %v; want none", got)
	}
}

// TestMinSources: THREATS D3. With MinSources 2, one source alone never
// steers the clock; a second that agrees does.
func TestMinSources(t *testing.T) {
	d := New(Config{MinSources: 2}, 0)
	a := d.Sample(0, 0, Measurement{Offset: 300 * time.Millisecond, Delay: time.Millisecond})
	if a.Step != 0 || a.FreqPPM != 0 || d.Alarm() != AlarmTooFew {
		t.Errorf("one source: %+v, alarm %v; want nothing, too few", a, d.Alarm())
	}
	a = d.Sample(0, 1, Measurement{Offset: 300 * time.Millisecond, Delay: time.Millisecond})
	if a.Step < 299*time.Millisecond || d.Alarm() != AlarmNone {
		t.Errorf("two agreeing sources: %+v, alarm %v; want a step of 0.3 s", a, d.Alarm())
	}
}

// TestDriftFile: a drift file's frequency is where the estimate starts,
// and what Drift reports back once the clock is steered.
func TestDriftFile(t *testing.T) {
	d := New(Config{DriftPPM: 37.5, DriftSDPPM: 0.2}, 0)
	if _, _, ok := d.Drift(0); ok {
		t.Error("Drift before any update: ok")
	}
	a := d.Sample(0, 0, Measurement{Delay: time.Millisecond})
	// Holding a zero offset on an oscillator 37.5 ppm fast takes a
	// correction of -37.5 ppm.
	if math.Abs(a.FreqPPM+37.5) > 0.01 {
		t.Errorf("first adjustment with a drift file of +37.5 ppm: %v ppm; want -37.5", a.FreqPPM)
	}
	ppm, sd, ok := d.Drift(0)
	if !ok || math.Abs(ppm-37.5) > 0.01 || sd <= 0 || sd > 0.21 {
		t.Errorf("Drift = %v ± %v, %v; want 37.5 ± at most 0.2", ppm, sd, ok)
	}
}

func TestSelectDiverse(t *testing.T) {
	iv := func(group string, lo, hi float64) candidate {
		return candidate{group: group, lo: lo, hi: hi, varTheta: 1}
	}
	// Four sources of one network agree on a lie; three independent ones
	// on the truth. One vote per network: the truth wins.
	cs := []candidate{iv("a", 0, 1), iv("b", 0, 1), iv("c", 0, 1),
		iv("x", 5, 6), iv("x", 5, 6), iv("x", 5, 6), iv("x", 5, 6)}
	if !selectDiverse(cs) {
		t.Fatal("no majority")
	}
	for i, c := range cs {
		if c.truechime != (i < 3) {
			t.Errorf("candidate %d (%s): truechimer %v", i, c.group, c.truechime)
		}
	}
	// Without groups, the four would win.
	for i := range cs {
		cs[i].group = ""
	}
	selectDiverse(cs)
	if !cs[3].truechime || cs[0].truechime {
		t.Errorf("without groups: %+v; want the four selected", cs)
	}
	// All sources in one network (a pool's members, say), one of them a
	// liar more precise than the rest: the group speaks with its
	// majority, not with its most precise member.
	cs = []candidate{iv("p", 0, 1), iv("p", 0, 1), iv("p", 0, 1), iv("p", 5, 5.1)}
	cs[3].varTheta = 1e-6
	if !selectDiverse(cs) || !cs[0].truechime || cs[3].truechime {
		t.Errorf("one group with a precise liar: %+v; want the three selected", cs)
	}
	// A group split two against two has no majority: no vote.
	cs = []candidate{iv("p", 0, 1), iv("p", 0, 1), iv("p", 5, 6), iv("p", 5, 6)}
	if selectDiverse(cs) {
		t.Errorf("one group split evenly: %+v; want no majority", cs)
	}
}

// TestObserve: with the corrections never applied, the estimate follows
// the measured offset instead of expecting it to shrink.
func TestObserve(t *testing.T) {
	d := New(Config{Observe: true}, 0)
	at := mono.Instant(0)
	for range 10 {
		at = at.Add(64 * time.Second)
		d.Sample(at, 0, Measurement{At: at, Offset: 20 * time.Millisecond, Delay: time.Millisecond})
	}
	theta, _, ok := d.Estimate(at, 0)
	if !ok || math.Abs(theta-0.02) > 1e-5 || d.Corrected(at) != 0 {
		t.Errorf("observing a steady 20 ms offset: estimate %v, corrected %v; want 20 ms, 0", theta, d.Corrected(at))
	}
}

// TestSourceOptions: a source's own poll bounds override the Config's;
// a noselect source is measured but never selected nor steers; while a
// preferred source is a truechimer, only preferred sources are combined;
// a removed source takes no further part.
func TestSourceOptions(t *testing.T) {
	d := New(Config{MinPoll: 6, MaxPoll: 10, Sources: 3}, 0)
	d.SetOptions(0, Options{MinPoll: 4, MaxPoll: 5})
	d.SetOptions(1, Options{NoSelect: true})
	d.SetOptions(2, Options{Prefer: true})
	if got := d.Poll(0); got != 16*time.Second {
		t.Errorf("poll of source 0 before any sample: %v; want 16s (its minpoll 4)", got)
	}
	at := mono.Instant(0)
	for range 40 {
		at = at.Add(d.Poll(0))
		d.Sample(at, 0, Measurement{At: at, Delay: time.Millisecond + time.Duration(at%7)*time.Microsecond})
	}
	if got := d.Poll(0); got != 32*time.Second {
		t.Errorf("poll of source 0 after 40 quiet samples: %v; want 32s (its maxpoll 5)", got)
	}

	d.SetOptions(3, Options{MaxPoll: 4})
	d.SetOptions(4, Options{MinPoll: 12})
	if p3, p4 := d.Poll(3), d.Poll(4); p3 != 16*time.Second || p4 != 4096*time.Second {
		t.Errorf("maxpoll 4 alone: poll %v; minpoll 12 alone: %v; want 16s and 4096s", p3, p4)
	}

	// Source 1 (noselect) says the clock is 0.4 s off, alone: nothing is
	// selected, nothing steered.
	d = New(Config{Sources: 1}, 0)
	d.SetOptions(1, Options{NoSelect: true})
	a := d.Sample(0, 1, Measurement{Offset: 400 * time.Millisecond, Delay: time.Millisecond})
	if a.Step != 0 || a.FreqPPM != 0 || d.Truechimer(1) || d.Synced() {
		t.Errorf("a noselect source alone: %+v, truechimer %v, synced %v; want nothing", a, d.Truechimer(1), d.Synced())
	}
	if _, _, ok := d.Estimate(0, 1); !ok {
		t.Error("a noselect source has no estimate; want it measured")
	}

	// Sources 0 and 2 agree within their intervals (1 ms apart, 10 ms of
	// delay); 2 is preferred: the clock is stepped by 2's offset alone,
	// and both are truechimers.
	d = New(Config{Sources: 2}, 0)
	d.SetOptions(2, Options{Prefer: true})
	d.Sample(0, 0, Measurement{Offset: 300 * time.Millisecond, Delay: 10 * time.Millisecond})
	a = d.Sample(0, 2, Measurement{Offset: 301 * time.Millisecond, Delay: 10 * time.Millisecond})
	if a.Step != 301*time.Millisecond || !d.Truechimer(0) || !d.Combined(2) || d.Combined(0) {
		t.Errorf("prefer: step %v, truechimers %v %v, combined %v %v; want 301ms by source 2 alone",
			a.Step, d.Truechimer(0), d.Truechimer(2), d.Combined(0), d.Combined(2))
	}

	d.Remove(2)
	if _, _, ok := d.Estimate(0, 2); ok || d.Truechimer(2) {
		t.Error("a removed source still has an estimate")
	}
}

// TestStepBudget: THREATS D5. Steps add up, over the last 24 hours and
// across restarts (the steps a restarted discipline is given), to at most
// the budget; a step that would pass it is refused with an alarm.
func TestStepBudget(t *testing.T) {
	t0 := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	sample := func(d *Discipline, off time.Duration) Adjustment {
		return d.Sample(0, 0, Measurement{Offset: off, Delay: time.Millisecond, UTC: t0})
	}
	for _, tt := range []struct {
		name   string
		before []Step
		offset time.Duration
		step   bool
	}{
		{"within", []Step{{t0.Add(-time.Hour), 600 * time.Second}}, 300 * time.Second, true},
		{"beyond", []Step{{t0.Add(-time.Hour), 600 * time.Second}}, 500 * time.Second, false},
		{"backward counts too", []Step{{t0.Add(-time.Hour), -600 * time.Second}}, 500 * time.Second, false},
		{"a day ago", []Step{{t0.Add(-25 * time.Hour), 600 * time.Second}}, 500 * time.Second, true},
		{"in the future (the clock went back)", []Step{{t0.Add(48 * time.Hour), 600 * time.Second}}, 500 * time.Second, false},
	} {
		d := New(Config{StepBudget: 1000 * time.Second, Steps: tt.before}, 0)
		a := sample(d, tt.offset)
		if got := a.Step != 0; got != tt.step {
			t.Errorf("%s: step %v, alarm %v; want a step: %v", tt.name, a.Step, d.Alarm(), tt.step)
		}
		if !tt.step && d.Alarm() != AlarmStepBudget {
			t.Errorf("%s: alarm %v; want %v", tt.name, d.Alarm(), AlarmStepBudget)
		}
		if n := len(d.Steps()); tt.step && n != len(tt.before)+1 && tt.before[0].At.After(t0.Add(-StepWindow)) {
			t.Errorf("%s: %d steps remembered; want the new one added", tt.name, n)
		}
	}
	// The default budget is the panic threshold; with no panic
	// threshold, no budget.
	d := New(Config{Panic: -1, Steps: []Step{{t0, 1e6 * time.Second}}}, 0)
	if a := sample(d, 1e5*time.Second); a.Step == 0 {
		t.Errorf("no panic threshold: %+v, alarm %v; want a step", a, d.Alarm())
	}
	// Many steps: the oldest are merged, never forgotten within the
	// window.
	var many []Step
	for i := range 70 {
		many = append(many, Step{t0.Add(time.Duration(i-70) * time.Minute), time.Second})
	}
	d = New(Config{StepBudget: 100 * time.Second, Steps: many}, 0)
	sample(d, 10*time.Second)
	var sum time.Duration
	for _, s := range d.Steps() {
		sum += s.Size
	}
	if n := len(d.Steps()); n != MaxSteps || sum != 80*time.Second {
		t.Errorf("after 71 steps: %d remembered adding up to %v; want %d, 80s", n, sum, MaxSteps)
	}
	// A step forward, then one back past it: the steps stay in time
	// order (the step file takes them only so).
	b := NewBudget(-1, nil)
	b.Record(t0, 5*time.Second)
	b.Record(t0.Add(2*time.Second), -20*time.Second)
	st := b.Steps()
	if len(st) != 2 || !slices.IsSortedFunc(st, func(a, b Step) int { return a.At.Compare(b.At) }) {
		t.Errorf("steps of +5 s then -20 s: %+v; want two, in time order", st)
	}
	// Steps as large as a duration allows add up without wrapping.
	huge := []Step{{t0, math.MaxInt64}, {t0, math.MaxInt64}}
	if d := New(Config{StepBudget: 1000 * time.Second, Steps: huge}, 0); sample(d, time.Second*10).Step != 0 {
		t.Error("two steps of the largest duration on record: a step was allowed")
	}
}
