package peertest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// bindTimeout bounds the wait for a started daemon to bind its port;
	// both bind within milliseconds on an idle machine.
	bindTimeout = 10 * time.Second
	// stopTimeout bounds each of the waits for a daemon to exit, first
	// after SIGTERM and then after SIGKILL.
	stopTimeout = 5 * time.Second
	// installHint tells a developer how to get the peers.
	installHint = "install the peers with: sudo .ci/install-peers"
)

// Peer is a running peer daemon, or the server under test (StartServer).
// Its exported fields are read-only.
type Peer struct {
	// Name is "chrony" or "ntpsec", "chrony client" (StartChronyClient),
	// or the name given to StartServer.
	Name string
	// Version is the daemon's version, such as "4.3" or "1.2.2".
	Version string
	// Addr is where the daemon serves NTP. For ntpsec, and a server
	// started in a network namespace, it is an address of that
	// namespace: reach it with Command. A ChronyClient serves no NTP: its
	// Addr is its command port.
	Addr netip.AddrPort

	cmd     *exec.Cmd
	logPath string        // the daemon's stdout, stderr and log file
	netns   string        // network namespace path, or "" for the test's own
	done    chan struct{} // closed once the process has exited
	waitErr error         // the process's exit status; read after done
	stopped bool          // stop has run; used by the test's goroutine only
	// underTest: the daemon is the one under test (StartServer), so
	// needing SIGKILL to stop is a failure, not a note.
	underTest bool
	env       []string // added to the test's environment for the daemon
}

// Command returns a command that runs name with args where it can reach
// p.Addr: inside the peer's network namespace when it has one (by way of
// nsenter, which needs root), and as exec.Command would otherwise.
func (p *Peer) Command(name string, args ...string) *exec.Cmd {
	return p.CommandContext(context.Background(), name, args...)
}

// CommandContext is like Command but kills the command when ctx is done, as
// exec.CommandContext does.
func (p *Peer) CommandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	if p.netns == "" {
		return exec.CommandContext(ctx, name, args...)
	}
	// nsenter enters only the network namespace and then execs name
	// itself, so the command's process is the one exec.Cmd waits for.
	nsArgs := append([]string{"--net=" + p.netns, "--", name}, args...)
	return exec.CommandContext(ctx, "nsenter", nsArgs...)
}

// Log returns what the daemon has logged so far, for failure messages.
func (p *Peer) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// start starts cmd, whose stdout and stderr go to logPath, as the daemon of
// p, registers its stop with t.Cleanup, and waits until it has bound p.Addr.
// The caller has set cmd.SysProcAttr, if it needs one.
func start(t testing.TB, p *Peer, cmd *exec.Cmd) {
	t.Helper()
	out, err := os.OpenFile(p.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("peertest: %v", err)
	}
	defer out.Close() // the daemon has its own copy
	cmd.Stdout, cmd.Stderr = out, out
	if len(p.env) > 0 {
		cmd.Env = append(os.Environ(), p.env...)
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// If the test binary dies without running its cleanups (a test
	// timeout, a crash), the kernel kills the daemon.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	p.cmd = cmd
	p.done = make(chan struct{})

	started := make(chan error, 1)
	// The parent-death signal fires when the thread that started the
	// process exits, not the whole test binary, so start and wait on one
	// locked thread that lives as long as the daemon. The goroutine exits
	// once the daemon has exited.
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(p.done)
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.waitErr = cmd.Wait()
	}()
	if err := <-started; errors.Is(err, syscall.EPERM) {
		// Typically root in a container that may not create namespaces.
		unavailable(t, "start %s: %v", p.Name, err)
	} else if err != nil {
		t.Fatalf("peertest: start %s: %v", p.Name, err)
	}
	t.Cleanup(func() { stop(t, p) })
	waitBound(t, p)
}

