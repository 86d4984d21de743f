package main

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/peertest"
	"github.com/meridian-ntp/meridian/internal/query"
)

// testZone is the time zone of the daemons of startSplit: five and a
// half hours east of UTC all year.
const testZone = "Asia/Kolkata"

// checkLogZone checks that every time in a daemon's log, the keeper's
// and the children's, is in testZone (+05:30): the children load the
// zone before Landlock hides its file.
func checkLogZone(t *testing.T, log string) {
	t.Helper()
	if _, err := time.LoadLocation(testZone); err != nil {
		t.Logf("no check of the log's time zone: %v", err)
		return
	}
	times := regexp.MustCompile(`(?m)^time=(\S+) .*process=(\w+)`).FindAllStringSubmatch(log, -1)
	roles := map[string]bool{}
	for _, m := range times {
		roles[m[2]] = true
		if !strings.HasSuffix(m[1], "+05:30") {
			t.Errorf("the %s logged a time of %s; want it in %s (+05:30)", m[2], m[1], testZone)
		}
	}
	if !roles["keeper"] || !roles["server"] || !roles["engine"] {
		t.Errorf("log lines with times from %v; want the keeper's, the server's and the engine's", roles)
	}
}

// childStarted is the line of a split daemon's log that says a child
// started: its name and pid.
var childStarted = regexp.MustCompile(`msg="child started" process=keeper child=(\w+) pid=(\d+)`)

// childPids returns the pids of the server and engine children the
// keeper's log reports started, the latest of each.
func childPids(t *testing.T, log string) map[string]int {
	t.Helper()
	pids := map[string]int{}
	for _, m := range childStarted.FindAllStringSubmatch(log, -1) {
		pids[m[1]], _ = strconv.Atoi(m[2]) // the pattern admits only digits
	}
	return pids
}

