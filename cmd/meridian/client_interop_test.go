package main

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/mono"
	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/peertest"
	"github.com/meridian-ntp/meridian/internal/server"
)

// startAheadServer starts a small NTP server on 127.0.0.1 whose clock is
// ahead of this machine's by ahead: Meridian's own responder, serving at
// stratum 5. It stops when t ends.
func startAheadServer(t *testing.T, ahead time.Duration) netip.AddrPort {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	resp := server.NewResponder(server.Config{})
	go func() { // exits when conn is closed at the end of the test
		buf, out := make([]byte, 2048), make([]byte, 48)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			now := ntp.TimeFrom(time.Now().Add(ahead))
			st := &server.State{Leap: ntp.LeapNone, Stratum: 5, Precision: -20, RefID: ntp.RefID{'F', 'A', 'K', 'E'}, Reference: now}
			if m, _ := resp.Respond(mono.Instant(0), st, from.Addr(), now, buf[:n], out); m > 0 {
				server.StampTransmit(out, ntp.TimeFrom(time.Now().Add(ahead)))
				conn.WriteToUDPAddrPort(out[:m], from)
			}
		}
	}()
	return netip.MustParseAddrPort(conn.LocalAddr().String())
}

// sourceState finds, in the client's log line for a change of selection, each
// source with "selected" or "falseticker" and its offset.
var sourceState = regexp.MustCompile(`"?(127\.0\.0\.1:\d+) iburst"?="(selected|falseticker) offset ([+-]\d+\.\d+) s ± (\d+\.\d+)"`)

// TestClientChronyServers: Meridian's client, with the clock backend
// "none", takes time from three chronyd servers on loopback and a fourth
// server an hour ahead: it must serve their stratum + 1, select the three
// chronyd with offsets under 1 ms (all share this machine's clock) and mark
// the fourth a falseticker.
func TestClientChronyServers(t *testing.T) {
	t.Parallel()
	var servers []string
	var chrony []netip.AddrPort
	for range 3 {
		p := peertest.StartChrony(t, peertest.ChronyConfig{Stratum: 5})
		chrony = append(chrony, p.Addr)
		servers = append(servers, fmt.Sprintf("%q", p.Addr.String()+" iburst"))
	}
	fake := startAheadServer(t, time.Hour)
	servers = append(servers, fmt.Sprintf("%q", fake.String()+" iburst"))
	addr := loopbackAddr(t)
	conf := fmt.Sprintf(`[server]
listen = ["%v"]

[client]
servers = [%s]
clock = "none"
min-sources = 3
`, addr, strings.Join(servers, ", "))
	m, _ := startMeridian(t, conf, addr, false, 6)
	// The selection settles once every source has answered; the log has
	// a line for each change of it.
	deadline := time.Now().Add(serveWait)
	var states map[string][2]string
	for {
		states = map[string][2]string{}
		lines := strings.Split(m.Log(), "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			if strings.Contains(lines[i], "clock synchronized") {
				for _, f := range sourceState.FindAllStringSubmatch(lines[i], -1) {
					states[f[1]] = [2]string{f[2], f[3]}
				}
				break
			}
		}
		if len(states) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line with all four sources within %v:\n%s", serveWait, m.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, a := range chrony {
		s := states[a.String()]
		off, _ := strconv.ParseFloat(s[1], 64) // the pattern admits only numbers
		t.Logf("chronyd %v: %s, offset %+.6f s", a, s[0], off)
		if s[0] != "selected" || math.Abs(off) > 1e-3 {
			t.Errorf("chronyd %v: %s, offset %v s; want selected, under 1 ms", a, s[0], off)
		}
	}
	if s := states[fake.String()]; s[0] != "falseticker" {
		t.Errorf("the server an hour ahead: %v; want a falseticker", s)
	} else {
		t.Logf("server an hour ahead %v: %s, offset %s s", fake, s[0], s[1])
	}
}
