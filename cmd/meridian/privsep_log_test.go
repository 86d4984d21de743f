package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
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
	for _, pid := range waitChildren(t, m) {
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

// filterEnv, set to "log", runs every daemon the tests split with its
// filters in log mode (test.sh runs this package a second time so):
// THREATS H6, all integration tests under the filters in both modes.
const filterEnv = "MERIDIAN_TEST_FILTER"

// testFilter returns the mode of the filters of the daemons the tests
// split: "kill", or "log" if filterEnv says so.
func testFilter() string {
	if os.Getenv(filterEnv) == "log" {
		return "log"
	}
	return "kill"
}

// privsepTable returns the [privsep] table of a daemon the tests split:
// its children as nobody, its filters in testFilter's mode.
func privsepTable() string {
	return fmt.Sprintf("[privsep]\nuser = \"nobody\"\nfilter = %q\n", testFilter())
}

// watchFilters starts reading the kernel's log, and returns the function
// to call with the daemon once it is started: at the test's end, once the
// daemon is stopped, the test fails if the kernel logged a call of any of
// its processes as off its filters' lists (in log mode the call went
// through; in kill mode the process died of it). Without the kernel's log
// (not root), it checks nothing, except in log mode, where the test is
// skipped: the log is all that mode shows.
func watchFilters(t *testing.T) func(m *peertest.Peer) {
	t.Helper()
	kmsg, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err == nil {
		if _, err = syscall.Seek(kmsg, 0, 2); err != nil {
			syscall.Close(kmsg)
		}
	}
	if err != nil {
		if testFilter() == "log" {
			t.Skipf("SKIP: the filters run in log mode and the kernel's log cannot be read: %v", err)
		}
		return func(*peertest.Peer) {}
	}
	return func(m *peertest.Peer) {
		t.Cleanup(func() {
			defer syscall.Close(kmsg)
			m.Stop(t)
			pids := map[int]bool{m.Pid(): true}
			for _, pid := range allChildPids(m.Log()) {
				pids[pid] = true
			}
			if logged := readSeccompLog(t, kmsg, pids); len(logged) > 0 {
				t.Errorf("%s: system calls off the filters' lists (%s mode), logged by the kernel:\n%s",
					m.Name, testFilter(), strings.Join(logged, "\n"))
			}
		})
	}
}

// allChildPids returns the pid of every child a split daemon's log says
// it started.
func allChildPids(log string) []int {
	var pids []int
	for _, m := range childStarted.FindAllStringSubmatch(log, -1) {
		pid, _ := strconv.Atoi(m[2]) // the pattern admits only digits
		pids = append(pids, pid)
	}
	return pids
}