// stop ends p's daemon with SIGTERM, or SIGKILL if it lingers, and waits for
// it to exit. A daemon that exited on its own before is reported as an error.
// Only the first call does anything.
func stop(t testing.TB, p *Peer) {
	if p.stopped {
		return
	}
	p.stopped = true
	select {
	case <-p.done:
		if !t.Failed() { // else waitBound or the test has said so
			t.Errorf("peertest: %s exited during the test: %v\n%s", p.Name, p.waitErr, p.Log())
		}
		return
	default:
	}
	// Errors are ignored: the process may exit between the check above and
	// the signal, and then the waits below see it.
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(stopTimeout):
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
		if p.underTest {
			t.Errorf("peertest: %s did not exit within %v of SIGTERM, and needed SIGKILL\n%s", p.Name, stopTimeout, p.Log())
		} else {
			t.Logf("peertest: %s needed SIGKILL\n%s", p.Name, p.Log())
		}
	case <-time.After(stopTimeout):
		t.Errorf("peertest: %s (pid %d) survived SIGKILL for %v", p.Name, p.cmd.Process.Pid, stopTimeout)
	}
}

// waitBound waits until p's process has a UDP socket bound to p.Addr, which
// both daemons open once their configuration is read. It fails t if the
// process exits or the wait exceeds bindTimeout.
func waitBound(t testing.TB, p *Peer) {
	t.Helper()
	deadline := time.Now().Add(bindTimeout)
	for {
		ok, err := boundUDP(p.cmd.Process.Pid, p.Addr)
		if ok {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("peertest: %s exited before serving on %v: %v\n%s", p.Name, p.Addr, p.waitErr, p.Log())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("peertest: %s did not bind %v within %v (last error: %v)\n%s", p.Name, p.Addr, bindTimeout, err, p.Log())
		}
	}
}

// boundUDP reports whether process pid owns a UDP socket bound to the IPv4
// address ap. It reads the socket table of the process's network namespace
// (/proc/PID/net/udp) and matches the sockets' inodes against the process's
// file descriptors, so a socket of another process on the same port does not
// count.
func boundUDP(pid int, ap netip.AddrPort) (bool, error) {
	if !ap.Addr().Is4() {
		return false, fmt.Errorf("%v: only IPv4 is supported", ap)
	}
	// The kernel prints the address as hex of its 4 bytes read as a
	// native-endian integer, and the port as plain hex.
	a := ap.Addr().As4()
	inodes, err := SocketTargets(pid, "udp", fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(a[:]), ap.Port()))
	if err != nil || len(inodes) == 0 {
		return false, err
	}
	// The process, or one of its children: a daemon that splits itself
	// hands its sockets to a child.
	for _, p := range append([]int{pid}, children(pid)...) {
		fds, err := FDTargets(p)
		if err != nil {
			continue // a child that has exited since
		}
		for _, target := range fds {
			if inodes[target] {
				return true, nil
			}
		}
	}
	return false, nil
}

// SocketTargets returns the sockets that /proc/PID/net/TABLE (udp, tcp6,
// ...) lists, in their descriptors' form ("socket:[INODE]"): those bound
// to local (as the table prints it), or all if local is "".
func SocketTargets(pid int, table, local string) (map[string]bool, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
		f := strings.Fields(line)
		if len(f) > 9 && (local == "" || f[1] == local) {
			inodes["socket:["+f[9]+"]"] = true
		}
	}
	return inodes, nil
}

// FDTargets returns what each open descriptor of process pid names (its
// /proc/PID/fd link), by number. A descriptor closed while they are read
// is left out.
func FDTargets(pid int) (map[int]string, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	targets := map[int]string{}
	for _, fd := range fds {
		n, err := strconv.Atoi(fd.Name())
		if err != nil {
			continue
		}
		if target, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil {
			targets[n] = target
		}
	}
	return targets, nil
}

// children returns the pids of the children of process pid
// (/proc/PID/task/*/children).
func children(pid int) []int {
	var kids []int
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid)) // the pattern is valid
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, w := range strings.Fields(string(b)) {
			if k, err := strconv.Atoi(w); err == nil {
				kids = append(kids, k)
			}
		}
	}
	return kids
}

// Pid returns the pid of p's daemon.
func (p *Peer) Pid() int { return p.cmd.Process.Pid }

