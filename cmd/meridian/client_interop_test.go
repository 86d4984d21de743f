package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/control"
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
var sourceState = regexp.MustCompile(`"?(127\.0\.0\.1:\d+)"?="(selected|falseticker) offset ([+-]\d+\.\d+) s ± (\d+\.\d+)"`)

// TestClientChronyServers: Meridian's client, with the clock backend
// "none", takes time from three chronyd servers on loopback and a fourth
// server an hour ahead: it must serve their stratum + 1, select the three
// chronyd with offsets under 1 ms (all share this machine's clock) and mark
// the fourth a falseticker.
func TestClientChronyServers(t *testing.T) {
	t.Parallel()
	var servers []string
	for range 3 {
		p := peertest.StartChrony(t, peertest.ChronyConfig{Stratum: 5})
		servers = append(servers, fmt.Sprintf("%q", p.Addr.String()+" iburst"))
	}
	fake := startAheadServer(t, time.Hour)
	servers = append(servers, fmt.Sprintf("%q", fake.String()+" iburst"))
	addr := loopbackAddr(t)
	sock := filepath.Join(t.TempDir(), "control.sock")
	conf := fmt.Sprintf(`[server]
listen = ["%v"]

[client]
servers = [%s]
clock = "none"
min-sources = 3

[control]
socket = %q
`, addr, strings.Join(servers, ", "), sock)
	m, _ := startMeridian(t, conf, addr, false, 6)
	// The selection settles once every source has answered, and the
	// offsets once iburst has given each a few samples: ask the control
	// socket until they have.
	deadline := time.Now().Add(serveWait)
	var srcs []control.Source
	for {
		code, out, _ := runArgs(t, "sources", "--socket", sock, "--json")
		srcs = nil
		if code == exitOK && json.Unmarshal([]byte(out), &srcs) == nil && settled(srcs, fake) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sources did not settle within %v: %+v\n%s", serveWait, srcs, m.Log())
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, s := range srcs {
		t.Logf("%s: %s, offset %+.6f s ± %.6f", s.Name, s.State, s.Offset, s.OffsetSD)
	}
	marked := false
	for _, f := range sourceState.FindAllStringSubmatch(m.Log(), -1) {
		off, _ := strconv.ParseFloat(f[3], 64) // the pattern admits only numbers
		marked = marked || f[2] == "falseticker" && math.Abs(off-3600) < 0.01
	}
	if !marked {
		t.Errorf("the log has no line with the sources' states, or none marking the falseticker:\n%s", m.Log())
	}
	// The same, as meridian status and meridian sources show it.
	code, out, errs := runArgs(t, "status", "--socket", sock)
	t.Logf("meridian status:\n%s", out)
	if code != exitOK || !regexp.MustCompile(`(?m)^synchronized +yes$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^stratum +6$`).MatchString(out) {
		t.Errorf("meridian status = %d\n%s%s\nwant synchronized, stratum 6", code, out, errs)
	}
	code, out, errs = runArgs(t, "sources", "--socket", sock)
	t.Logf("meridian sources:\n%s", out)
	if code != exitOK || strings.Count(out, "\nselected ") != 3 || strings.Count(out, "\nfalseticker ") != 1 {
		t.Errorf("meridian sources = %d\n%s%s\nwant three selected, one falseticker", code, out, errs)
	}
}

// settled reports whether the sources are: the three chronyd selected
// with offsets under 1 ms (they share this machine's clock), the server at
// fake a falseticker, every source past its iburst (four samples: the
// first few cannot pin the frequency down, and the offset is extrapolated
// with it).
func settled(srcs []control.Source, fake netip.AddrPort) bool {
	if len(srcs) != 4 {
		return false
	}
	for _, s := range srcs {
		want := "selected"
		if s.Address == fake.String() {
			want = "falseticker"
		} else if math.Abs(s.Offset) >= 1e-3 {
			return false
		}
		if s.State != want || s.Reach&0b111 != 0b111 {
			return false
		}
	}
	return true
}
