package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/control"
	"github.com/meridian-ntp/meridian/internal/peertest"
)

// TestClientFollowsAddressChange: THREATS F4. Meridian's client and a
// Meridian server sit in two network namespaces joined by a veth pair.
// The client's address changes, then its interface goes down and up
// again: the client keeps (or gets back) its source each time, since
// every request leaves from a new socket with the address the kernel
// picks then. A client that kept one socket would keep sending from the
// address it lost, and hear nothing again.
func TestClientFollowsAddressChange(t *testing.T) {
	t.Parallel()
	nsC, nsS := peertest.VethPair(t, netip.MustParsePrefix("10.88.0.2/24"), netip.MustParsePrefix("10.88.0.1/24"))
	bin := meridianBinary(t)
	dir := sharedDir(t)
	srvAddr := netip.MustParseAddrPort("10.88.0.1:123")
	startIn := func(name, ns, conf string, addr netip.AddrPort) *peertest.Peer {
		path := filepath.Join(dir, name+".toml")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		watch := watchFilters(t)
		p := peertest.StartServer(t, peertest.ServerConfig{Name: name, Argv: []string{bin, "daemon", "--config", path},
			Addr: addr, NetnsPath: "/run/netns/" + ns})
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s log:\n%s", name, p.Log())
			}
		})
		watch(p) // its check runs before the log is shown
		return p
	}
	startIn("server", nsS, localServerConf(srvAddr, 3)+"\n[privsep]\nenabled = false\n", srvAddr)
	sock := filepath.Join(dir, "control.sock")
	client := startIn("client", nsC, fmt.Sprintf(`[server]
listen = ["127.0.0.1:1123"]

[client]
servers = ["%v iburst minpoll 3 maxpoll 3"]
clock = "none"

[control]
socket = %q

%s`, srvAddr, sock, privsepTable()), netip.MustParseAddrPort("127.0.0.1:1123"))

	// answered waits until the source's reach register, seen through the
	// control socket, shows three answered requests in a row, all sent
	// after since (polls are 8 s apart).
	answered := func(what string, since time.Time) {
		t.Helper()
		deadline := time.Now().Add(2 * serveWait)
		for {
			code, out, _ := runArgs(t, "sources", "--socket", sock, "--json")
			var srcs []control.Source
			if code == exitOK && json.Unmarshal([]byte(out), &srcs) == nil && len(srcs) == 1 &&
				srcs[0].Reach&0b111 == 0b111 && time.Since(since) > 3*8*time.Second+time.Second {
				t.Logf("%s: reach %03o", what, srcs[0].Reach)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v: %s", what, 2*serveWait, out)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	answered("synchronized at 10.88.0.2", time.Time{})

	// The address changes: a new one comes, the old one goes (the new
	// one taking over the subnet's route, as a network manager has it).
	peertest.IP(t, "netns", "exec", nsC, "sysctl", "-qw", "net.ipv4.conf.veth0.promote_secondaries=1")
	peertest.IP(t, "-n", nsC, "addr", "add", "10.88.0.3/24", "dev", "veth0")
	peertest.IP(t, "-n", nsC, "addr", "del", "10.88.0.2/24", "dev", "veth0")
	answered("answered at 10.88.0.3", time.Now())

	// The interface goes down: sends fail, and say so once; up again,
	// the source is heard again.
	peertest.IP(t, "-n", nsC, "link", "set", "veth0", "down")
	waitLog(t, client, "cannot send to source")
	peertest.IP(t, "-n", nsC, "link", "set", "veth0", "up")
	waitLog(t, client, "sending to source again")
	answered("answered after the interface came back", time.Now())
	if n := strings.Count(client.Log(), "cannot send to source"); n != 1 {
		t.Errorf("%d lines saying the source cannot be sent to; want 1 (logged when sending starts failing)", n)
	}
}

// waitLog waits until p's log contains s.
func waitLog(t *testing.T, p *peertest.Peer, s string) {
	t.Helper()
	deadline := time.Now().Add(2 * serveWait)
	for !strings.Contains(p.Log(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %q within %v", p.Name, s, 2*serveWait)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
