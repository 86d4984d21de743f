package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/meridian-ntp/meridian/internal/peertest"
)

// TestPrivsepLogMode: THREATS H10. The split daemon with its filters in
// log mode (privsep.filter = "log") goes through a start, a client's
// synchronization, the control socket, a restart of each child and a
// stop: the kernel logs no system call of any of its processes as off
// its lists. (In kill mode such a call would have killed the process;
// TestPrivsep would see a restart it did not cause.)
func TestPrivsepLogMode(t *testing.T) {
	t.Parallel()
	peertest.NeedRoot(t, "privilege separation starts as root; the kernel's log needs root")
	// Read without Go's poller, which would wait for the next record.
	kmsg, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("SKIP: the kernel's log cannot be read: %v", err)
	}
	defer syscall.Close(kmsg)
	// Only what is logged from now on.
	if _, err := syscall.Seek(kmsg, 0, 2); err != nil {
		t.Skipf("SKIP: the kernel's log cannot be read from its end: %v", err)
	}
	m, addr, sock := startSplit(t, "log")
	pids := map[int]bool{m.Pid(): true}
	for _, pid := range childPids(t, m.Log()) {
		pids[pid] = true
	}
	if code, out, _ := runArgs(t, "sources", "--socket", sock); code != exitOK || !strings.Contains(out, "selected") {
		t.Errorf("meridian sources = %d\n%s", code, out)
	}
	for _, name := range []string{"server", "engine"} {
		_, pid := restartChild(t, m, addr, name)
		pids[pid] = true
	}
	m.Stop(t)
	logged := readSeccompLog(t, kmsg, pids)
	if len(logged) > 0 {
		t.Errorf("system calls off the filters' lists, logged by the kernel:\n%s", strings.Join(logged, "\n"))
	}
	t.Logf("processes watched: %v; calls logged: %d", pids, len(logged))
}

// readSeccompLog returns the kernel's seccomp records (audit type 1326)
// of the processes pids, read from kmsg until nothing more is there.
func readSeccompLog(t *testing.T, kmsg int, pids map[int]bool) []string {
	t.Helper()
	record := regexp.MustCompile(`type=1326 .* pid=(\d+) .* syscall=(\d+)`)
	var out []string
	buf := make([]byte, 8192)
	for {
		n, err := syscall.Read(kmsg, buf)
		if errors.Is(err, syscall.EPIPE) {
			continue // records were overwritten: read on
		}
		if err != nil || n <= 0 {
			return out // EAGAIN: nothing more
		}
		m := record.FindStringSubmatch(string(buf[:n]))
		if m == nil {
			continue
		}
		var pid int
		fmt.Sscan(m[1], &pid)
		if pids[pid] {
			out = append(out, strings.TrimSpace(string(buf[:n])))
		}
	}
}
