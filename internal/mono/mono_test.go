package mono

import (
	"testing"
	"time"
)

func TestInstant(t *testing.T) {
	a := Instant(1000)
	b := a.Add(2 * time.Second)
	if b.Sub(a) != 2*time.Second || a.Sub(b) != -2*time.Second {
		t.Errorf("Sub: %v, %v", b.Sub(a), a.Sub(b))
	}
	if !a.Before(b) || a.After(b) || !b.After(a) || b.Before(a) || a.Before(a) {
		t.Error("ordering wrong")
	}
}
