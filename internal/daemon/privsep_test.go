package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/clock"
	"github.com/meridian-ntp/meridian/internal/config"
	"github.com/meridian-ntp/meridian/internal/peertest"
	"github.com/meridian-ntp/meridian/internal/privsep"
)

// hostileEnv makes the test binary, started as the parent's engine, a
// compromised engine: it asks the keeper for 1000 steps of +999 s, then
// waits a minute to be killed.
const hostileEnv = "MERIDIAN_DAEMON_TEST_HOSTILE_ENGINE"

func TestMain(m *testing.M) {
	if os.Getenv(hostileEnv) == "1" {
		os.Exit(hostileEngine())
	}
	os.Exit(m.Run())
}

// hostileEngine is the compromised engine. It returns 0 if it outlives
// its requests and its minute, 3 if it cannot start.
func hostileEngine() int {
	conn, err := fileConn(firstFD, "keeper")
	if err != nil {
		return 3
	}
	kc := privsep.NewKeeperClock(conn)
	made := 0
	for range 1000 {
		err := kc.Step(999 * time.Second)
		if err == nil {
			made++
		}
		if err != nil && !errors.Is(err, privsep.ErrRefused) {
			break // the keeper hung up
		}
	}
	os.Stderr.WriteString("hostile engine: " + strings.Repeat("step ", made) + "done, waiting\n")
	time.Sleep(time.Minute)
	return 0
}

// TestHostileEngineKilled: THREATS H8 with a real process. An engine
// started by the parent's own command that sends 1000 steps of +999 s
// gets one, is refused the rest, and is killed by the keeper (SIGKILL)
// once its refusals pass the limit; the clock (a virtual one) was
// stepped once.
func TestHostileEngineKilled(t *testing.T) {
	vc := clock.NewVirtual(nil, 0)
	var logBuf syncBuffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	k, err := privsep.NewKeeper(privsep.KeeperConfig{Clock: vc, Policy: privsep.Policy{MaxStep: 1000 * time.Second},
		StepBudget: 1000 * time.Second, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	toServer, fromEngine, err := privsep.SocketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer toServer.Close()
	defer fromEngine.Close()
	conf, err := configFile(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conf.Close()
	p := parent{ctx: context.Background(), cfg: config.Default(), log: log, exe: os.Args[0], configPath: "/nonexistent",
		config: conf, keeper: k, toServer: toServer, fromEngine: fromEngine}
	start, err := p.engineCommand()
	if err != nil {
		t.Fatal(err)
	}
	cmd := start.Cmd
	cmd.Env = append(cmd.Env, hostileEnv+"=1")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Start()
	for _, f := range cmd.ExtraFiles {
		f.Close() // the child's now, as the supervisor does
	}
	if err != nil {
		start.Exited()
		t.Fatal(err)
	}
	start.Started(cmd.Process)
	// The test's own bound: an engine not killed exits by itself after a
	// minute, and fails the test.
	err = cmd.Wait()
	start.Exited()
	var ee *exec.ExitError
	killed := errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
	if !killed {
		t.Errorf("hostile engine: %v, output %q; want it killed by SIGKILL", err, out.String())
	}
	if r := vc.Record(); len(r.Steps) != 1 || r.Steps[0] != 999*time.Second {
		t.Errorf("clock record %+v; want one step of 999 s", r)
	}
	if !strings.Contains(logBuf.String(), "clock keeper: killing the engine") {
		t.Errorf("keeper's log:\n%s\nwant it to say it killed the engine", logBuf.String())
	}
	t.Logf("engine output: %q; keeper's log: %d lines", out.String(), strings.Count(logBuf.String(), "\n"))
}

// TestInProcessKeeperKernel: the single process's keeper, a goroutine
// behind a socketpair, steers the kernel's clock: the frequency read
// through it is set to its own value (a write that changes nothing) and
// reads back the same.
func TestInProcessKeeperKernel(t *testing.T) {
	peertest.NeedClockAlone(t, "setting the kernel's frequency, even unchanged,")
	cfg, err := config.Parse("kernel.toml", []byte("[client]\nservers = [\"127.0.0.1:1\"]\nclock = \"kernel\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Daemon{log: slog.New(slog.DiscardHandler), cancel: cancel}
	defer d.Stop()
	clk, err := d.startKeeper(ctx, cfg, d.log)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := clk.(*privsep.KeeperClock); !ok {
		t.Fatalf("the client's clock is a %T; want the keeper's", clk)
	}
	before, err := clk.Frequency()
	if err != nil {
		t.Fatal(err)
	}
	if err := clk.SetFrequency(before); err != nil {
		t.Errorf("setting the frequency to its own value %v ppm: %v", before, err)
	}
	if after, err := clk.Frequency(); err != nil || after != before {
		t.Errorf("frequency %v ppm, %v after; was %v", after, err, before)
	}
}

// TestChildCredential: the children's user must exist and be no root;
// as root, they get its uid and gid and no supplementary group.
func TestChildCredential(t *testing.T) {
	if _, err := childCredential("no-such-user-here"); err == nil || !strings.Contains(err.Error(), "useradd") {
		t.Errorf("a missing user: %v; want an error naming useradd", err)
	}
	if _, err := childCredential("root"); err == nil || !strings.Contains(err.Error(), "not an unprivileged user") {
		t.Errorf("root: %v; want refused", err)
	}
	cred, err := childCredential("nobody")
	switch {
	case os.Geteuid() == 0 && (err != nil || cred == nil || cred.Uid == 0 || len(cred.Groups) != 0):
		t.Errorf("nobody, as root: %+v, %v; want its uid and gid, no groups", cred, err)
	case os.Geteuid() != 0 && os.Geteuid() != 65534 && err == nil:
		t.Errorf("nobody, as uid %d: %+v; want an error (the children keep the daemon's user)", os.Geteuid(), cred)
	}
}

// TestKeeperDir: the keeper's step file lives in a directory of its
// user's that no one else may write in, and not the engine's.
func TestKeeperDir(t *testing.T) {
	dir := t.TempDir() // 0700, the test's user's
	if err := keeperDir(dir, nil); err != nil {
		t.Errorf("a private directory: %v", err)
	}
	if err := keeperDir(dir, []string{dir + "/."}); err == nil {
		t.Error("the engine's own directory: accepted")
	}
	sub := filepath.Join(dir, "keeper")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := keeperDir(sub, []string{dir}); err == nil {
		t.Error("a directory in the engine's: accepted")
	}
	if err := keeperDir(dir, []string{sub, dir + "-other"}); err != nil {
		t.Errorf("the parent of the engine's directory, and beside another: %v", err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := keeperDir(dir, nil); err == nil {
		t.Error("a directory anyone may write in: accepted")
	}
}