// unavailable ends a test that cannot run here: it fails in CI, where the
// peers are installed and nothing may be skipped, and skips elsewhere.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := "peertest: " + fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: not skipping)")
	} else {
		t.Skip(msg)
	}
}

// lookTool returns the path of an executable, searching PATH and then the
// sbin folders, which a non-root PATH often lacks.
func lookTool(name string) (string, error) {
	if path, err := exec.LookPath(name); err == nil {
		return path, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		path := filepath.Join(dir, name)
		if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return path, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH, /usr/sbin or /sbin", name)
}

// needTools returns the paths of the named executables, or ends t through
// unavailable if one is missing.
func needTools(t testing.TB, names ...string) []string {
	t.Helper()
	paths := make([]string, len(names))
	for i, name := range names {
		path, err := lookTool(name)
		if err != nil {
			unavailable(t, "%v; %s", err, installHint)
		}
		paths[i] = path
	}
	return paths
}

// isRoot reports whether the test runs as root, and so must drop CAP_SYS_TIME
// from the daemons it starts.
func isRoot() bool { return os.Geteuid() == 0 }

// dropSysTime returns the command line that runs argv without CAP_SYS_TIME
// in the bounding and inheritable sets, given setpriv's path.
func dropSysTime(setpriv string, argv ...string) []string {
	return append([]string{setpriv, "--bounding-set=-sys_time", "--inh-caps=-sys_time", "--"}, argv...)
}

// versionOf runs path with args and returns the word that follows prefix in
// its output, such as "4.3" in "chronyd (chrony) version 4.3 (...)".
func versionOf(path, prefix string, args ...string) (string, error) {
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", path, strings.Join(args, " "), err, out)
	}
	_, rest, ok := strings.Cut(string(out), prefix)
	if f := strings.Fields(rest); ok && len(f) > 0 {
		return f[0], nil
	}
	return "", fmt.Errorf("%s %s: no version after %q in %q", path, strings.Join(args, " "), prefix, out)
}

// repoRoot returns the nearest folder at or above the working directory that
// holds go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = parent
	}
}

// checkStratum fails t unless s is a stratum a server can serve, 1 to 15.
func checkStratum(t testing.TB, s int) {
	t.Helper()
	if s < 1 || s > 15 {
		t.Fatalf("peertest: stratum %d out of range 1..15", s)
	}
}

// NeedRoot ends t through unavailable unless it runs as root; why says
// what needs it.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if !isRoot() {
		unavailable(t, "%s needs root", why)
	}
}

// NeedClockAlone ends t (a skip, or a failure in CI) unless the test runs
// as root and no time daemon steers this machine's clock (the kernel
// reports it unsynchronized): a test that writes the clock's frequency
// back unchanged could otherwise undo another daemon's write made
// between its read and its write.
func NeedClockAlone(t testing.TB, why string) {
	t.Helper()
	NeedRoot(t, why)
	var tx unix.Timex
	if _, err := unix.Adjtimex(&tx); err != nil { // no mode bits: only reads
		unavailable(t, "%s: reading the clock's state: %v", why, err)
	}
	if tx.Status&unix.STA_UNSYNC == 0 {
		unavailable(t, "%s needs a clock no other daemon steers (kernel status %#x: synchronized)", why, tx.Status)
	}
}

// TaskStatus returns the status (/proc/PID/task/TID/status) of every
// thread of process pid, by path. It ends t if there is none.
func TaskStatus(t testing.TB, pid int) map[string]string {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("peertest: threads of %d: %v, %v", pid, tasks, err)
	}
	st := map[string]string{}
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			t.Fatal(err)
		}
		st[task] = string(b)
	}
	return st
}

// CheckTaskStatus fails t for each thread of process pid (name, in
// messages) whose status lacks one of the lines want ("Key:\tvalue"),
// and returns the statuses.
func CheckTaskStatus(t testing.TB, name string, pid int, want ...string) map[string]string {
	t.Helper()
	st := TaskStatus(t, pid)
	for task, s := range st {
		for _, w := range want {
			if !strings.Contains(s, "\n"+w+"\n") {
				t.Errorf("%s: %s lacks %q", name, task, w)
			}
		}
	}
	return st
}
