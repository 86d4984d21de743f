package privsep

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/sys/unix"
)

// stateEnv names the environment variable that gives the child its
// state directory.
const stateEnv = "MERIDIAN_PRIVSEP_TEST_STATE"

// childEnv names the environment variable that makes the test binary a
// sandboxed child: ROLE:ACTION.
const childEnv = "MERIDIAN_PRIVSEP_TEST_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(child(spec))
	}
	code := m.Run()
	if childPath != "" {
		os.RemoveAll(filepath.Dir(childPath))
	}
	os.Exit(code)
}

// child confines itself as the role spec names ("none" for no filter),
// then does the action, and returns 0 if the action's call came back, 3
// if the set-up failed. A call the filter forbids kills it with SIGSYS.
func child(spec string) int {
	roleName, action, _ := strings.Cut(spec, ":")
	action, arg, _ := strings.Cut(action, ":")
	if roleName == "fail" { // a child that cannot set itself up
		return 1
	}
	// The server inherits its sockets: make one before the filter.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return 3
	}
	if roleName != "none" {
		role, allow := RoleServer, Allowance(0)
		switch roleName {
		case "engine":
			role = RoleEngine
		case "server+xdp":
			allow = AllowXDPMaps
		}
		if _, err := Landlock(role, os.Getenv(stateEnv)); err != nil {
			fmt.Println(err)
			return 3
		}
		if err := Confine(role, FilterKill, allow); err != nil {
			fmt.Println(err)
			return 3
		}
	}
	err = act(action, arg, pc)
	fmt.Printf("%s: %v\n", action, err)
	return 0
}

// act does one thing a sandboxed process might try. Every call that
// could change the clock is made with values the kernel refuses, so that
// even an unconfined root child could not change it.
func act(action, arg string, pc net.PacketConn) error {
	switch action {
	case "sleep": // a child to supervise: it lives until killed, or a minute
		time.Sleep(time.Minute)
		return nil
	case "wait": // for the parent to look at it from outside
		fmt.Println("ready")
		_, err := io.Copy(io.Discard, os.Stdin)
		return err
	case "open":
		f, err := os.Open(arg)
		if err == nil {
			f.Close()
		}
		return err
	case "write": // a state file's atomic write, in directory arg
		if err := os.WriteFile(filepath.Join(arg, "tmp"), []byte("x"), 0o644); err != nil {
			return err
		}
		return os.Rename(filepath.Join(arg, "tmp"), filepath.Join(arg, "state"))
	case "work": // what a server does all day
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() { // exits after its loop
				defer wg.Done()
				for i := range 1000 {
					_ = make([]byte, 1024*(i%64))
				}
				time.Sleep(time.Millisecond)
			}()
		}
		wg.Wait()
		runtime.GC()
		if _, err := pc.WriteTo([]byte("ping"), pc.LocalAddr()); err != nil {
			return err
		}
		buf := make([]byte, 16)
		_ = pc.SetReadDeadline(time.Now().Add(time.Second))
		_, _, err := pc.ReadFrom(buf)
		return err
	case "dial": // what the engine does for every request
		c, err := net.Dial("udp", pc.LocalAddr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("ping"))
		return err
	case "vma": // the runtime's naming of its memory; EINVAL if the kernel cannot
		_, err := unix.PrctlRetInt(unix.PR_SET_VMA, 0, 0, 0, 0)
		if errors.Is(err, unix.EINVAL) {
			err = nil
		}
		return err
	case "prctl":
		return unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0)
	case "bpf-map": // an update of a map it was not given: EBADF if the call got through
		var attr [32]byte
		binary.NativeEndian.PutUint32(attr[:], math.MaxUint32) // map fd -1
		_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_UPDATE_ELEM, uintptr(unsafe.Pointer(&attr)), uintptr(len(attr)))
		if errno == unix.EBADF {
			return nil
		}
		return errno
	case "bpf-load": // a program load with nothing in it: refused if the call got through
		var attr [128]byte
		_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&attr)), uintptr(len(attr)))
		return errno
	case "clock_settime":
		return unix.ClockSettime(unix.CLOCK_REALTIME, &unix.Timespec{Sec: 0, Nsec: 2e9}) // nanoseconds out of range
	case "adjtimex":
		_, err := unix.ClockAdjtime(unix.CLOCK_REALTIME, &unix.Timex{Modes: unix.ADJ_TICK, Tick: 1}) // a tick out of range
		return err
	case "settimeofday":
		return unix.Settimeofday(&unix.Timeval{Sec: -1}) // before 1970: refused
	case "execve":
		return unix.Exec("/bin/true", []string{"true"}, nil)
	case "fork": // clone without CLONE_THREAD, as fork is on every architecture
		pid, _, errno := unix.RawSyscall6(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
		if errno == 0 && pid == 0 {
			unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
		}
		if errno != 0 {
			return errno
		}
		return nil
	case "ptrace":
		return unix.PtraceAttach(os.Getppid())
	case "packet-socket":
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err == nil {
			unix.Close(fd)
		}
		return err
	case "udp-socket":
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err == nil {
			unix.Close(fd)
		}
		return err
	case "mount":
		return unix.Mount("none", "/tmp", "tmpfs", 0, "")
	case "setuid":
		return unix.Setuid(0)
	}
	return errors.New("unknown action")
}

