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

	"github.com/meridian-ntp/meridian/internal/peertest"
)

// TestServeXDP serves with the XDP fast path on the loopback interface of
// a network namespace: Meridian's query and NTPsec's ntpdig, over IPv4 and
// IPv6, must get valid answers, and the counts the daemon logs when it
// stops must show that the program, not the sockets, answered every one.
func TestServeXDP(t *testing.T) {
	t.Parallel()
	const stratum = 4
	addr := netip.MustParseAddrPort("127.0.0.1:123")
	conf := fmt.Sprintf(`[server]
listen = ["127.0.0.1:123", "[::1]:123"]
local-stratum = %d

[server.xdp]
interfaces = ["lo"]
mode = "generic"

[privsep]
enabled = false
`, stratum)
	m, bin := startMeridian(t, conf, addr, true, stratum)
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
	m.Stop(t)
	log := m.Log()
	stats := regexp.MustCompile(`msg=stopped .*\bxdp=(\d+) answered=(\d+)\b`).FindStringSubmatch(log)
	if stats == nil {
		t.Fatalf("no counts with xdp= and answered= in the log:\n%s", log)
	}
	xdp, _ := strconv.Atoi(stats[1]) // the pattern admits only numbers
	answered, _ := strconv.Atoi(stats[2])
	t.Logf("the daemon answered %d requests, %d of them in the XDP program", answered, xdp)
	if xdp < sent || xdp != answered {
		t.Errorf("XDP program answered %d, all answered %d; want all of them in the program, at least the %d sent here", xdp, answered, sent)
	}
}
