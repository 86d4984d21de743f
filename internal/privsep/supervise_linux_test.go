package privsep

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// sleeper returns a child that sleeps as user nobody (when the test runs
// as root), reporting its starts and counting its exits.
func sleeper(t *testing.T, name string, starts chan<- start, exits *atomic.Int32) Child {
	return Child{Name: name, Command: func() (Start, error) {
		return Start{Cmd: childCommand(t, "none", "sleep", ""),
			Started: func(p *os.Process) { starts <- start{name, p.Pid} },
			Exited:  func() { exits.Add(1) }}, nil
	}}
}

type start struct {
	name string
	pid  int
}

// TestSuperviseRestarts: THREATS H9. A child killed with SIGKILL is
// started again, after a wait; when the supervisor stops, so do its
// children.
func TestSuperviseRestarts(t *testing.T) {
	var exits atomic.Int32
	starts := make(chan start, 8)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Supervise(ctx, []Child{sleeper(t, "engine", starts, &exits)}, Restart{MinWait: 50 * time.Millisecond},
			slog.New(slog.DiscardHandler))
	}()
	first := <-starts
	if err := syscall.Kill(first.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var second start
	select {
	case second = <-starts:
	case <-time.After(10 * time.Second):
		t.Fatal("not restarted within 10 s")
	}
	if second.pid == first.pid || second.name != "engine" || exits.Load() != 1 {
		t.Errorf("restart %+v after %+v, %d exits seen; want a new process, one exit", second, first, exits.Load())
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Supervise after stop: %v", err)
	}
	if err := syscall.Kill(second.pid, 0); !errors.Is(err, syscall.ESRCH) || exits.Load() != 2 {
		t.Errorf("the child after stop: kill 0 = %v, %d exits; want it gone", err, exits.Load())
	}
}

// TestSuperviseNever: with restarts off, a child's death stops the other
// children and ends the supervisor with an error saying which died and
// how, for systemd to act on.
func TestSuperviseNever(t *testing.T) {
	var exits atomic.Int32
	starts := make(chan start, 8)
	done := make(chan error, 1)
	go func() {
		done <- Supervise(context.Background(), []Child{sleeper(t, "engine", starts, &exits), sleeper(t, "server", starts, &exits)},
			Restart{Never: true}, slog.New(slog.DiscardHandler))
	}()
	a, b := <-starts, <-starts
	victim, other := a, b
	if a.name != "server" {
		victim, other = b, a
	}
	if err := syscall.Kill(victim.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Supervise did not return within 20 s")
	}
	if !errors.Is(err, ErrChildDied) || !strings.Contains(err.Error(), "server was killed by signal 9 (killed)") {
		t.Errorf("Supervise: %v; want ErrChildDied saying the server was killed", err)
	}
	if err := syscall.Kill(other.pid, 0); !errors.Is(err, syscall.ESRCH) || exits.Load() != 2 {
		t.Errorf("the %s after the %s died: kill 0 = %v, %d exits; want it stopped", other.name, victim.name, err, exits.Load())
	}
}

// TestSuperviseSetupFailure: a child that exits with status 1 at its
// first start (it could not set itself up: its configuration unreadable,
// say) stops the supervisor at once, even with restarts on, rather than
// being started again for ever.
func TestSuperviseSetupFailure(t *testing.T) {
	c := Child{Name: "engine", Command: func() (Start, error) {
		return Start{Cmd: childCommand(t, "fail", "none", "")}, nil
	}}
	done := make(chan error, 1)
	go func() {
		done <- Supervise(context.Background(), []Child{c}, Restart{}, slog.New(slog.DiscardHandler))
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrChildDied) || !strings.Contains(err.Error(), "status 1") {
			t.Errorf("Supervise: %v; want ErrChildDied, status 1", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Supervise still restarting after 10 s")
	}
}
