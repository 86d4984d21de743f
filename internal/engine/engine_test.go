package engine

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/mono"
	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/server"
	"github.com/meridian-ntp/meridian/internal/source"
)

var wall0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// exchange runs the engine's due requests through a responder serving st
// with the given offset and one-way delay, with the local clock right.
func exchange(t *testing.T, e *Engine, now mono.Instant, st *server.State, offset, delay time.Duration) mono.Instant {
	t.Helper()
	answerDue(t, e, server.NewResponder(server.Config{}), wall0, now, delay, func(int) (*server.State, time.Duration) { return st, offset })
	next, _ := e.Next()
	return next
}

// answerDue sends the engine's requests due at now, the local clock
// reading base at mono time 0, and answers each through resp as answer
// says (serving st with the offset; nil st: lost) after the one-way
// delay each way.
func answerDue(t *testing.T, e *Engine, resp *server.Responder, base time.Time, now mono.Instant, delay time.Duration,
	answer func(src int) (st *server.State, offset time.Duration)) {
	t.Helper()
	wall := base.Add(time.Duration(now))
	sends, _, _ := e.HandleTimer(now, ntp.TimeFrom(wall), nil)
	for _, s := range sends {
		st, offset := answer(s.Src)
		if st == nil {
			continue
		}
		rx := ntp.TimeFrom(wall.Add(delay + offset))
		b := make([]byte, 48)
		n, _ := resp.Respond(now, st, netip.MustParseAddr("192.0.2.9"), rx, s.Packet, b)
		server.StampTransmit(b, rx)
		at := now.Add(2 * delay)
		if _, err := e.HandleResponse(at, s.Src, b[:n], ntp.TimeFrom(wall.Add(2*delay)), wall.Add(2*delay)); err != nil {
			t.Fatalf("HandleResponse: %v", err)
		}
	}
}

func newEngine(n int) *Engine {
	cfg := Config{Precision: -22}
	for i := range n {
		cfg.Sources = append(cfg.Sources, SourceConfig{RefID: ntp.RefID{192, 0, 2, byte(i + 1)}, Options: SourceOptions{IBurst: true}})
	}
	return New(cfg, func(i int) source.Rand { return rand.New(rand.NewPCG(uint64(i), 9)) }, 0)
}

func TestEngineServesItsSource(t *testing.T) {
	e := newEngine(1)
	if st := e.State(0); st.Leap != ntp.LeapUnsync || st.Stratum != ntp.MaxStratum {
		t.Fatalf("state before any sample: %+v; want unsynchronized", st)
	}
	up := &server.State{Leap: ntp.LeapInsert, Stratum: 2, Precision: -20, RefID: ntp.RefID{10, 0, 0, 1},
		RootDelay: ntp.ShortFrom(4 * time.Millisecond), RootDisp: ntp.ShortFrom(time.Millisecond)}
	now := mono.Instant(0)
	for range 4 {
		up.Reference = ntp.TimeFrom(wall0.Add(time.Duration(now)))
		now = exchange(t, e, now, up, 0, 300*time.Microsecond)
	}
	st := e.State(now)
	if st.Stratum != 3 || st.RefID != (ntp.RefID{192, 0, 2, 1}) || st.Leap != ntp.LeapInsert || st.Precision != -22 {
		t.Errorf("served state %+v; want stratum 3, reference ID 192.0.2.1, the leap announced, precision -22", st)
	}
	if st.RootDelay.Duration() < 4600*time.Microsecond || st.RootDisp.Duration() < time.Millisecond || st.Reference == 0 {
		t.Errorf("root delay %v, root dispersion %v, reference %v; want at least 4.6 ms (upstream + our path), 1 ms, set",
			st.RootDelay.Duration(), st.RootDisp.Duration(), st.Reference)
	}
}

func TestEngineBurstsAndRefuses(t *testing.T) {
	e := newEngine(2)
	sends, _, changed := e.HandleTimer(0, ntp.TimeFrom(wall0), nil)
	if len(sends) != 2 || changed {
		t.Fatalf("first timer: %d requests, changed %v; want one per source, no adjustment", len(sends), changed)
	}
	if next, _ := e.Next(); next != mono.Instant(source.IBurstInterval) {
		t.Errorf("next timer at %v; want %v (iburst)", time.Duration(next), source.IBurstInterval)
	}
	if _, err := e.HandleResponse(0, 5, make([]byte, 48), 0, wall0); err == nil {
		t.Errorf("reply from an unknown source: %v; want an error", err)
	}
	if _, err := e.HandleResponse(0, 0, make([]byte, 48), 0, wall0); !errors.Is(err, source.ErrMode) && !errors.Is(err, source.ErrOrigin) {
		t.Errorf("garbage reply: %v; want refused by the on-wire checks", err)
	}
}
