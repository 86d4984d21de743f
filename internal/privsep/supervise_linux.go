package privsep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// Child is one child process the supervisor keeps running.
type Child struct {
	// Name names it in logs and errors ("engine", "server").
	Name string
	// Command returns how to start it, fresh for every start (with its
	// own ExtraFiles: a new socketpair each time, say).
	Command func() (Start, error)
}

// Start is one start of a child.
type Start struct {
	// Cmd starts it. The supervisor closes its ExtraFiles once the
	// process has started (or failed to): they are the child's, and the
	// parent keeps no copy of them.
	Cmd *exec.Cmd
	// Started, if set, is called with the process once it has started,
	// before anything else learns of it.
	Started func(*os.Process)
	// Exited, if set, is called once the process has exited, or failed
	// to start (to close the parent's ends of what it was given).
	Exited func()
}

// Restart is how the supervisor answers a child's death.
type Restart struct {
	// Never: the supervisor stops every child and returns an error, for
	// systemd (or an operator) to decide.
	Never bool
	// MinWait and MaxWait bound the wait before a restart: MinWait after
	// the first death, twice as long after each death that follows a
	// short life, at most MaxWait (defaults 1 s and 60 s). A child that
	// lived ResetAfter (default 5 min) starts the count again.
	MinWait, MaxWait, ResetAfter time.Duration
}

func (r *Restart) defaults() {
	if r.MinWait <= 0 {
		r.MinWait = time.Second
	}
	if r.MaxWait <= 0 {
		r.MaxWait = time.Minute
	}
	if r.ResetAfter <= 0 {
		r.ResetAfter = 5 * time.Minute
	}
}

// ErrChildDied: a child died and the policy is never to restart.
var ErrChildDied = errors.New("privsep: a child process died")

// stopWait bounds how long a child has to exit after SIGTERM.
const stopWait = 10 * time.Second

// Supervise starts the children and keeps them running until ctx is
// done, when it stops them (SIGTERM, then SIGKILL after 10 s) and
// returns nil. A child that dies is started again after a wait that
// grows with repeated deaths, or, with Restart.Never, every child is
// stopped and the error says which died and how. A child that cannot
// start the first time (its program cannot be run, or it exits with
// status 1, which the daemon's children do only when they cannot set
// themselves up) stops everything too: that is an installation's fault,
// which restarting does not mend. Every start is logged ("child
// started", with the child's name and pid).
func Supervise(ctx context.Context, children []Child, r Restart, log *slog.Logger) error {
	r.defaults()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex // guards firstErr
		firstErr error
	)
	for _, c := range children {
		wg.Add(1)
		// keep returns when ctx is done, or when the child dies and is
		// not to be restarted (it then cancels ctx, stopping the others).
		go func() {
			defer wg.Done()
			if err := keep(ctx, c, r, log); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				cancel()
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// keep runs child c until ctx is done, restarting it as r says.
func keep(ctx context.Context, c Child, r Restart, log *slog.Logger) error {
	wait := r.MinWait
	for first := true; ; first = false {
		t0 := time.Now()
		exit, startErr := runOnce(ctx, c, log)
		if ctx.Err() != nil {
			return nil
		}
		err := startErr
		if err == nil {
			err = fmt.Errorf("%w: the %s %s", ErrChildDied, c.Name, describeExit(exit))
		}
		if first && (startErr != nil || setupFailed(exit)) {
			// It never started: an installation's fault, not a crash's.
			log.Error("child process cannot start; stopping", "child", c.Name, "err", err)
			return err
		}
		if r.Never {
			log.Error("child process died; stopping", "child", c.Name, "err", err)
			return err
		}
		if time.Since(t0) >= r.ResetAfter {
			wait = r.MinWait
		}
		log.Error("child process died; restarting", "child", c.Name, "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, r.MaxWait)
	}
}

// runOnce starts c once and waits until it exits, or until ctx is done,
// when it stops it. It returns how the process ended (cmd.Wait's error),
// or the error that kept it from starting.
func runOnce(ctx context.Context, c Child, log *slog.Logger) (exit, _ error) {
	s, err := c.Command()
	if err != nil {
		return nil, fmt.Errorf("privsep: %s: %w", c.Name, err)
	}
	cmd, exited := s.Cmd, s.Exited
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// A child outlives no parent: if the supervisor dies, the kernel
	// kills the children, and no engine is left steering nothing.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	done := make(chan error, 1)
	startErr := make(chan error, 1)
	// The parent-death signal fires when the thread that started the
	// child exits: start and wait on one locked thread, which lives as
	// long as the child. The goroutine returns once the child has
	// exited.
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := cmd.Start()
		for _, f := range cmd.ExtraFiles {
			// Close errors are ignored: the child has its own copy.
			_ = f.Close()
		}
		if err != nil {
			startErr <- err
			return
		}
		startErr <- nil
		done <- cmd.Wait()
	}()
	if err := <-startErr; err != nil {
		if exited != nil {
			exited()
		}
		return nil, fmt.Errorf("privsep: start the %s: %w", c.Name, err)
	}
	if s.Started != nil {
		s.Started(cmd.Process)
	}
	log.Info("child started", "child", c.Name, "pid", cmd.Process.Pid)
	select {
	case exit = <-done:
	case <-ctx.Done():
		// Signal errors are ignored: the process may have exited already.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case exit = <-done:
		case <-time.After(stopWait):
			_ = cmd.Process.Kill()
			exit = <-done
		}
	}
	if exited != nil {
		exited()
	}
	return exit, nil
}

// setupFailed reports whether a process exited with status 1, as the
// daemon's children do when they cannot set themselves up.
func setupFailed(exit error) bool {
	var ee *exec.ExitError
	return errors.As(exit, &ee) && ee.ExitCode() == 1
}

// describeExit says how a process ended.
func describeExit(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Sprintf("was killed by signal %d (%v)", ws.Signal(), ws.Signal())
		}
		return fmt.Sprintf("exited with status %d", ee.ExitCode())
	}
	if err != nil {
		return err.Error()
	}
	return "exited"
}
