package daemon

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/config"
	"github.com/meridian-ntp/meridian/internal/drift"
	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/query"
)

// TestRestartUnderLoad: THREATS F5. A daemon (server and client) is
// stopped and started again on the same address, control socket and
// files while clients keep asking: the second start binds again,
// replaces the first's control socket, reads and validates the drift
// file the first wrote at stop, serves again, and takes none of the
// first's served state (it answers from its fallback until its own client
// has synchronized).
func TestRestartUnderLoad(t *testing.T) {
	// The first daemon's upstream is at stratum 3, the second's at 5, and
	// their fallbacks at 12 and 11: an answer says whose state it is.
	var ups []netip.AddrPort
	for _, stratum := range []uint8{3, 5} {
		up := listenUDP(t, netip.MustParseAddrPort("127.0.0.1:0"))
		go testServerStratum(up, nil, stratum) // exits when up is closed
		ups = append(ups, netip.MustParseAddrPort(up.LocalAddr().String()))
	}
	probe := listenUDP(t, netip.MustParseAddrPort("127.0.0.1:0"))
	addr := netip.MustParseAddrPort(probe.LocalAddr().String())
	probe.Close()
	dir := t.TempDir()
	run := 0
	edit := func(c *config.Config) {
		upAddr := ups[run]
		c.Server.Listen = []netip.AddrPort{addr}
		c.Server.LocalStratum = 12 - run
		c.Server.RateLimit.Enabled = false // the load and the test's queries come from one address
		c.Client.Servers = []config.ServerSpec{{Host: upAddr.Addr().String(), Port: upAddr.Port(), IBurst: true}}
		c.Client.Clock = config.ClockNone
		c.Client.DriftFile = filepath.Join(dir, "drift")
		c.Client.StepFile = filepath.Join(dir, "steps")
		c.Control.Socket = filepath.Join(dir, "control.sock")
	}

	// The load: requests at about 2000 a second from one socket, until
	// the test says stop (within 60 s at most), counting the replies.
	var replies atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // exits on stop, or after 60 s
		defer wg.Done()
		load(t, addr, stop, &replies)
	}()
	defer func() { close(stop); wg.Wait() }()

	waitStratum := func(want uint8) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			r := query.One(context.Background(), addr.String(), queryConfig())
			if r.Err == nil && r.Sample.Header.Stratum == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("not serving stratum %d within 20 s: %v %+v", want, r.Err, r.Sample.Header)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	d1, logs1 := startDaemon(t, edit)
	waitStratum(4)
	d1.Stop()
	if _, err := drift.Read(filepath.Join(dir, "drift")); err != nil {
		t.Fatalf("drift file after the first stop: %v\n%s", err, logs1)
	}
	before := replies.Load()
	run = 1
	d2, logs2 := startDaemon(t, edit)
	// The first answer comes from the new daemon's fallback (11), or
	// from its own synchronization (6): never from the old one's state.
	if r := query.One(context.Background(), addr.String(), queryConfig()); r.Err != nil ||
		r.Sample.Header.Stratum != 11 && r.Sample.Header.Stratum != 6 {
		t.Errorf("first answer after the restart: %v %+v; want stratum 11 or 6", r.Err, r.Sample.Header)
	}
	waitStratum(6)
	time.Sleep(200 * time.Millisecond)
	if replies.Load() <= before {
		t.Errorf("no reply to the load after the restart (%d before)", before)
	}
	l := logs2.String()
	if !strings.Contains(l, "drift file read") || !strings.Contains(l, "control socket") {
		t.Errorf("second daemon's log:\n%s\nwant the drift file read and the control socket up", l)
	}
	d2.Stop()
}

// load sends requests to addr about every 500 µs until stop is closed or
// 60 s have passed, and counts the replies.
func load(t *testing.T, addr netip.AddrPort, stop <-chan struct{}, replies *atomic.Int64) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Error(err)
		return
	}
	defer conn.Close()
	go func() { // exits when conn is closed
		buf := make([]byte, 128)
		for {
			if _, err := conn.Read(buf); err != nil && !isTimeout(err) {
				return
			}
			replies.Add(1)
		}
	}()
	req := make([]byte, ntp.HeaderLen)
	req[0] = 0x23 // version 4, client
	end := time.After(60 * time.Second)
	tick := time.NewTicker(500 * time.Microsecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-end:
			return
		case <-tick.C:
			// A refused send (nothing listening during the restart) is
			// part of the test.
			_, _ = conn.WriteToUDPAddrPort(req, addr)
		}
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
