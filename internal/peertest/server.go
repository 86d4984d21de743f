package peertest

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// ServerConfig describes the server that StartServer starts: the daemon
// under test, such as Meridian's own, rather than one of the peers.
type ServerConfig struct {
	// Name and Version name the server in messages and logs.
	Name, Version string
	// Argv is its command line: the path of the program, then its
	// arguments.
	Argv []string
	// Addr is the IPv4 address and UDP port it serves on. StartServer
	// returns once the process has bound it.
	Addr netip.AddrPort
	// Netns runs the server in a new network namespace of its own, which
	// holds only the loopback interface, up. Its clients run there by way
	// of Command or ClientCommand. It needs root: without root the test is
	// skipped (or fails in CI).
	Netns bool
	// NetnsPath, if set, runs the server in that existing network
	// namespace (such as /run/netns/NAME from VethPair) instead.
	NetnsPath string
	// Env is added to the test's environment for the server
	// ("NAME=value" each).
	Env []string
}

// StartServer starts the server c describes and returns once it has bound
// c.Addr. Its standard output and error are what Log returns. As root, it
// runs without CAP_SYS_TIME, like the peers. It is stopped with SIGTERM when
// t ends, or earlier by Stop; exiting on its own before that, or lingering
// after SIGTERM until it is killed, fails t.
func StartServer(t testing.TB, c ServerConfig) *Peer {
	t.Helper()
	if len(c.Argv) == 0 || !c.Addr.IsValid() {
		t.Fatalf("peertest: server %q needs a command line and an address", c.Name)
	}
	if (c.Netns || c.NetnsPath != "") && !isRoot() {
		unavailable(t, "%s in a network namespace needs root", c.Name)
	}
	argv := c.Argv
	if isRoot() {
		argv = dropSysTime(needTools(t, "setpriv")[0], argv...)
	}
	p := &Peer{
		Name:      c.Name,
		Version:   c.Version,
		Addr:      c.Addr,
		logPath:   filepath.Join(t.TempDir(), c.Name+".log"),
		underTest: true,
		env:       c.Env,
	}
	switch {
	case c.NetnsPath != "":
		nsenter := needTools(t, "nsenter")[0]
		p.netns = c.NetnsPath
		start(t, p, exec.Command(nsenter, append([]string{"--net=" + c.NetnsPath, "--"}, argv...)...))
	case c.Netns:
		startInNetns(t, p, argv)
	default:
		start(t, p, exec.Command(argv[0], argv[1:]...))
	}
	return p
}

// startInNetns starts argv as p's daemon in a new network namespace, with
// its loopback interface brought up first, and records the namespace for
// Command. It needs root.
func startInNetns(t testing.TB, p *Peer, argv []string) {
	t.Helper()
	// nsenter is not needed to start the daemon, but Command needs it.
	tools := needTools(t, "ip", "nsenter")
	// The new namespace holds only the loopback interface, and it is down.
	// The shell brings it up and execs the daemon, so the started process
	// becomes the daemon (and its pid names the namespace).
	cmd := exec.Command("/bin/sh", append([]string{"-c", `"$0" link set lo up && exec "$@"`, tools[0]}, argv...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	start(t, p, cmd)
	p.netns = fmt.Sprintf("/proc/%d/ns/net", p.cmd.Process.Pid)
}

// ClientCommand is like CommandContext, for a client program that has no
// business with the system clock: as root, the program runs without
// CAP_SYS_TIME, so that even a client that would set the clock cannot.
func (p *Peer) ClientCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	if isRoot() {
		setpriv, err := lookTool("setpriv")
		if err != nil {
			setpriv = "setpriv" // then the command fails to start, and says why
		}
		argv := dropSysTime(setpriv, append([]string{name}, args...)...)
		name, args = argv[0], argv[1:]
	}
	return p.CommandContext(ctx, name, args...)
}

// Stop stops p's daemon now, as the end of the test would, and waits until
// it has exited. It fails t if the daemon had exited on its own.
func (p *Peer) Stop(t testing.TB) {
	t.Helper()
	stop(t, p)
}

// Tool returns the path of the executable name, searching PATH and then the
// sbin folders, or ends t (a skip, or a failure in CI) if it is missing.
func Tool(t testing.TB, name string) string {
	t.Helper()
	return needTools(t, name)[0]
}

// FreeUDPPort returns a UDP port of 127.0.0.1 that was free a moment ago,
// for a server to bind. It fails t if there is none.
func FreeUDPPort(t testing.TB) uint16 {
	t.Helper()
	port, err := freeUDPPort()
	if err != nil {
		t.Fatalf("peertest: %v", err)
	}
	return port
}