// runChild runs the test binary as a child confined as role (or "none"),
// doing action, as user nobody when the test runs as root (so that it
// has no capability), and returns its output and exit error.
func runChild(t *testing.T, role, action string) (string, error) {
	t.Helper()
	out, err := childCommand(t, role, action, "").CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// childCommand returns the command of a child confined as role doing
// action, with state directory stateDir.
func childCommand(t *testing.T, role, action, stateDir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(childBinary(t), "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+role+":"+action, stateEnv+"="+stateDir)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	return cmd
}

var (
	childOnce sync.Once
	childPath string
	childErr  error
)

// childBinary returns a copy of the test binary that user nobody may run
// (go test builds it in a directory only its owner may enter). The copy
// is left in a directory of its own under the system's temporary
// directory, removed at the end of TestMain's run.
func childBinary(t *testing.T) string {
	t.Helper()
	childOnce.Do(func() {
		dir, err := os.MkdirTemp("", "meridian-privsep-test-")
		if err == nil {
			err = os.Chmod(dir, 0o755)
		}
		var b []byte
		if err == nil {
			b, err = os.ReadFile(os.Args[0])
		}
		if err == nil {
			childPath = dir + "/privsep.test"
			err = os.WriteFile(childPath, b, 0o755)
		}
		childErr = err
	})
	if childErr != nil {
		t.Fatalf("copy of the test binary: %v", childErr)
	}
	return childPath
}

// killedBySIGSYS reports whether err is the exit of a process the
// seccomp filter killed.
func killedBySIGSYS(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGSYS
}

// TestSeccompForbids: THREATS H2, H3. Under the server's and the
// engine's filters, every call that sets the clock, starts a process,
// traces, mounts, changes user or opens a packet socket kills the process
// with SIGSYS; without a filter, as an unprivileged user, the clock calls
// fail with an error (the clock is never changed either way).
func TestSeccompForbids(t *testing.T) {
	if !seccompSupported() {
		t.Skip("SKIP: the kernel has no seccomp")
	}
	forbidden := []string{"clock_settime", "adjtimex", "settimeofday", "execve", "fork", "ptrace", "packet-socket", "mount", "setuid", "prctl"}
	for _, role := range []string{"server", "engine"} {
		for _, action := range forbidden {
			out, err := runChild(t, role, action)
			if !killedBySIGSYS(err) {
				t.Errorf("%s doing %s: %v, %q; want killed by SIGSYS", role, action, err, out)
			}
		}
	}
	if out, err := runChild(t, "server", "udp-socket"); !killedBySIGSYS(err) {
		t.Errorf("server opening a socket: %v, %q; want killed by SIGSYS (it inherits its sockets)", err, out)
	}
	// bpf: only with the XDP fast path's maps, and then only on maps.
	for _, c := range []struct{ role, action string }{{"server", "bpf-map"}, {"engine", "bpf-map"}, {"server+xdp", "bpf-load"}} {
		if out, err := runChild(t, c.role, c.action); !killedBySIGSYS(err) {
			t.Errorf("%s doing %s: %v, %q; want killed by SIGSYS", c.role, c.action, err, out)
		}
	}
	for _, action := range []string{"clock_settime", "adjtimex", "settimeofday"} {
		out, err := runChild(t, "none", action)
		if err != nil || !strings.Contains(out, action+": ") || strings.HasSuffix(out, ": <nil>") {
			t.Errorf("unconfined child doing %s: %v, %q; want the call refused with an error", action, err, out)
		}
	}
}

// TestSeccompAllows: THREATS H10, a first part. A confined server does
// what a server does (goroutines, memory, timers, the garbage collector,
// a socket it was given), and a confined engine opens sockets for its
// requests, without being killed.
func TestSeccompAllows(t *testing.T) {
	if !seccompSupported() {
		t.Skip("SKIP: the kernel has no seccomp")
	}
	for _, c := range []struct{ role, action string }{{"server", "work"}, {"engine", "work"}, {"engine", "dial"}, {"engine", "udp-socket"},
		{"server", "vma"}, {"engine", "vma"}, {"server+xdp", "work"}, {"server+xdp", "bpf-map"}} {
		out, err := runChild(t, c.role, c.action)
		if err != nil || out != c.action+": <nil>" {
			t.Errorf("%s doing %s: %v, %q; want it done", c.role, c.action, err, out)
		}
	}
}

// seccompSupported reports whether seccomp filters can be installed here.
func seccompSupported() bool {
	_, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0)
	return err == nil
}

// TestSeccompArches: THREATS H10 beyond this machine's architecture. The
// policies of both architectures the daemon is built for hold only calls
// their kernel has (an unknown name would make the filter fail to build,
// and the daemon to stop), keep the calls the Go runtime makes there, and
// every name in the lists is a call of one of them (a misspelt name would
// otherwise be dropped unseen).
func TestSeccompArches(t *testing.T) {
	// The dynamic loader's calls are the keeper's only: its children make
	// them before their own filter.
	loader := map[string]bool{"arch_prctl": true, "access": true, "faccessat": true}
	need := map[string][]string{
		"x86_64":  {"epoll_wait", "epoll_pwait", "newfstatat", "poll", "arch_prctl", "access", "clone", "openat", "futex", "mmap", "rt_sigreturn"},
		"aarch64": {"epoll_pwait", "fstatat", "ppoll", "pselect6", "faccessat", "dup3", "clone", "openat", "futex", "mmap", "rt_sigreturn"},
	}
	known := map[string]bool{}
	for _, name := range []string{"x86_64", "aarch64"} {
		info, err := arch.GetInfo(name)
		if err != nil {
			t.Fatal(err)
		}
		for c := range info.SyscallNames {
			known[c] = true
		}
		for _, role := range []Role{RoleServer, RoleEngine, RoleKeeper} {
			p, err := seccompPolicy(role, FilterKill, AllowXDPMaps, info)
			if err != nil {
				t.Fatal(err)
			}
			have := map[string]bool{}
			for _, g := range p.Syscalls {
				for _, c := range g.Names {
					have[c] = true
				}
				for _, c := range g.NamesWithCondtions {
					have[c.Name] = true
				}
			}
			for c := range have {
				if _, ok := info.SyscallNames[c]; !ok {
					t.Errorf("%s %v: %s is not a call of this architecture", name, role, c)
				}
			}
			for _, c := range need[name] {
				if !have[c] && (!loader[c] || role == RoleKeeper) {
					t.Errorf("%s %v: %s missing", name, role, c)
				}
			}
		}
	}
	for _, calls := range append([][]string{runtimeCalls}, roleCalls[RoleServer], roleCalls[RoleEngine], roleCalls[RoleKeeper]) {
		for _, c := range calls {
			if !known[c] {
				t.Errorf("%s: no such call on x86-64 or arm64", c)
			}
		}
	}
}