// TestPrivsep: THREATS H1, H5, H9. meridian daemon started as root (the
// test's root, without CAP_SYS_TIME) splits itself: a server and an
// engine running as nobody, with no capability, no new privileges, a
// seccomp filter on every thread, and no descriptor but their own; the
// engine's client synchronizes to an upstream on loopback and the server
// serves its time. Each child killed with SIGKILL is started again and
// the daemon serves on; at stop, every process exits cleanly.
func TestPrivsep(t *testing.T) {
	t.Parallel()
	peertest.NeedRoot(t, "privilege separation starts as root")
	m, addr, sock := startSplit(t, "kill")
	log := m.Log()
	pids := waitChildren(t, m)
	if len(pids) != 2 || !strings.Contains(log, "msg=confined process=server") || !strings.Contains(log, "msg=confined process=engine") {
		t.Fatalf("children %v; want a server and an engine, both confined\n%s", pids, log)
	}
	for name, pid := range pids {
		checkConfined(t, name, pid)
	}
	checkKeeper(t, m.Pid())
	checkLogZone(t, log)
	if code, out, _ := runArgs(t, "sources", "--socket", sock); code != exitOK || !strings.Contains(out, "selected") {
		t.Errorf("meridian sources through the engine's control socket = %d\n%s", code, out)
	}

	// Kill each child: it is started again, and the daemon serves on. The
	// configuration file is spoilt first: a child started again works from
	// the configuration the keeper read at the start, not the file.
	if err := os.WriteFile(filepath.Join(filepath.Dir(sock), "meridian.toml"), []byte("[server]\nlisten = 12\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"server", "engine"} {
		old, pid := restartChild(t, m, addr, name)
		t.Logf("%s killed (pid %d), started again (pid %d), serving stratum 4", name, old, pid)
	}
	if code, out, _ := runArgs(t, "sources", "--socket", sock); code != exitOK {
		t.Errorf("meridian sources through the restarted engine = %d\n%s", code, out)
	}
	m.Stop(t)
	log = m.Log()
	if strings.Count(log, "msg=stopped process=server") < 1 || strings.Contains(log, "bad system call") {
		t.Errorf("log after stop:\n%s\nwant the server's stop line and no process killed by its filter", log)
	}
}

// keeperCaps are the capabilities the keeper may keep: SYS_TIME (25),
// SETUID (7), SETGID (6), NET_BIND_SERVICE (10), KILL (5).
const keeperCaps = 1<<25 | 1<<7 | 1<<6 | 1<<10 | 1<<5

// startSplit starts a daemon as root, split with its filters in filter
// mode, its client (clock none, a drift file in a state directory of
// nobody's) synchronized to an upstream on loopback, serving stratum 4
// on addr, with its control socket at sock.
func startSplit(t *testing.T, filter string) (m *peertest.Peer, addr netip.AddrPort, sock string) {
	t.Helper()
	up := startUpstream(t)
	dir := sharedDir(t)
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(state, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	addr = loopbackAddr(t)
	sock = filepath.Join(dir, "control.sock")
	conf := fmt.Sprintf(`[server]
listen = ["%v"]
local-stratum = 12

[client]
servers = ["%v iburst minpoll 3"]
clock = "none"
drift-file = "%s/drift"

[control]
socket = %q

[privsep]
user = "nobody"
filter = %q
`, addr, up, state, sock, filter)
	// A zone of its own, so that a child logging in UTC shows.
	m = startMeridianStratum(t, filepath.Join(dir, "meridian.toml"), conf, addr, 4, "TZ="+testZone)
	return m, addr, sock
}

// restartChild kills the child name of daemon m with SIGKILL, waits until
// it is started again and the daemon serves stratum 4 on addr again, and
// returns the old pid and the new.
func restartChild(t *testing.T, m *peertest.Peer, addr netip.AddrPort, name string) (old, pid int) {
	t.Helper()
	old = waitChildren(t, m)[name]
	confined := "msg=confined process=" + name
	before := strings.Count(m.Log(), confined)
	killChild(t, old)
	// Started again, and set up: a new pid alone could be a start that
	// failed (the server serves the last state it had meanwhile).
	deadline := time.Now().Add(serveWait)
	for pid = old; pid == old || strings.Count(m.Log(), confined) == before; pid = childPids(t, m.Log())[name] {
		if time.Now().After(deadline) {
			t.Fatalf("the %s was not started again and confined within %v\n%s", name, serveWait, m.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitStratum(t, addr, 4)
	return old, pid
}

// waitChildren returns childPids of m's log once it names both a server
// and an engine: the keeper logs a child's start a moment after it
// started, and the child may serve before that.
func waitChildren(t *testing.T, m *peertest.Peer) map[string]int {
	t.Helper()
	deadline := time.Now().Add(serveWait)
	for {
		pids := childPids(t, m.Log())
		if pids["server"] > 1 && pids["engine"] > 1 {
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log names children %v after %v; want a server and an engine", pids, serveWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killChild kills the child process pid of a daemon with SIGKILL. A pid
// that is not one (0, or -1: a child not found in the log) would have
// the kernel kill the test's own process group, or everything.
func killChild(t *testing.T, pid int) {
	t.Helper()
	if pid <= 1 {
		t.Fatalf("no child to kill: pid %d", pid)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// checkKeeper checks the keeper (the parent) as /proc shows it (H6): no
// capability beyond keeperCaps in any set, the bounding set shrunk to
// them, no new privileges and a seccomp filter on every thread, and no
// network socket among its descriptors.
func checkKeeper(t *testing.T, pid int) {
	t.Helper()
	for task, s := range peertest.CheckTaskStatus(t, "keeper", pid, "NoNewPrivs:\t1", "Seccomp:\t2") {
		for _, set := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
			m := regexp.MustCompile(`\n` + set + `:\t([0-9a-f]+)\n`).FindStringSubmatch(s)
			if m == nil {
				t.Fatalf("keeper: %s has no %s", task, set)
			}
			v, _ := strconv.ParseUint(m[1], 16, 64) // the pattern admits only hex
			if v&^keeperCaps != 0 || (set == "CapInh" || set == "CapAmb") && v != 0 {
				t.Errorf("keeper: %s %s = %x; want within %x", task, set, v, keeperCaps)
			}
		}
	}
	// No network socket: none of its descriptors is an IP socket.
	ip := map[string]bool{}
	for _, table := range []string{"udp", "udp6", "tcp", "tcp6"} {
		sockets, err := peertest.SocketTargets(pid, table, "")
		if err != nil {
			continue // no IPv6, say
		}
		maps.Copy(ip, sockets)
	}
	fds, err := peertest.FDTargets(pid)
	if err != nil {
		t.Fatal(err)
	}
	for n, target := range fds {
		if ip[target] {
			t.Errorf("keeper: descriptor %d is an IP socket (%s)", n, target)
		}
	}
}

// checkConfined checks every thread of process pid (the child name) as
// /proc shows it (H1), and its descriptors (H5).
func checkConfined(t *testing.T, name string, pid int) {
	t.Helper()
	for task, s := range peertest.CheckTaskStatus(t, name, pid, "Uid:\t65534\t65534\t65534\t65534", "Gid:\t65534\t65534\t65534\t65534",
		"CapInh:\t0000000000000000", "CapPrm:\t0000000000000000", "CapEff:\t0000000000000000",
		"CapAmb:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2") {
		if !regexp.MustCompile(`(?m)^Groups:\s*$`).MatchString(s) {
			t.Errorf("%s: %s has supplementary groups", name, task)
		}
	}
	// Its descriptors: standard input (/dev/null), output and error (the
	// log), sockets, and the Go runtime's own (an epoll instance, an event
	// descriptor, the cgroup's CPU limits it reads); nothing else, not
	// even what the test's own parent leaves open.
	fds, err := peertest.FDTargets(pid)
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for n, target := range fds {
		targets = append(targets, target)
		switch {
		case strings.HasPrefix(target, "socket:"), strings.HasPrefix(target, "anon_inode:"),
			strings.HasPrefix(target, "/sys/fs/cgroup/") && strings.Contains(target, "/cpu"):
		case n == 0 && target == "/dev/null":
		case (n == 1 || n == 2) && strings.HasSuffix(target, ".log"):
		default:
			t.Errorf("%s: descriptor %d is %s", name, n, target)
		}
	}
	slices.Sort(targets)
	t.Logf("%s (pid %d): %d descriptors: %v", name, pid, len(targets), targets)
}

// startUpstream starts a Meridian server of the local clock at stratum 3
// on loopback, unprivileged, for the daemon under test to take time from.
func startUpstream(t *testing.T) netip.AddrPort {
	t.Helper()
	addr := loopbackAddr(t)
	path := filepath.Join(t.TempDir(), "upstream.toml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf("[server]\nlisten = [\"%v\"]\nlocal-stratum = 3\n", addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	peertest.StartServer(t, peertest.ServerConfig{Name: "upstream", Argv: []string{meridianBinary(t), "daemon", "--no-privsep", "--config", path}, Addr: addr})
	return addr
}

// startMeridianStratum starts meridian daemon with conf, written to
// path, and waits until it serves stratum on addr.
func startMeridianStratum(t *testing.T, path, conf string, addr netip.AddrPort, stratum uint8, env ...string) *peertest.Peer {
	t.Helper()
	bin := meridianBinary(t)
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	watch := watchFilters(t)
	m := peertest.StartServer(t, peertest.ServerConfig{Name: "meridian", Argv: []string{bin, "daemon", "--config", path}, Addr: addr, Env: env})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("meridian log:\n%s", m.Log())
		}
	})
	watch(m) // its check runs before the log is shown
	waitStratum(t, addr, stratum)
	return m
}

// waitStratum waits until the server at addr serves stratum.
func waitStratum(t *testing.T, addr netip.AddrPort, stratum uint8) {
	t.Helper()
	deadline := time.Now().Add(serveWait)
	for {
		r := query.One(context.Background(), addr.String(), query.Config{Timeout: time.Second})
		if r.Err == nil && r.Sample.Header.Stratum == stratum {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving stratum %d on %v within %v: %v %+v", stratum, addr, serveWait, r.Err, r.Sample.Header)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sharedDir returns a new directory that every user may read (t.TempDir
// is under one only its owner may enter), removed when the test ends.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "meridian-test-")
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestPrivsepWithCapabilities: a daemon started as an unprivileged user
// with CAP_NET_BIND_SERVICE in its ambient set, as systemd starts a
// service with User= and AmbientCapabilities=, splits itself too: its
// children run as that same user with no capability at all, the keeper
// keeps that one capability (and clears its ambient set, so that the
// children do not inherit it), and binds port 123 again for a server
// killed and restarted.
func TestPrivsepWithCapabilities(t *testing.T) {
	t.Parallel()
	peertest.NeedRoot(t, "starting a process as another user, with a capability, needs root")
	setpriv := peertest.Tool(t, "setpriv")
	bin := meridianBinary(t)
	path := filepath.Join(sharedDir(t), "meridian.toml")
	const stratum = 5
	conf := fmt.Sprintf("[server]\nlisten = [\"127.0.0.1:123\"]\nlocal-stratum = %d\n\n%s", stratum, privsepTable())
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddrPort("127.0.0.1:123")
	watch := watchFilters(t)
	m := peertest.StartServer(t, peertest.ServerConfig{Name: "meridian", Addr: addr, Netns: true,
		Argv: []string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
			"--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service", bin, "daemon", "--config", path}})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("meridian log:\n%s", m.Log())
		}
	})
	watch(m) // its check runs before the log is shown
	waitServing(t, m, bin, addr, stratum, func() bool { return true })
	pids := waitChildren(t, m)
	log := m.Log()
	if len(pids) != 2 || !strings.Contains(log, `capabilities=[cap_net_bind_service] bounding_set_shrunk=false`) {
		t.Fatalf("children %v; want a server and an engine, and a keeper with CAP_NET_BIND_SERVICE alone", pids)
	}
	for name, pid := range pids {
		checkConfined(t, name, pid)
	}
	peertest.CheckTaskStatus(t, "keeper", m.Pid(), "Uid:\t65534\t65534\t65534\t65534", "CapInh:\t0000000000000000",
		"CapPrm:\t0000000000000400", "CapEff:\t0000000000000400", "CapAmb:\t0000000000000000",
		"NoNewPrivs:\t1", "Seccomp:\t2")
	old := pids["server"]
	killChild(t, old)
	waitServing(t, m, bin, addr, stratum, func() bool { return childPids(t, m.Log())["server"] != old })
	t.Logf("server %d killed; server %d serves on port 123 again", old, childPids(t, m.Log())["server"])
}

// TestPrivsepUpgrade: the program file is replaced under a running split
// daemon, as a package upgrade does (a new file renamed over the old):
// a child killed and started again is the keeper's own program, held
// open since the start, not whatever the path now names.
func TestPrivsepUpgrade(t *testing.T) {
	t.Parallel()
	peertest.NeedRoot(t, "privilege separation starts as root")
	dir := sharedDir(t)
	b, err := os.ReadFile(meridianBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "meridian")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	addr := loopbackAddr(t)
	path := filepath.Join(dir, "meridian.toml")
	conf := fmt.Sprintf("[server]\nlisten = [\"%v\"]\nlocal-stratum = 6\n\n%s", addr, privsepTable())
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	watch := watchFilters(t)
	m := peertest.StartServer(t, peertest.ServerConfig{Name: "meridian", Argv: []string{bin, "daemon", "--config", path}, Addr: addr})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("meridian log:\n%s", m.Log())
		}
	})
	watch(m) // its check runs before the log is shown
	waitStratum(t, addr, 6)
	// The new "program": one that fails at once.
	next := filepath.Join(dir, "meridian.new")
	if err := os.WriteFile(next, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, bin); err != nil {
		t.Fatal(err)
	}
	old := waitChildren(t, m)["server"]
	confined := strings.Count(m.Log(), "msg=confined process=server")
	killChild(t, old)
	deadline := time.Now().Add(serveWait)
	for childPids(t, m.Log())["server"] == old || strings.Count(m.Log(), "msg=confined process=server") == confined {
		if time.Now().After(deadline) {
			t.Fatalf("no server started again and confined within %v", serveWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitStratum(t, addr, 6)
	t.Logf("program replaced on disk; server %d killed, server %d started from the keeper's own program", old, childPids(t, m.Log())["server"])
}
