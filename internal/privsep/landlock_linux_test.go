package privsep

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/meridian-ntp/meridian/internal/peertest"
)

// TestLandlock: the server opens no file at all; the engine reads /etc
// (where the resolver's files are) and writes its state directory, and
// nothing else.
func TestLandlock(t *testing.T) {
	if LandlockABI() == 0 {
		t.Skip("SKIP: the kernel has no Landlock")
	}
	state := worldWritableDir(t)
	other := worldWritableDir(t)
	for _, c := range []struct {
		role, action string
		ok           bool
	}{
		{"none", "open:/etc/hostname", true},
		{"server", "open:/etc/hostname", false},
		{"server", "open:/etc/resolv.conf", false},
		{"server", "write:" + state, false},
		{"engine", "open:/etc/resolv.conf", true},
		{"engine", "open:/etc/hostname", true}, // /etc is readable: a resolv.conf renamed into it must be
		{"engine", "open:/usr/bin/env", false},
		{"engine", "write:" + state, true},
		{"engine", "write:" + other, false},
		{"none", "write:" + other, true},
	} {
		out, err := childCommand(t, c.role, c.action, state).CombinedOutput()
		got := strings.TrimSpace(string(out))
		action, _, _ := strings.Cut(c.action, ":")
		ok := err == nil && got == action+": <nil>"
		denied := err == nil && strings.HasSuffix(got, "permission denied")
		if c.ok && !ok || !c.ok && !denied {
			t.Errorf("%s doing %s: %v, %q; want done: %v", c.role, c.action, err, got, c.ok)
		}
	}
}

// TestConfinedStatus: THREATS H1, from outside. Every thread of a
// confined server and engine, as /proc shows it, runs as an unprivileged
// user (when the test runs as root), with no capability in its
// effective, permitted and ambient sets, no new privileges, and a
// seccomp filter.
func TestConfinedStatus(t *testing.T) {
	if !seccompSupported() {
		t.Skip("SKIP: the kernel has no seccomp")
	}
	for _, role := range []string{"server", "engine"} {
		cmd := childCommand(t, role, "wait", "")
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		outPipe, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(outPipe).ReadString('\n'); err != nil || line != "ready\n" {
			t.Fatalf("%s: %q, %v; want ready", role, line, err)
		}
		want := []string{"CapEff:\t0000000000000000", "CapPrm:\t0000000000000000", "CapAmb:\t0000000000000000",
			"NoNewPrivs:\t1", "Seccomp:\t2", "Seccomp_filters:\t1"}
		if os.Geteuid() == 0 {
			want = append(want, "Uid:\t65534\t65534\t65534\t65534", "Gid:\t65534\t65534\t65534\t65534")
		}
		if tasks := peertest.CheckTaskStatus(t, role, cmd.Process.Pid, want...); len(tasks) < 2 {
			t.Errorf("%s: %d threads; want the runtime's several", role, len(tasks))
		}
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("%s: %v", role, err)
		}
	}
}

// worldWritableDir returns a new directory that user nobody may write
// in, removed when the test ends.
func worldWritableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "meridian-privsep-state-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}
