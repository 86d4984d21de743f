package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/config"
	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/query"
	"github.com/meridian-ntp/meridian/internal/source"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDaemon runs a daemon on loopback ports chosen by the kernel until
// the test ends, and returns it with its log.
func startDaemon(t *testing.T, edit func(*config.Config)) (*Daemon, *syncBuffer) {
	t.Helper()
	cfg := config.Default()
	cfg.Server.Listen = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}
	cfg.Server.Workers = 2
	cfg.Server.LocalStratum = 10
	if edit != nil {
		edit(cfg)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: cfg.Log.Level}))
	d, err := Start(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(d.Stop)
	return d, logs
}

func queryConfig() query.Config {
	return query.Config{Timeout: 2 * time.Second}
}

func TestServesLocalStratum(t *testing.T) {
	d, logs := startDaemon(t, func(c *config.Config) {
		c.Server.Listen = append(c.Server.Listen, netip.MustParseAddrPort("[::1]:0"))
	})
	for _, addr := range d.Addrs() {
		r := query.One(context.Background(), addr.String(), queryConfig())
		if r.Err != nil {
			t.Fatalf("query %v: %v\n%s", addr, r.Err, logs)
		}
		h := r.Sample.Header
		if h.Stratum != 10 || h.RefID != (ntp.RefID{127, 127, 1, 1}) || h.Leap != ntp.LeapNone ||
			r.Sample.Offset.Abs() > 10*time.Millisecond {
			t.Errorf("query %v: %+v offset %v", addr, h, r.Sample.Offset)
		}
	}
	if !strings.Contains(logs.String(), "serving NTP") {
		t.Errorf("no startup log:\n%s", logs)
	}
}

// TestEnoughProcs checks that the workers, which block in the kernel while
// holding a P, leave at least one P for everything else.
func TestEnoughProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	d, _ := startDaemon(t, func(c *config.Config) { c.Server.Workers = 3 })
	if got, want := runtime.GOMAXPROCS(0), len(d.Addrs())+1; len(d.Addrs()) != 3 || got < want {
		t.Errorf("GOMAXPROCS %d with %d workers; want at least %d", got, len(d.Addrs()), want)
	}
}

func TestServesUnsynchronized(t *testing.T) {
	d, logs := startDaemon(t, func(c *config.Config) { c.Server.LocalStratum = 0 })
	r := query.One(context.Background(), d.Addrs()[0].String(), queryConfig())
	if !errors.Is(r.Err, source.ErrUnsynchronized) {
		t.Errorf("query = %v; want unsynchronized", r.Err)
	}
	if !strings.Contains(logs.String(), "no time source configured") {
		t.Errorf("no warning about serving unsynchronized:\n%s", logs)
	}
}

// exchangeRaw sends b from a fresh socket and returns the reply, or nil
// after wait.
func exchangeRaw(t *testing.T, addr netip.AddrPort, b []byte, wait time.Duration) []byte {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 70000)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

func rawRequest(version uint8, mode ntp.Mode, extra ...byte) []byte {
	h := ntp.Header{Version: version, Mode: mode, Transmit: 0x0102030405060708}
	b := make([]byte, ntp.HeaderLen)
	if _, err := h.Encode(b); err != nil {
		panic(err)
	}
	return append(b, extra...)
}

// TestAmplificationOverSockets covers THREATS B1, A3 and A7 end to end:
// for every request shape, over real sockets, the bytes that come back
// never exceed the bytes sent, modes 6 and 7 get nothing, and datagrams
// larger than the receive buffer are dropped.
func TestAmplificationOverSockets(t *testing.T) {
	d, _ := startDaemon(t, func(c *config.Config) { c.Server.RateLimit.Enabled = false })
	addr := d.Addrs()[0]
	ef := make([]byte, 104)
	if _, err := ntp.PutExt(ef, 0x0204, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 1200)
	if _, err := ntp.PutExt(big, 0xABCD, make([]byte, 1196)); err != nil {
		t.Fatal(err)
	}
	huge := make([]byte, 4096)
	if _, err := ntp.PutExt(huge, 0xABCD, make([]byte, 4092)); err != nil {
		t.Fatal(err)
	}
	shapes := []struct {
		name   string
		req    []byte
		answer bool
	}{
		{"v4", rawRequest(4, ntp.ModeClient), true},
		{"v3", rawRequest(3, ntp.ModeClient), true},
		{"v1", rawRequest(1, ntp.ModeClient), true},
		{"extension field", rawRequest(4, ntp.ModeClient, ef...), true},
		{"1200-byte field", rawRequest(4, ntp.ModeClient, big...), true},
		{"MAC", rawRequest(4, ntp.ModeClient, make([]byte, 20)...), true},
		{"mode 6 read variables", rawRequest(2, ntp.ModeControl, 0, 1, 0, 0, 0, 0, 0, 0), false},
		{"mode 7 monlist", append(rawRequest(2, ntp.ModePrivate), make([]byte, 144)...), false},
		{"mode 1", rawRequest(4, ntp.ModeSymActive), false},
		{"version 5", rawRequest(5, ntp.ModeClient), false},
		{"short", rawRequest(4, ntp.ModeClient)[:20], false},
		{"malformed field", rawRequest(4, ntp.ModeClient, 0, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), false},
		{"8 KiB of zeros", rawRequest(4, ntp.ModeClient, make([]byte, 8192)...), false},
		// Larger than the receive buffer: truncated by the kernel, dropped.
		{"4 KiB field", rawRequest(4, ntp.ModeClient, huge...), false},
		{"63 KiB of zeros", rawRequest(4, ntp.ModeClient, make([]byte, 63*1024)...), false},
	}
	for _, s := range shapes {
		wait := 2 * time.Second
		if !s.answer {
			wait = 300 * time.Millisecond
		}
		resp := exchangeRaw(t, addr, s.req, wait)
		if len(resp) > len(s.req) {
			t.Errorf("%s: %d bytes out for %d in", s.name, len(resp), len(s.req))
		}
		if (resp != nil) != s.answer {
			t.Errorf("%s: answered = %v; want %v", s.name, resp != nil, s.answer)
		}
		t.Logf("%-22s in %5d out %3d", s.name, len(s.req), len(resp))
	}
	st := d.Stats()
	if st.Modes[6] != 1 || st.Modes[7] != 1 || st.Verdicts["mode"] != 2+1 || st.Truncated != 3 {
		t.Errorf("counters: modes %v, verdicts %v, truncated %d", st.Modes, st.Verdicts, st.Truncated)
	}
}
