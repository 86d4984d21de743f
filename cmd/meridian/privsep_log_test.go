package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meridian-ntp/meridian/internal/peertest"
	"github.com/meridian-ntp/meridian/internal/privsep"
)

// TestPrivsepLogMode: THREATS H10. The split daemon with its filters in
// log mode (privsep.filter = "log") goes through a start, a client's
// synchronization, the control socket, a restart of each child and a
// stop: the kernel logs no system call of any of its processes as off
// its lists (watchFilters checks, once the daemon has stopped). In kill
// mode such a call would have killed the process; TestPrivsep would see a
// restart it did not cause.
func TestPrivsepLogMode(t *testing.T) {
	t.Parallel()
	peertest.NeedRoot(t, "privilege separation starts as root; the kernel's log needs root")
	m, addr, sock := startSplit(t, "log")
	if code, out, _ := runArgs(t, "sources", "--socket", sock); code != exitOK || !strings.Contains(out, "selected") {
		t.Errorf("meridian sources = %d\n%s", code, out)
	}
	for _, name := range []string{"server", "engine"} {
		restartChild(t, m, addr, name)
	}
	m.Stop(t)
	if log := m.Log(); !strings.Contains(log, `seccomp=false`) || strings.Contains(log, `seccomp=true`) {
		t.Errorf("log:\n%s\nwant every process's filter in log mode (seccomp=false)", log)
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

// canaryEnv makes the test binary a canary: a process that installs the
// server's filter in log mode and makes one call off its list, for the
// kernel to log.
const canaryEnv = "MERIDIAN_TEST_SECCOMP_CANARY"

// canary is the canary's work; it returns the exit status.
func canary() int {
	if err := privsep.Confine(privsep.RoleServer, privsep.FilterLog, 0); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	unix.Getpgid(0) // off every list of the daemon's: logged, and harmless
	return 0
}

// runCanary runs a canary and returns its pid, once it has exited.
func runCanary() (int, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), canaryEnv+"=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("seccomp canary: %v: %s", err, out)
	}
	return cmd.Process.Pid, nil
}

var (
	canaryOnce sync.Once
	canaryErr  error // why the kernel's log shows no seccomp records, or nil
)

// openKernelLog opens the kernel's log at its end, and checks once per
// run that a canary's record reaches it (where auditd runs, the records
// go to it instead).
func openKernelLog() (int, error) {
	// Read without Go's poller, which would wait for the next record.
	kmsg, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if _, err := syscall.Seek(kmsg, 0, 2); err != nil {
		syscall.Close(kmsg)
		return -1, err
	}
	canaryOnce.Do(func() {
		kmsg, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		if err != nil {
			canaryErr = err
			return
		}
		defer syscall.Close(kmsg)
		if _, err := syscall.Seek(kmsg, 0, 2); err != nil {
			canaryErr = err
			return
		}
		if _, err := readToCanary(kmsg, nil); err != nil {
			canaryErr = err
		}
	})
	if canaryErr != nil {
		syscall.Close(kmsg)
		return -1, canaryErr
	}
	return kmsg, nil
}

// watchFilters starts reading the kernel's log, and returns the function
// to call with the daemon once it is started: at the test's end, once the
// daemon is stopped, the test fails if the kernel logged a call of any of
// its processes as off its filters' lists (in log mode the call went
// through; in kill mode the process died of it). A canary's record, read
// last, shows that every record before it was read. Where the kernel's
// log shows no seccomp records (not root, or an audit daemon takes them),
// it checks nothing, except in log mode, where the test is skipped (or
// fails in CI): the log is all that mode shows.
func watchFilters(t *testing.T) func(m *peertest.Peer) {
	t.Helper()
	if testFilter() == "log" {
		peertest.NeedRoot(t, "reading the kernel's log of the filters")
	}
	if os.Geteuid() != 0 {
		return func(*peertest.Peer) {}
	}
	kmsg, err := openKernelLog()
	if err != nil {
		switch {
		case testFilter() == "log" && os.Getenv("CI") == "true":
			t.Fatalf("the filters run in log mode and the kernel's log shows no seccomp record: %v", err)
		case testFilter() == "log":
			t.Skipf("SKIP: the filters run in log mode and the kernel's log shows no seccomp record: %v", err)
		}
		t.Logf("no check of the kernel's log: %v", err)
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
			logged, err := readToCanary(kmsg, pids)
			if err != nil {
				t.Errorf("%s: %v: the daemon's records may be missing too", m.Name, err)
			}
			if len(logged) > 0 {
				t.Errorf("%s: system calls off the filters' lists (%s mode), logged by the kernel:\n%s",
					m.Name, testFilter(), strings.Join(logged, "\n"))
			}
		})
	}
}

// seccompRecordWait bounds the wait for a canary's record. The kernel
// prints audit records under its printk rate limit (ten in five seconds):
// a canary's record dropped by it is followed by another canary's.
const (
	seccompRecordWait = 6 * time.Second
	canaries          = 3
)

// readToCanary reads the kernel's seccomp records (audit type 1326) from
// kmsg until a canary's, and returns those of the processes pids. It
// fails if no canary's record comes, or if the kernel overwrote records
// before they were read.
func readToCanary(kmsg int, pids map[int]bool) ([]string, error) {
	var out []string
	for range canaries {
		pid, err := runCanary()
		if err != nil {
			return out, err
		}
		more, seen, err := seccompRecords(kmsg, pids, pid)
		out = append(out, more...)
		if err != nil || seen {
			return out, err
		}
	}
	return out, fmt.Errorf("no seccomp record of %d canaries reached /dev/kmsg within %v each (an audit daemon takes them?)",
		canaries, seccompRecordWait)
}

// seccompRecords reads the kernel's seccomp records from kmsg until the
// canary's (the process canary's), or until seccompRecordWait has passed,
// and returns those of the processes pids and whether the canary's came.
func seccompRecords(kmsg int, pids map[int]bool, canary int) (out []string, seen bool, err error) {
	record := regexp.MustCompile(`type=1326 .* pid=(\d+) .* syscall=(\d+)`)
	buf := make([]byte, 8192)
	deadline := time.Now().Add(seccompRecordWait)
	for {
		n, err := syscall.Read(kmsg, buf)
		if errors.Is(err, syscall.EPIPE) {
			return out, false, errors.New("the kernel's log was overwritten before it was read")
		}
		if err != nil || n <= 0 { // EAGAIN: nothing more yet
			if time.Now().After(deadline) {
				return out, false, nil
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		m := record.FindStringSubmatch(string(buf[:n]))
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1]) // the pattern admits only digits
		switch {
		case pid == canary:
			return out, true, nil
		case pids[pid]:
			out = append(out, strings.TrimSpace(string(buf[:n])))
		}
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
