package daemon

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/clock"
	"github.com/meridian-ntp/meridian/internal/config"
	"github.com/meridian-ntp/meridian/internal/discipline"
	"github.com/meridian-ntp/meridian/internal/drift"
	"github.com/meridian-ntp/meridian/internal/engine"
	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/query"
	"github.com/meridian-ntp/meridian/internal/server"
	"github.com/meridian-ntp/meridian/internal/source"
	"github.com/meridian-ntp/meridian/internal/steplog"
)

// TestClientSyncs runs the client against two of Meridian's own servers
// on loopback, with a virtual clock that starts 50 ms behind: the client
// must slew it to within 200 µs of the system clock (which both
// servers serve), select both servers and serve stratum 4 from them.
func TestClientSyncs(t *testing.T) {
	var srcs []engine.SourceConfig
	for i := range 2 {
		d, _ := startDaemon(t, func(c *config.Config) { c.Server.LocalStratum = 3 })
		srcs = append(srcs, engine.SourceConfig{Name: d.Addrs()[0].String(), Addr: d.Addrs()[0],
			RefID: ntp.RefID{127, 0, 0, byte(i + 1)}, Options: engine.SourceOptions{IBurst: true}})
	}
	vc := clock.NewVirtual(nil, -50*time.Millisecond)
	var logs syncBuffer
	var served Served
	served.Store(server.Unsynchronized(-20))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runClient(ctx, clientConfig{Engine: engine.Config{Sources: srcs}, Clock: vc, Served: &served, Origin: time.Now(),
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
	if r := vc.Record(); len(r.Steps) != 0 || r.FrequencySet == 0 || !r.Synced || r.EstErr <= 0 || r.EstErr >= r.MaxErr {
		t.Errorf("clock record %+v; want no step (50 ms is slewed), frequency set, synchronized, an estimated error below the maximum", r)
	}
	if !strings.Contains(logs.String(), "clock synchronized") || strings.Count(logs.String(), "selected offset") < 2 {
		t.Errorf("log:\n%s\nwant a line saying the clock is synchronized, with both sources selected", logs.String())
	}
}

// TestClientBadSource: a source that cannot be sent to (a link-local
// address on an interface that does not exist) is logged once, and the
// client keeps running.
func TestClientBadSource(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var logs syncBuffer
	err := runClient(ctx, clientConfig{Clock: clock.None{}, Origin: time.Now(), Log: slog.New(slog.NewTextHandler(&logs, nil)),
		Engine: engine.Config{Sources: []engine.SourceConfig{{Name: "bad", Addr: netip.MustParseAddrPort("[fe80::1%nosuchif0]:123"),
			Options: engine.SourceOptions{IBurst: true}}}}})
	if err != nil {
		t.Errorf("runClient: %v; want it to keep running until stopped", err)
	}
	if n := strings.Count(logs.String(), "cannot send to source"); n != 1 || !strings.Contains(logs.String(), "name=bad") {
		t.Errorf("log:\n%s\nwant one line saying source bad cannot be sent to", logs.String())
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
				Engine: engine.Config{Sources: []engine.SourceConfig{{Name: addr.String(), Addr: addr, Options: engine.SourceOptions{IBurst: true}}}}})
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

// testServer answers NTP requests on conn as a stratum 3 server until
// conn is closed, and sends the address of every request's sender to
// from, if it has room.
func testServer(conn *net.UDPConn, from chan<- netip.AddrPort) { testServerStratum(conn, from, 3) }

// testServerStratum is testServer at the given stratum.
func testServerStratum(conn *net.UDPConn, from chan<- netip.AddrPort, stratum uint8) {
	resp := server.NewResponder(server.Config{})
	buf, out := make([]byte, 2048), make([]byte, 48)
	for {
		n, addr, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		select {
		case from <- addr:
		default:
		}
		now := ntp.TimeFrom(time.Now())
		if m, _ := resp.Respond(0, server.Local(stratum, -20, now), addr.Addr(), now, buf[:n], out); m > 0 {
			server.StampTransmit(out, ntp.TimeFrom(time.Now()))
			// A failed reply is a lost reply.
			_, _ = conn.WriteToUDPAddrPort(out[:m], addr)
		}
	}
}

// listenUDP listens on ap, closing the socket when the test ends.
func listenUDP(t *testing.T, ap netip.AddrPort) *net.UDPConn {
	t.Helper()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestClientFreshPorts: THREATS C8. Every request leaves from a new
// socket: the server sees a different source port each time.
func TestClientFreshPorts(t *testing.T) {
	conn := listenUDP(t, netip.MustParseAddrPort("127.0.0.1:0"))
	from := make(chan netip.AddrPort, 16)
	go testServer(conn, from) // exits when conn is closed
	addr := netip.MustParseAddrPort(conn.LocalAddr().String())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runClient(ctx, clientConfig{Clock: clock.None{}, Origin: time.Now(), Log: slog.New(slog.DiscardHandler),
			Engine: engine.Config{Sources: []engine.SourceConfig{{Name: "s", Addr: addr, Options: engine.SourceOptions{IBurst: true}}}}})
	}()
	ports := map[uint16]bool{}
	timeout := time.After(15 * time.Second)
	for len(ports) < source.IBurstCount {
		select {
		case a := <-from:
			if ports[a.Port()] {
				t.Errorf("request %d from port %d again", len(ports)+1, a.Port())
			}
			ports[a.Port()] = true
		case <-timeout:
			t.Errorf("%d requests in 15 s; want the %d of the burst", len(ports), source.IBurstCount)
			cancel()
		}
		if ctx.Err() != nil {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// fakeResolver answers one name from a script: the i-th lookup gets
// answers[i] (the last one from then on).
type fakeResolver struct {
	mu      sync.Mutex // guards calls
	calls   int
	name    string
	answers []func() ([]netip.Addr, error)
}

func (r *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if host != r.name {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	a := r.answers[min(r.calls, len(r.answers)-1)]
	r.calls++
	return a()
}

// TestClientPool: THREATS F3. A pool's name fails to resolve, then
// resolves to nothing, then to 100 addresses: the client retries with
// back-off, takes maxsources (4) of them, and synchronizes to those that
// answer.
func TestClientPool(t *testing.T) {
	first := listenUDP(t, netip.MustParseAddrPort("127.0.0.2:0"))
	port := uint16(first.LocalAddr().(*net.UDPAddr).Port)
	go testServer(first, nil) // exits when the socket is closed
	for i := 3; i <= 5; i++ {
		go testServer(listenUDP(t, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(i)}), port)), nil)
	}
	var hundred []netip.Addr
	for i := range 100 {
		hundred = append(hundred, netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)}))
	}
	res := &fakeResolver{name: "pool.test", answers: []func() ([]netip.Addr, error){
		func() ([]netip.Addr, error) {
			return nil, &net.DNSError{Err: "server misbehaving", Name: "pool.test", IsTemporary: true}
		},
		func() ([]netip.Addr, error) { return nil, nil },
		func() ([]netip.Addr, error) { return hundred, nil },
	}}
	var logs syncBuffer
	var status atomic.Pointer[clientStatus]
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runClient(ctx, clientConfig{Clock: clock.None{}, Origin: time.Now(), Log: slog.New(slog.NewTextHandler(&logs, nil)),
			Resolver: res, Status: &status,
			Engine: engine.Config{ResolveRetry: 50 * time.Millisecond, Names: []engine.NameConfig{{Name: "pool.test", Host: "pool.test",
				Port: port, Pool: true, MaxSources: 4, Options: engine.SourceOptions{IBurst: true}}}}})
	}()
	deadline := time.Now().Add(20 * time.Second)
	var st *clientStatus
	for {
		st = status.Load()
		if st != nil && st.Status.Synchronized && selected(st) == 4 {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("not synchronized to 4 pool members within 20 s: %+v\n%s", st, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(st.Sources) != 4 {
		t.Errorf("%d sources: %+v; want 4 (maxsources)", len(st.Sources), st.Sources)
	}
	res.mu.Lock()
	calls := res.calls
	res.mu.Unlock()
	l := logs.String()
	if calls != 3 || strings.Count(l, "cannot resolve") != 2 || strings.Count(l, "source added") != 4 {
		t.Errorf("%d lookups; log:\n%s\nwant 3 lookups, 2 failures logged, 4 sources added", calls, l)
	}
}

// selected counts the selected sources of a status.
func selected(st *clientStatus) int {
	n := 0
	for _, s := range st.Sources {
		if s.State == "selected" {
			n++
		}
	}
	return n
}

// TestClientStepBudget: THREATS D5 with the daemon's files. A clock 300 s
// behind is stepped, and the step is on record in the step file before
// the clock moves; with a step of 800 s already on record from an hour
// ago, the same step would pass the budget of 1000 s: it is refused, and
// the log says why.
func TestClientStepBudget(t *testing.T) {
	d, _ := startDaemon(t, func(c *config.Config) { c.Server.LocalStratum = 3 })
	src := engine.SourceConfig{Name: "s", Addr: d.Addrs()[0], Options: engine.SourceOptions{IBurst: true}}
	for _, before := range [][]discipline.Step{nil, {{At: time.Now().Add(-time.Hour), Size: 800 * time.Second}}} {
		path := filepath.Join(t.TempDir(), "steps")
		if before != nil {
			if err := steplog.Write(path, before); err != nil {
				t.Fatal(err)
			}
		}
		var logs syncBuffer
		cfg := config.Default()
		cfg.Client.StepFile = path
		cc := newClientConfig(cfg, -20, slog.New(slog.NewTextHandler(&logs, nil)))
		cc.Engine.Sources = []engine.SourceConfig{src}
		vc := clock.NewVirtual(nil, -300*time.Second)
		cc.Clock, cc.Origin = vc, time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		if err := runClient(ctx, cc); err != nil {
			t.Fatal(err)
		}
		cancel()
		steps, err := steplog.Read(path)
		r := vc.Record()
		switch {
		case before == nil && (len(r.Steps) != 1 || err != nil || len(steps) != 1 || (steps[0].Size-300*time.Second).Abs() > time.Second):
			t.Errorf("no steps before: clock stepped %v; step file %+v, %v; want one step of 300 s, on record\n%s", r.Steps, steps, err, logs.String())
		case before != nil && (len(r.Steps) != 0 || len(steps) != 1 || !strings.Contains(logs.String(), "step budget")):
			t.Errorf("800 s stepped an hour ago: clock stepped %v; step file %+v, %v; want no step, the file as it was, the log saying why\n%s",
				r.Steps, steps, err, logs.String())
		}
	}
}

// TestClientPortsUnpredictable: THREATS C9 for source ports. The sockets
// the client sends from take ports the kernel draws at random: over 2000
// requests, few repeat, hardly any follows the one before, and they
// spread over most of the ephemeral range.
func TestClientPortsUnpredictable(t *testing.T) {
	sink := listenUDP(t, netip.MustParseAddrPort("127.0.0.1:0"))
	to := netip.MustParseAddrPort(sink.LocalAddr().String())
	l := &clientLoop{c: clientConfig{Log: slog.New(slog.DiscardHandler)}}
	const n = 2000
	ports := make([]int, 0, n)
	for range n {
		conn, err := l.dial(to, make([]byte, 48), nil)
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, conn.LocalAddr().(*net.UDPAddr).Port)
		conn.Close()
	}
	seen := map[int]bool{}
	near, lo, hi := 0, ports[0], ports[0]
	for i, p := range ports {
		seen[p] = true
		lo, hi = min(lo, p), max(hi, p)
		if i > 0 && max(p-ports[i-1], ports[i-1]-p) <= 2 {
			near++
		}
	}
	t.Logf("%d requests: %d distinct ports in %d–%d, %d within 2 of the one before", n, len(seen), lo, hi, near)
	if len(seen) < n*9/10 || near > n/100 || hi-lo < 10000 {
		t.Errorf("%d distinct ports of %d, %d within 2 of the one before, range %d–%d; want random ports", len(seen), n, near, lo, hi)
	}
}

// TestLookupLiteral: an IP literal is its own answer, zone included; a
// name goes to the resolver.
func TestLookupLiteral(t *testing.T) {
	res := &fakeResolver{name: "ntp.test", answers: []func() ([]netip.Addr, error){
		func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("192.0.2.5")}, nil },
	}}
	for _, tt := range []struct{ host, want string }{
		{"fe80::1%eth0", "fe80::1%eth0"}, {"192.0.2.1", "192.0.2.1"}, {"ntp.test", "192.0.2.5"},
	} {
		a, err := lookup(context.Background(), res, tt.host)
		if err != nil || len(a) != 1 || a[0].String() != tt.want {
			t.Errorf("lookup(%q) = %v, %v; want %s", tt.host, a, err, tt.want)
		}
	}
	if res.calls != 1 {
		t.Errorf("%d calls of the resolver; want 1 (for the name only)", res.calls)
	}
}
