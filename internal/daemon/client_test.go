package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/clock"
	"github.com/meridian-ntp/meridian/internal/config"
	"github.com/meridian-ntp/meridian/internal/engine"
	"github.com/meridian-ntp/meridian/internal/ntp"
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
