package privsep

import (
	"fmt"
	"runtime"
	"slices"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/sys/unix"

	"github.com/meridian-ntp/meridian/internal/config"
)

// FilterMode is what a filter does with a system call off its list: the
// configuration's privsep.filter.
type FilterMode = config.FilterMode

// Filter modes.
const (
	// FilterKill kills the process (SIGSYS): the mode to run in.
	FilterKill = config.FilterKill
	// FilterLog lets the call through and has the kernel log it (the
	// audit log, or the kernel's): for finding what a list lacks.
	FilterLog = config.FilterLog
)

// runtimeCalls are what a Go program (runtime, scheduler, garbage
// collector, timers, network poller, the race detector's runtime) calls
// once it runs. Threads are made with clone and CLONE_THREAD only (see
// cloneThread); nothing here starts a process or touches the clock. The
// lists name the calls of every architecture the daemon runs on (x86-64's
// poll and newfstatat, arm64's ppoll and fstatat, ...): a policy keeps
// those its architecture has.
var runtimeCalls = []string{"fstatat",
	"read", "write", "readv", "writev", "pread64", "pwrite64", "close", "fstat", "newfstatat", "statx", "lseek",
	"mmap", "munmap", "mprotect", "madvise", "mremap", "brk", "mincore", "membarrier",
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "tgkill", "tkill", "getpid", "gettid", "getppid",
	"futex", "sched_yield", "sched_getaffinity", "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres",
	"gettimeofday", "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait", "eventfd2",
	"pipe2", "fcntl", "dup", "dup3", "getrandom", "uname", "set_robust_list", "rseq", "restart_syscall",
	"exit", "exit_group", "getrlimit", "prlimit64", "getuid", "geteuid", "getgid", "getegid",
	"openat", "readlinkat", "getcwd", "poll", "ppoll", "pselect6", "select",
}

// roleCalls are each role's calls beyond the runtime's.
var roleCalls = map[Role][]string{
	// The server answers on sockets it inherited, already bound and set.
	RoleServer: {"recvmmsg", "sendmmsg", "recvmsg", "sendmsg", "recvfrom", "sendto", "getsockname", "getsockopt", "shutdown"},
	// The engine opens a socket per request (and for DNS), keeps its
	// state files (which Landlock confines to its directory) and the
	// control socket.
	RoleEngine: {"connect", "bind", "setsockopt", "getsockopt", "getsockname", "getpeername",
		"recvmmsg", "sendmmsg", "recvmsg", "sendmsg", "recvfrom", "sendto", "accept4", "listen", "shutdown",
		"renameat", "renameat2", "unlinkat", "fsync", "fdatasync", "fchmod", "fchmodat", "getdents64", "umask"},
}

func init() {
	// Filters stack and children inherit them: the keeper's must let its
	// children do what theirs allow, and it adds its own: the clock;
	// starting processes (clone without CLONE_THREAD, execve, changing
	// user in the new process, its parent-death signal) and waiting for and
	// signalling them; the socketpairs; binding the server's sockets again;
	// its step file. It still forbids what no part of the daemon does:
	// mount, ptrace, modules, reboot, packet sockets, setting the clock by
	// any other call than clock_adjtime and adjtimex.
	keeper := []string{"clock_adjtime", "adjtimex", "execve", "wait4", "waitid", "kill", "pidfd_open",
		"pidfd_send_signal", "setuid", "setgid", "setgroups", "setresuid", "setresgid", "prctl", "dup2", "close_range",
		"socketpair", "chdir", "fchdir", "capget", "capset", "vfork",
		// What a child does between execve and installing its own filter:
		// the dynamic loader of a cgo build, the runtime's start, Landlock
		// and the filter itself.
		"access", "faccessat", "faccessat2", "arch_prctl", "set_tid_address", "sysinfo", "getdents64",
		"landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self", "seccomp"}
	// (A policy drops the names its lists repeat.)
	roleCalls[RoleKeeper] = slices.Concat(keeper, roleCalls[RoleServer], roleCalls[RoleEngine])
}

// cloneThread is the one form of clone allowed: a new thread
// (CLONE_THREAD), never a new process.
var cloneThread = seccomp.NameWithConditions{Name: "clone", Conditions: seccomp.ArgumentConditions{
	{Argument: 0, Operation: seccomp.BitsSet, Value: unix.CLONE_THREAD}}}

