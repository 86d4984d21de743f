package privsep

import (
	"errors"
	"math"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/clock"
	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/peertest"
)

// lastDayNoon is noon on the last day of June 2026, when a leap second
// may be armed.
var lastDayNoon = time.Date(2026, 6, 30, 12, 0, 0, 0, time.UTC)

func newKeeper(t *testing.T, vc *clock.Virtual, now time.Time, stepFile string) *Keeper {
	t.Helper()
	k, err := NewKeeper(KeeperConfig{Clock: vc, StepFile: stepFile, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// serveKeeper serves k on one end of a new socketpair, and returns the
// clock of the engine's end, that end, and what Serve returns: when the
// engine hangs up, or k ends the session (its end is closed then).
func serveKeeper(t *testing.T, k *Keeper) (*KeeperClock, net.Conn, <-chan error) {
	t.Helper()
	keeperEnd, engineEnd, err := SocketPair()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		err := k.Serve(keeperEnd)
		keeperEnd.Close()
		done <- err
	}()
	return NewKeeperClock(engineEnd), engineEnd, done
}

// ask runs r through k and returns the response.
func ask(t *testing.T, k *Keeper, r Request) Response {
	t.Helper()
	b, _ := k.handle(r.Encode(make([]byte, RequestLen)), make([]byte, ResponseLen))
	resp, err := DecodeResponse(b)
	if err != nil {
		t.Fatalf("response to %+v: %v", r, err)
	}
	return resp
}

// TestKeeperPolicy: the keeper's own limits, whatever the engine asks.
func TestKeeperPolicy(t *testing.T) {
	for _, tt := range []struct {
		name    string
		now     time.Time
		req     Request
		want    Status
		changes bool // the clock's record changes
	}{
		{"a small frequency", lastDayNoon, Request{Op: OpFrequency, FreqPPM: -37.5}, StatusOK, true},
		{"the largest frequency", lastDayNoon, Request{Op: OpFrequency, FreqPPM: DefaultMaxFreqPPM}, StatusOK, true},
		{"an absurd frequency", lastDayNoon, Request{Op: OpFrequency, FreqPPM: 1e9}, StatusRefused, false},
		{"a step of 999 s", lastDayNoon, Request{Op: OpStep, Step: 999 * time.Second}, StatusOK, true},
		{"a step of 1001 s", lastDayNoon, Request{Op: OpStep, Step: -1001 * time.Second}, StatusRefused, false},
		{"a leap on the last day", lastDayNoon, Request{Op: OpLeap, Leap: ntp.LeapDelete}, StatusOK, true},
		{"a leap on another day", lastDayNoon.AddDate(0, 0, -1), Request{Op: OpLeap, Leap: ntp.LeapInsert}, StatusRefused, false},
		// Disarming is allowed any day; the record stays LeapNone.
		{"disarming on any day", lastDayNoon.AddDate(0, 0, -1), Request{Op: OpLeap, Leap: ntp.LeapNone}, StatusOK, false},
		{"a status", lastDayNoon, Request{Op: OpStatus, Synced: true, MaxErr: time.Millisecond}, StatusOK, true},
	} {
		vc := clock.NewVirtual(nil, 0)
		k := newKeeper(t, vc, tt.now, "")
		if got := ask(t, k, tt.req).Status; got != tt.want {
			t.Errorf("%s: %v; want %v", tt.name, got, tt.want)
		}
		r := vc.Record()
		if changed := len(r.Steps) > 0 || r.FrequencySet > 0 || r.Leap != ntp.LeapNone || r.Synced; changed != tt.changes {
			t.Errorf("%s: clock record %+v after %v; want changed: %v", tt.name, r, tt.want, tt.changes)
		}
	}
}

// TestCompromisedEngine: THREATS H8. An engine that sends 1000 steps of
// +999 s, then absurd frequencies, over the socketpair gets one step (the
// budget of 1000 s a day), none of the frequencies, and its session ends
// after MaxBad refusals in a row.
func TestCompromisedEngine(t *testing.T) {
	vc := clock.NewVirtual(nil, 0)
	kc, engineEnd, done := serveKeeper(t, newKeeper(t, vc, lastDayNoon, ""))
	steps, refused := 0, 0
	for range 1000 {
		err := kc.Step(999 * time.Second)
		switch {
		case err == nil:
			steps++
		case errors.Is(err, ErrRefused):
			refused++
		}
		if err != nil && !errors.Is(err, ErrRefused) {
			break // the keeper hung up
		}
	}
	if err := <-done; !errors.Is(err, ErrHostile) {
		t.Errorf("Serve: %v; want ErrHostile", err)
	}
	engineEnd.Close()
	if r := vc.Record(); steps != 1 || refused != MaxBad || len(r.Steps) != 1 || r.Steps[0] != 999*time.Second {
		t.Errorf("%d steps made, %d refused, clock record %+v; want 1 step of 999 s, %d refused, then the session ended",
			steps, refused, r, MaxBad)
	}

	// Absurd frequencies and malformed datagrams change nothing either.
	vc = clock.NewVirtual(nil, 0)
	k := newKeeper(t, vc, lastDayNoon, "")
	for _, b := range [][]byte{
		Request{Op: OpFrequency, FreqPPM: -1e300}.Encode(make([]byte, RequestLen)),
		Request{Op: OpFrequency, FreqPPM: math.MaxFloat64}.Encode(make([]byte, RequestLen)),
		append(Request{Op: OpFrequency, FreqPPM: 1}.Encode(make([]byte, RequestLen))[:8], make([]byte, 8)...),
		{1, byte(OpFrequency)},
	} {
		out, _ := k.handle(b, make([]byte, ResponseLen))
		if resp, err := DecodeResponse(out); err != nil || resp.Status == StatusOK {
			t.Errorf("request %x: %+v, %v; want refused", b, resp, err)
		}
	}
	if r := vc.Record(); r.FrequencySet != 0 {
		t.Errorf("clock record %+v; want no frequency set", r)
	}
}

// TestKeeperStepFile: THREATS D5 in the keeper. Its budget survives a
// restart through its own step file; a damaged file is an error, not a
// fresh budget.
func TestKeeperStepFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keeper-steps")
	vc := clock.NewVirtual(nil, 0)
	if s := ask(t, newKeeper(t, vc, lastDayNoon, path), Request{Op: OpStep, Step: 600 * time.Second}).Status; s != StatusOK {
		t.Fatalf("first step: %v", s)
	}
	k := newKeeper(t, vc, lastDayNoon.Add(time.Hour), path)
	if s := ask(t, k, Request{Op: OpStep, Step: -600 * time.Second}).Status; s != StatusRefused {
		t.Errorf("second step after a restart: %v; want refused (600 + 600 s in a day)", s)
	}
	if s := ask(t, newKeeper(t, vc, lastDayNoon.Add(25*time.Hour), path), Request{Op: OpStep, Step: 600 * time.Second}).Status; s != StatusOK {
		t.Errorf("a step a day later: %v; want made", s)
	}
	if err := os.WriteFile(path, []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewKeeper(KeeperConfig{Clock: vc, StepFile: path}); err == nil {
		t.Error("NewKeeper with a damaged step file: no error")
	}
}

// TestKeeperClock: the engine's clock reaches the backend through the
// keeper, and reads come back.
func TestKeeperClock(t *testing.T) {
	vc := clock.NewVirtual(nil, 0)
	kc, engineEnd, done := serveKeeper(t, newKeeper(t, vc, lastDayNoon, ""))
	if err := kc.SetFrequency(12.5); err != nil {
		t.Fatal(err)
	}
	if f, err := kc.Frequency(); err != nil || f != 12.5 {
		t.Errorf("Frequency = %v, %v; want 12.5", f, err)
	}
	if err := kc.SetLeap(ntp.LeapInsert); err != nil {
		t.Error(err)
	}
	if err := kc.SetStatus(true, time.Hour, time.Millisecond); err != nil {
		t.Errorf("SetStatus with a maximum error over 16 s (clamped): %v", err)
	}
	engineEnd.Close()
	if err := <-done; err != nil {
		t.Errorf("Serve after the engine hung up: %v; want nil", err)
	}
	if r := vc.Record(); r.Leap != ntp.LeapInsert || !r.Synced || r.MaxErr != 16*time.Second {
		t.Errorf("clock record %+v", r)
	}
	// An engine whose keeper is gone (its end closed, the engine's open)
	// gets an error, not a wait without end.
	keeperEnd, engineEnd2, err := SocketPair()
	if err != nil {
		t.Fatal(err)
	}
	keeperEnd.Close()
	defer engineEnd2.Close()
	if err := NewKeeperClock(engineEnd2).Step(time.Second); err == nil {
		t.Error("Step with the keeper gone: no error")
	}
}

// TestKeeperKernel: the keeper on the kernel's clock, as root, with a
// request that changes nothing: the frequency set to what it is.
func TestKeeperKernel(t *testing.T) {
	peertest.NeedClockAlone(t, "setting the kernel's frequency, even unchanged,")
	k, err := NewKeeper(KeeperConfig{Clock: clock.Kernel{}})
	if err != nil {
		t.Fatal(err)
	}
	r := ask(t, k, Request{Op: OpGetFrequency})
	if r.Status != StatusOK {
		t.Fatalf("reading the frequency: %v", r.Status)
	}
	if s := ask(t, k, Request{Op: OpFrequency, FreqPPM: r.FreqPPM}).Status; s != StatusOK {
		t.Errorf("setting the frequency to its own value %v ppm: %v", r.FreqPPM, s)
	}
	if after := ask(t, k, Request{Op: OpGetFrequency}); after.FreqPPM != r.FreqPPM {
		t.Errorf("frequency %v ppm after; was %v", after.FreqPPM, r.FreqPPM)
	}
}

// FuzzKeeperHandle: THREATS H7. Any sequence of datagrams: the keeper
// never panics, always answers with a well-formed response, changes the
// clock only for requests it answers OK, and never steps more than its
// budget allows in a day.
func FuzzKeeperHandle(f *testing.F) {
	f.Add(Request{Op: OpStep, Step: 999 * time.Second}.Encode(make([]byte, RequestLen)), uint8(3))
	f.Add(Request{Op: OpFrequency, FreqPPM: 500}.Encode(make([]byte, RequestLen)), uint8(1))
	f.Add([]byte{1, 2, 0, 0}, uint8(200))
	f.Fuzz(func(t *testing.T, b []byte, repeat uint8) {
		vc := clock.NewVirtual(func() time.Time { return lastDayNoon }, 0)
		k := newKeeper(t, vc, lastDayNoon, "")
		out := make([]byte, ResponseLen)
		for range int(repeat%32) + 1 {
			before := vc.Record()
			resp, _ := k.handle(b, out)
			r, err := DecodeResponse(resp)
			if err != nil {
				t.Fatalf("handle(%x) answered %x: %v", b, resp, err)
			}
			after := vc.Record()
			if r.Status != StatusOK && (len(after.Steps) != len(before.Steps) || after.FrequencySet != before.FrequencySet ||
				after.Leap != before.Leap || after.Synced != before.Synced) {
				t.Fatalf("handle(%x) = %v, yet the clock changed: %+v -> %+v", b, r.Status, before, after)
			}
			var sum time.Duration
			for _, s := range after.Steps {
				sum += s.Abs()
			}
			if sum > DefaultMaxStep {
				t.Fatalf("steps %v add up beyond the budget", after.Steps)
			}
		}
	})
}

// TestKeeperSlewBudget: a frequency beyond DriftPPM moves the clock as
// steps would, and counts against the same budget: once it is spent, the
// keeper ends the slew itself and refuses new ones and steps; a session
// that ends takes its slew with it.
func TestKeeperSlewBudget(t *testing.T) {
	var mono time.Duration
	vc := clock.NewVirtual(nil, 0)
	k, err := NewKeeper(KeeperConfig{Clock: vc, StepBudget: 1000 * time.Second,
		Now: func() time.Time { return lastDayNoon.Add(mono) }, Mono: func() time.Duration { return mono }})
	if err != nil {
		t.Fatal(err)
	}
	if s := ask(t, k, Request{Op: OpFrequency, FreqPPM: 50500}).Status; s != StatusOK {
		t.Fatalf("a slew at 50500 ppm: %v", s)
	}
	mono += 10000 * time.Second // 0.05 s/s beyond the drift: 500 s
	if s := ask(t, k, Request{Op: OpStep, Step: 600 * time.Second}).Status; s != StatusRefused {
		t.Errorf("a step of 600 s after a slew of 500 s: %v; want refused (budget 1000 s)", s)
	}
	mono += 10000 * time.Second // 500 s more: the budget is spent
	if f := ask(t, k, Request{Op: OpGetFrequency}).FreqPPM; f != DriftPPM {
		t.Errorf("frequency once the budget is spent: %v ppm; want %v (the slew ended)", f, float64(DriftPPM))
	}
	if s := ask(t, k, Request{Op: OpFrequency, FreqPPM: -1000}).Status; s != StatusRefused {
		t.Errorf("a new slew with the budget spent: %v; want refused", s)
	}
	if s := ask(t, k, Request{Op: OpFrequency, FreqPPM: -400}).Status; s != StatusOK {
		t.Errorf("a drift of -400 ppm with the budget spent: %v; want set", s)
	}
	// A day later the budget is back; a session's end ends its slew.
	mono += 25 * time.Hour
	if s := ask(t, k, Request{Op: OpFrequency, FreqPPM: -20000}).Status; s != StatusOK {
		t.Fatalf("a slew a day later: %v", s)
	}
	k.endSession()
	if f, _ := vc.Frequency(); f != -DriftPPM {
		t.Errorf("frequency after the session ended: %v ppm; want %v", f, -float64(DriftPPM))
	}
}

// TestKeeperClockLateAnswer: an answer that comes after its request
// timed out is passed over, and the next request gets its own.
func TestKeeperClockLateAnswer(t *testing.T) {
	keeperEnd, engineEnd, err := SocketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer keeperEnd.Close()
	defer engineEnd.Close()
	go func() { // a slow keeper: the first answer late; returns when the test closes the pair
		in := make([]byte, RequestLen)
		for i := 0; ; i++ {
			n, err := keeperEnd.Read(in)
			if err != nil {
				return
			}
			r, _ := DecodeRequest(in[:n])
			if i == 0 {
				time.Sleep(200 * time.Millisecond)
			}
			keeperEnd.Write(Response{Op: r.Op, Seq: r.Seq, FreqPPM: float64(i)}.Encode(make([]byte, ResponseLen)))
		}
	}()
	kc := NewKeeperClock(engineEnd)
	kc.Timeout = 50 * time.Millisecond
	if _, err := kc.Frequency(); err == nil {
		t.Fatal("first request: no timeout")
	}
	time.Sleep(300 * time.Millisecond) // the late answer is queued now
	kc.Timeout = time.Second
	if f, err := kc.Frequency(); err != nil || f != 1 {
		t.Errorf("second request: %v, %v; want its own answer (1)", f, err)
	}
}
