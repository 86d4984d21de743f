package clock

import (
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/ntp"
)

func TestNoneChangesNothing(t *testing.T) {
	var c Clock = None{}
	if err := c.SetFrequency(123); err != nil {
		t.Fatal(err)
	}
	if f, err := c.Frequency(); f != 0 || err != nil {
		t.Errorf("Frequency after SetFrequency(123) = %v, %v; want 0: None corrects nothing", f, err)
	}
	if err := c.Step(time.Hour); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(c.Now()); d < -time.Second || d > time.Second {
		t.Errorf("None reads %v from the system clock after a step of an hour", d)
	}
}

func TestVirtual(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := base
	v := NewVirtual(func() time.Time { return now }, 5*time.Millisecond)
	if got := v.Now().Sub(base); got != 5*time.Millisecond {
		t.Errorf("start: %v; want 5ms ahead", got)
	}
	if err := v.SetFrequency(100); err != nil {
		t.Fatal(err)
	}
	now = now.Add(100 * time.Second)
	// 100 s at +100 ppm gains 10 ms.
	if got := v.Now().Sub(now); got != 15*time.Millisecond {
		t.Errorf("after 100 s at +100 ppm: %v ahead; want 15ms", got)
	}
	if err := v.Step(-15 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	v.SetLeap(ntp.LeapInsert)
	v.SetStatus(true, time.Millisecond, 10*time.Microsecond)
	if got := v.Now().Sub(now); got != 0 {
		t.Errorf("after the step: %v; want 0", got)
	}
	r := v.Record()
	if len(r.Steps) != 1 || r.Steps[0] != -15*time.Millisecond || r.FrequencySet != 1 || r.Leap != ntp.LeapInsert || !r.Synced || r.MaxErr != time.Millisecond {
		t.Errorf("record %+v", r)
	}
}

func TestFromSystem(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := base
	v := NewVirtual(func() time.Time { return now }, -50*time.Millisecond)
	if got := v.FromSystem(base.Add(time.Second)).Sub(base); got != 950*time.Millisecond {
		t.Errorf("FromSystem(base + 1 s) = base + %v; want 950ms", got)
	}
	if got := (None{}).FromSystem(base); !got.Equal(base) {
		t.Errorf("None.FromSystem changed the time: %v", got)
	}
}
