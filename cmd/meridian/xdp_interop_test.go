package main

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/peertest"
)

// TestServeXDP serves with the XDP fast path on the loopback interface of
// a network namespace, in one process and split (the parent loads and
// attaches the program, the server publishes through its maps): Meridian's
// query and NTPsec's ntpdig, over IPv4 and IPv6, must get valid answers,
// and the counts the daemon logs when it stops must show that the program,
// not the sockets, answered every one. (The queries that wait for the
// daemon to serve may reach the sockets: they come while the first state
// is being published, or queue in a socket before it.)
func TestServeXDP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, privsep string }{
		{"single", "[privsep]\nenabled = false\n"},
		{"split", privsepTable()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testServeXDP(t, tc.privsep)
		})
	}
}

func testServeXDP(t *testing.T, privsep string) {
	split := !strings.Contains(privsep, "enabled = false")
	const stratum = 4
	addr := netip.MustParseAddrPort("127.0.0.1:123")
	conf := fmt.Sprintf(`[server]
listen = ["127.0.0.1:123", "[::1]:123"]
local-stratum = %d

[server.xdp]
interfaces = ["lo"]
mode = "generic"

%s`, stratum, privsep)
	m, bin, waited := startMeridianCounted(t, conf, addr, true, stratum)
	sent := 0
	for _, a := range []string{"127.0.0.1:123", "[::1]:123"} {
		for range 3 {
			rs, raw := runQueryJSON(t, m, bin, "--timeout", "2s", a)
			sent++
			r := rs[0]
			if !r.OK || r.Stratum != stratum || r.Offset == nil || r.Delay == nil || math.Abs(*r.Offset) > *r.Delay/2+offsetSlack {
				t.Errorf("query %s: %s; want a valid reply at stratum %d, offset within half the delay", a, raw, stratum)
			}
		}
	}
	ntpdig := peertest.Tool(t, "ntpdig")
	for _, a := range []string{"127.0.0.1", "::1"} {
		ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
		out, err := m.ClientCommand(ctx, ntpdig, a).CombinedOutput()
		cancel()
		sent++
		line := strings.TrimSpace(string(out))
		t.Logf("ntpdig %s: %s", a, line)
		f := ntpdigLine.FindStringSubmatch(line)
		if err != nil || f == nil || f[4] != a || f[5] != strconv.Itoa(stratum) || f[6] != "no-leap" {
			t.Errorf("ntpdig %s: %v: %q; want a line about %s at stratum %d, no-leap", a, err, out, a, stratum)
		}
	}
	if split {
		waited += xdpServerRestart(t, m, bin, addr, stratum)
	}
	m.Stop(t)
	log := m.Log()
	stats := regexp.MustCompile(`msg=stopped .*\bxdp=(\d+) answered=(\d+)\b`).FindStringSubmatch(log)
	if stats == nil {
		t.Fatalf("no counts with xdp= and answered= in the log:\n%s", log)
	}
	xdp, _ := strconv.Atoi(stats[1]) // the pattern admits only numbers
	answered, _ := strconv.Atoi(stats[2])
	// A restarted server counts what its sockets answered since it
	// started, and the program's answers since it was loaded.
	t.Logf("the daemon answered %d requests, %d of them in the XDP program; %d were sent before it served", answered, xdp, waited)
	if xdp < sent || answered-xdp > waited {
		t.Errorf("XDP program answered %d, all answered %d; want the %d sent once it served all in the program (only the %d sent before may have reached the sockets)",
			xdp, answered, sent, waited)
	}
}

// xdpServerRestart kills the server of split daemon m (XDP on) with
// SIGKILL: once the keeper has turned the fast path off, a query gets no
// answer (unless the next server is up already); then the next server
// serves. It returns the number of queries it sent (which the program or
// the sockets may have answered).
func xdpServerRestart(t *testing.T, m *peertest.Peer, bin string, addr netip.AddrPort, stratum uint8) int {
	t.Helper()
	old := waitChildren(t, m)["server"]
	killChild(t, old)
	deadline := time.Now().Add(serveWait)
	for !strings.Contains(m.Log(), "XDP fast path off") {
		if time.Now().After(deadline) {
			t.Fatalf("the fast path was not turned off within %v of the server's death", serveWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rs, raw := runQueryJSON(t, m, bin, "--timeout", "300ms", addr.String())
	if rs[0].OK && childPids(t, m.Log())["server"] == old {
		t.Errorf("with the server dead and the fast path off, a query got %s; want no answer", raw)
	}
	waited := 1 + waitServing(t, m, bin, addr, stratum, func() bool { return childPids(t, m.Log())["server"] != old })
	t.Logf("server %d killed, server %d serves; %d queries sent meanwhile", old, childPids(t, m.Log())["server"], waited)
	return waited
}