// nameVMA is the one prctl the children may make: the Go runtime names
// its memory areas (PR_SET_VMA) as its heap grows, on kernels that
// support it.
var nameVMA = seccomp.NameWithConditions{Name: "prctl", Conditions: seccomp.ArgumentConditions{
	{Argument: 0, Operation: seccomp.Equal, Value: unix.PR_SET_VMA}}}

// socketFamilies are the families the engine (and the keeper) may open
// sockets of: IPv4 and IPv6 (requests, DNS), unix (the control socket)
// and netlink (Go's net package asks the kernel for an interface's index
// that way, for an IPv6 address with a zone); never a packet socket.
var socketFamilies = []uint64{unix.AF_INET, unix.AF_INET6, unix.AF_UNIX, unix.AF_NETLINK}

// Allowance widens the filters for an optional part of the daemon.
type Allowance uint8

// Allowances.
const (
	// AllowXDPMaps lets the server (and so the keeper, whose filter its
	// own stacks on) use the XDP program's maps it was handed: bpf with
	// the commands that look up and update an element and read a map's
	// description, never one that loads a program or makes a map.
	AllowXDPMaps Allowance = 1 << iota
)

// bpfMapCalls are the bpf commands of AllowXDPMaps.
var bpfMapCalls = []uint64{unix.BPF_MAP_LOOKUP_ELEM, unix.BPF_MAP_UPDATE_ELEM, unix.BPF_OBJ_GET_INFO_BY_FD}

// SeccompPolicy returns the seccomp policy of role: its calls and the
// runtime's allowed (and those of allow), every other call killing the
// process (or logged, in FilterLog mode).
func SeccompPolicy(role Role, mode FilterMode, allow Allowance) (seccomp.Policy, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return seccomp.Policy{}, fmt.Errorf("privsep: seccomp: %w", err)
	}
	return seccompPolicy(role, mode, allow, info)
}

// seccompPolicy is SeccompPolicy for the architecture info describes.
func seccompPolicy(role Role, mode FilterMode, allow Allowance, info *arch.Info) (seccomp.Policy, error) {
	calls, ok := roleCalls[role]
	if !ok {
		return seccomp.Policy{}, fmt.Errorf("privsep: no seccomp policy for role %v", role)
	}
	action := seccomp.ActionKillProcess
	if mode == FilterLog {
		action = seccomp.ActionLog
	}
	var names []string
	seen := map[string]bool{}
	for _, c := range append(append([]string(nil), runtimeCalls...), calls...) {
		if _, here := info.SyscallNames[c]; here && !seen[c] {
			seen[c] = true
			names = append(names, c)
		}
	}
	conditional := []seccomp.NameWithConditions{cloneThread, nameVMA}
	if role == RoleKeeper {
		// A new process (a child to start), and prctl for its
		// parent-death signal.
		names = append(names, "clone")
		conditional = nil
	}
	if role == RoleEngine || role == RoleKeeper {
		for _, f := range socketFamilies {
			conditional = append(conditional, seccomp.NameWithConditions{Name: "socket",
				Conditions: seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.Equal, Value: f}}})
		}
	}
	if allow&AllowXDPMaps != 0 && (role == RoleServer || role == RoleKeeper) {
		for _, c := range bpfMapCalls {
			conditional = append(conditional, seccomp.NameWithConditions{Name: "bpf",
				Conditions: seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.Equal, Value: c}}})
		}
	}
	return seccomp.Policy{DefaultAction: action, Syscalls: []seccomp.SyscallGroup{
		{Names: names, NamesWithCondtions: conditional, Action: seccomp.ActionAllow},
		// clone3 passes its flags in memory, where a filter cannot see
		// them: it fails as if the kernel had none, and the C library
		// (in a cgo build) falls back to clone, which is checked.
		{Names: []string{"clone3"}, Action: seccomp.ActionErrno | seccomp.Action(unix.ENOSYS)},
	}}, nil
}

// Confine sets no_new_privs and installs role's seccomp filter (widened
// by allow) on every thread of the process (TSYNC), for good.
func Confine(role Role, mode FilterMode, allow Allowance) error {
	p, err := SeccompPolicy(role, mode, allow)
	if err != nil {
		return err
	}
	// The filter is installed from one thread and synchronized to the
	// others; the thread is locked so that the runtime does not move the
	// goroutine between the no_new_privs and the seccomp calls.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := seccomp.LoadFilter(seccomp.Filter{NoNewPrivs: true, Flag: seccomp.FilterFlagTSync, Policy: p}); err != nil {
		return fmt.Errorf("privsep: seccomp for the %v: %w", role, err)
	}
	return nil
}
