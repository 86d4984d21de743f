package daemon

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/clock"
	"github.com/meridian-ntp/meridian/internal/config"
	"github.com/meridian-ntp/meridian/internal/drift"
	"github.com/meridian-ntp/meridian/internal/engine"
	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/query"
	"github.com/meridian-ntp/meridian/internal/server"
)

// TestClientSyncs runs the client against two of Meridian's own servers
// on loopback, with a virtual clock that starts 50 ms behind: the client
// must slew it to within 200 µs of the system clock (which both
// servers serve), select both servers and serve stratum 4 from them.
func TestClientSyncs(t *testing.T) {
	var srcs []clientSource
	for i := range 2 {
		d, _ := startDaemon(t, func(c *config.Config) { c.Server.LocalStratum = 3 })
		srcs = append(srcs, clientSource{Name: d.Addrs()[0].String(), Addr: d.Addrs()[0],
			Engine: engine.SourceConfig{RefID: ntp.RefID{127, 0, 0, byte(i + 1)}, IBurst: true}})
	}
	vc := clock.NewVirtual(nil, -50*time.Millisecond)
	var logs syncBuffer
	var served Served
	served.Store(server.Unsynchronized(-20))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runClient(ctx, clientConfig{Sources: srcs, Clock: vc, Served: &served, Origin: time.Now(),
			Log: slog.New(slog.NewTextHandler(&logs, nil))})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		off := time.Until(vc.Now())
		st := served.Load()
		if off.Abs() < 200*time.Microsecond && st.Stratum == 4 {
			t.Logf("virtual clock %v off after sync; serving stratum %d, reference ID %v", off, st.Stratum, st.RefID)
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("not synchronized within 20 s: virtual clock %v off, serving %+v\n%s", off, st, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r := vc.Record(); len(r.Steps) != 0 || r.FrequencySet == 0 || !r.Synced {
		t.Errorf("clock record %+v; want no step (50 ms is slewed), frequency set, synchronized", r)
	}
	if !strings.Contains(logs.String(), "clock synchronized") || strings.Count(logs.String(), "selected offset") < 2 {
		t.Errorf("log:\n%s\nwant a line saying the clock is synchronized, with both sources selected", logs.String())
	}
}

// TestClientBadSource: a source that cannot be dialled (a link-local
// address on an interface that does not exist) is an error at start.
func TestClientBadSource(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := runClient(ctx, clientConfig{Clock: clock.None{}, Origin: time.Now(), Log: slog.New(slog.DiscardHandler),
		Sources: []clientSource{{Name: "bad", Addr: netip.MustParseAddrPort("[fe80::1%nosuchif0]:123")}}})
	if err == nil || !strings.Contains(err.Error(), "source bad") {
		t.Errorf("runClient with an address on a missing interface: %v; want an error naming the source", err)
	}
}

// TestDaemonClient configures a daemon's client with two of Meridian's
// own servers and the clock backend "none": it must synchronize to them
// and serve stratum 4 with one of their addresses as reference ID, fall
// back to its local stratum before that, and write its drift file when it
// stops.
func TestDaemonClient(t *testing.T) {
	var servers []config.ServerSpec
	for range 2 {
		d, _ := startDaemon(t, func(c *config.Config) { c.Server.LocalStratum = 3 })
		a := d.Addrs()[0]
		servers = append(servers, config.ServerSpec{Host: a.Addr().String(), Port: a.Port(), IBurst: true})
	}
	driftPath := filepath.Join(t.TempDir(), "drift")
	d, logs := startDaemon(t, func(c *config.Config) {
		c.Server.LocalStratum = 12
		c.Client.Servers = servers
		c.Client.Clock = config.ClockNone
		c.Client.DriftFile = driftPath
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := query.One(context.Background(), d.Addrs()[0].String(), queryConfig())
		if r.Err == nil && r.Sample.Header.Stratum == 4 {
			if ref := r.Sample.Header.RefID; ref != (ntp.RefID{127, 0, 0, 1}) {
				t.Errorf("reference ID %v; want 127.0.0.1, the servers' address", ref)
			}
			break
		}
		if r.Err == nil && r.Sample.Header.Stratum != 12 {
			t.Fatalf("serving stratum %d; want 12 (the fallback) or 4", r.Sample.Header.Stratum)
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving stratum 4 within 20 s: %v %+v\n%s", r.Err, r.Sample.Header, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.Stop()
	if _, err := drift.Read(driftPath); err != nil {
		t.Errorf("drift file after stop: %v\n%s", err, logs)
	}
	if !strings.Contains(logs.String(), "clock synchronized") {
		t.Errorf("log:\n%s\nwant a line saying the clock is synchronized", logs)
	}
}

// TestClientWrongSourcePort: THREATS C7. A server that answers from
// another port than the one asked is never heard: the client's socket is
// connected, and the kernel drops the datagram. The same server answering
// from the right port is heard at once.
func TestClientWrongSourcePort(t *testing.T) {
	for _, other := range []bool{false, true} {
		asked, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		replier := asked
		if other {
			if replier, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
				t.Fatal(err)
			}
		}
		go func() { // exits when asked is closed below
			resp := server.NewResponder(server.Config{})
			buf, out := make([]byte, 2048), make([]byte, 48)
			for {
				n, from, err := asked.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				now := ntp.TimeFrom(time.Now())
				st := server.Local(3, -20, now)
				if m, _ := resp.Respond(0, st, from.Addr(), now, buf[:n], out); m > 0 {
					server.StampTransmit(out, ntp.TimeFrom(time.Now()))
					replier.WriteToUDPAddrPort(out[:m], from)
				}
			}
		}()
		var served Served
		served.Store(server.Unsynchronized(-20))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		addr := netip.MustParseAddrPort(asked.LocalAddr().String())
		go func() {
			done <- runClient(ctx, clientConfig{Clock: clock.None{}, Served: &served, Origin: time.Now(), Log: slog.New(slog.DiscardHandler),
				Sources: []clientSource{{Name: addr.String(), Addr: addr, Engine: engine.SourceConfig{IBurst: true}}}})
		}()
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) && served.Load().Stratum != 4 {
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		asked.Close()
		replier.Close()
		if synced := served.Load().Stratum == 4; synced == other {
			t.Errorf("replies from another port: %v; synchronized within 2 s: %v; want %v", other, synced, !other)
		}
	}
}
