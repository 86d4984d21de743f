package query

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/source"
)

// testConfig is a query configuration for loopback tests: one request, no
// DNS, and a timeout that a reply on loopback never comes near, however
// busy the machine. Tests that expect a timeout set a shorter one.
func testConfig(t *testing.T) Config {
	return Config{Count: 1, Timeout: 10 * time.Second, Rand: rand.Reader, Resolver: noDNS(t)}
}

// plausible bounds the offset and delay measured over loopback against a
// server that uses the local clock. Both are microseconds on an idle
// machine; the bound leaves room for a busy one, where a goroutine may
// wait long to run, yet is far below what a wrong sign, a wrong timestamp
// or a misread era would produce.
const plausible = 500 * time.Millisecond

// checkPlausible checks that r holds a sample from a server whose clock
// is the local clock, over loopback.
func checkPlausible(t *testing.T, r Result) {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("One(%s) error = %v; want nil", r.Server, r.Err)
	}
	if off := r.Sample.Offset; off <= -plausible || off >= plausible {
		t.Errorf("One(%s) offset = %v; want |offset| < %v", r.Server, off, plausible)
	}
	if d := r.Sample.Delay; d < 0 || d >= plausible {
		t.Errorf("One(%s) delay = %v; want 0 <= delay < %v", r.Server, d, plausible)
	}
}

func TestOneGood(t *testing.T) {
	for _, laddr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(laddr, func(t *testing.T) {
			if laddr[0] == '[' {
				if c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err != nil {
					t.Skipf("no IPv6 loopback: %v", err)
				} else {
					c.Close()
				}
			}
			srv := startEvilOn(t, laddr, always(good(0, nil)))
			r := One(context.Background(), srv.addr.String(), testConfig(t))
			checkPlausible(t, r)
			if r.Server != srv.addr.String() || r.Addr != srv.addr {
				t.Errorf("One(%s) server, addr = %q, %v; want %q, %v", srv.addr, r.Server, r.Addr, srv.addr, srv.addr)
			}
			if r.Sent != 1 || r.Valid != 1 || r.Discarded != 0 {
				t.Errorf("One(%s) sent, valid, discarded = %d, %d, %d; want 1, 1, 0", srv.addr, r.Sent, r.Valid, r.Discarded)
			}
			if want := srv.sent(0, 0); want == nil || !bytes.Equal(r.Packet, want) {
				t.Errorf("One(%s) packet = %x; want the reply sent, %x", srv.addr, r.Packet, want)
			}
			var h ntp.Header
			if err := h.Decode(r.Packet); err != nil || r.Sample.Header != h {
				t.Errorf("One(%s) sample header = %+v; want the packet's, %+v (%v)", srv.addr, r.Sample.Header, h, err)
			}
			if reqs := srv.requests(); len(reqs) != 1 {
				t.Errorf("server got %d requests; want 1", len(reqs))
			}
		})
	}
}

// TestOneZeroConfig queries with the zero Config, which the documentation
// says is usable.
func TestOneZeroConfig(t *testing.T) {
	srv := startEvil(t, always(good(0, nil)))
	r := One(context.Background(), srv.addr.String(), Config{})
	checkPlausible(t, r)
	if reqs := srv.requests(); len(reqs) != 1 || xmtOf(reqs[0].data) == 0 {
		t.Errorf("server got %d requests (%v); want 1 with a transmit timestamp", len(reqs), reqs)
	}
}

// TestOneSkewedClock replaces the local clock with one an hour slow: the
// server is then an hour ahead.
func TestOneSkewedClock(t *testing.T) {
	srv := startEvil(t, always(good(0, nil)))
	cfg := testConfig(t)
	cfg.Now = func() time.Time { return time.Now().Add(-time.Hour) }
	r := One(context.Background(), srv.addr.String(), cfg)
	if r.Err != nil {
		t.Fatalf("One(%s) with a slow clock: error = %v; want nil", srv.addr, r.Err)
	}
	if off := r.Sample.Offset - time.Hour; off <= -plausible || off >= plausible {
		t.Errorf("One(%s) with a clock 1h slow: offset = %v; want 1h ± %v", srv.addr, r.Sample.Offset, plausible)
	}
	if d := r.Sample.Delay; d < 0 || d >= plausible {
		t.Errorf("One(%s) with a clock 1h slow: delay = %v; want 0 <= delay < %v", srv.addr, d, plausible)
	}
}

// TestOneBogusThenGood sends bogus replies before the genuine one: they
// are counted and ignored, and the genuine reply is used (THREATS C1, C2,
// C4, A1, A3).
func TestOneBogusThenGood(t *testing.T) {
	tests := []struct {
		name  string
		bogus []reply
	}{
		{"wrong origin", []reply{good(0, wrongOrigin)}},
		{"zero origin", []reply{good(0, zeroOrigin)}},
		{"spoofed DENY", []reply{good(0, spoofedKiss(ntp.KissDENY))}},
		{"spoofed RATE", []reply{good(0, spoofedKiss(ntp.KissRATE))}},
		{"spoofed RSTR", []reply{good(0, spoofedKiss(ntp.KissRSTR))}},
		{"client mode", []reply{good(0, mode(ntp.ModeClient))}},
		{"broadcast mode", []reply{good(0, mode(ntp.ModeBroadcast))}},
		{"symmetric active mode", []reply{good(0, mode(ntp.ModeSymActive))}},
		{"control mode", []reply{good(0, mode(ntp.ModeControl))}},
		{"request echoed", []reply{echo}},
		{"47 bytes", []reply{truncated(47)}},
		{"1 byte", []reply{truncated(1)}},
		{"empty datagram", []reply{truncated(0)}},
		{"trailing garbage", []reply{raw(func(req []byte, rx, tx time.Time) []byte {
			return append(encode(goodHeader(req, rx, tx)), 0xEE)
		})}},
		{"oversized, truncated by the read buffer (A7)", []reply{raw(func(req []byte, rx, tx time.Time) []byte {
			// The first 2048 bytes alone would be a valid reply.
			b := append(encode(goodHeader(req, rx, tx)), make([]byte, 2000+1000)...)
			if _, err := ntp.PutExt(b[ntp.HeaderLen:], 0x7777, make([]byte, 2000-ntp.ExtHeaderLen)); err != nil {
				panic(err)
			}
			return b
		})}},
		{"three kinds", []reply{good(0, wrongOrigin), good(0, spoofedKiss(ntp.KissDENY)), good(0, mode(ntp.ModeClient))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startEvil(t, always(append(append([]reply(nil), tt.bogus...), good(0, nil))...))
			r := One(context.Background(), srv.addr.String(), testConfig(t))
			checkPlausible(t, r)
			if r.Sent != 1 || r.Valid != 1 || r.Discarded != len(tt.bogus) {
				t.Errorf("One(%s) sent, valid, discarded = %d, %d, %d; want 1, 1, %d",
					srv.addr, r.Sent, r.Valid, r.Discarded, len(tt.bogus))
			}
			if want := srv.sent(0, len(tt.bogus)); want == nil || !bytes.Equal(r.Packet, want) {
				t.Errorf("One(%s) packet = %x; want the genuine reply, %x", srv.addr, r.Packet, want)
			}
		})
	}
}

// TestOneOnlyBogus gets no genuine reply: the query times out, whatever
// arrived meanwhile. The bogus replies arrive within microseconds, so the
// timeout leaves ample time to read and count them on a busy machine.
func TestOneOnlyBogus(t *testing.T) {
	const timeout = 2 * time.Second
	tests := []struct {
		name      string
		count     int
		replies   []reply
		discarded int
	}{
		{"silence", 1, nil, 0},
		{"wrong origins", 1, []reply{good(0, wrongOrigin), good(0, wrongOrigin)}, 2},
		{"spoofed DENY", 1, []reply{good(0, spoofedKiss(ntp.KissDENY))}, 1},
		{"client mode", 1, []reply{good(0, mode(ntp.ModeClient))}, 1},
		{"47 bytes", 1, []reply{truncated(47)}, 1},
		{"mixed", 1, []reply{echo, truncated(47), good(0, zeroOrigin), good(0, spoofedKiss(ntp.KissRATE))}, 4},
		// A timeout does not stop the next request.
		{"count 2", 2, []reply{good(0, wrongOrigin), good(0, spoofedKiss(ntp.KissDENY))}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // the cases mostly wait for their timeouts
			srv := startEvil(t, always(tt.replies...))
			cfg := testConfig(t)
			cfg.Timeout, cfg.Count, cfg.Interval = timeout, tt.count, 10*time.Millisecond
			start := time.Now()
			r := One(context.Background(), srv.addr.String(), cfg)
			elapsed := time.Since(start)
			if !errors.Is(r.Err, ErrTimeout) {
				t.Errorf("One(%s) error = %v; want ErrTimeout", srv.addr, r.Err)
			}
			if r.Sent != tt.count || r.Valid != 0 || r.Discarded != tt.discarded {
				t.Errorf("One(%s) sent, valid, discarded = %d, %d, %d; want %d, 0, %d",
					srv.addr, r.Sent, r.Valid, r.Discarded, tt.count, tt.discarded)
			}
			// Each request waits its full timeout, which begins after
			// start, so less than count timeouts is wrong however busy the
			// machine. The upper bound, far above that for a busy
			// machine's sake, catches a wait that does not end at the
			// timeout.
			lo := time.Duration(tt.count) * timeout
			if hi := lo + 8*time.Second; elapsed < lo-10*time.Millisecond || elapsed > hi {
				t.Errorf("One(%s) took %v; want between %v and %v", srv.addr, elapsed, lo, hi)
			}
			if got := len(srv.requests()); got != tt.count {
				t.Errorf("server got %d requests; want %d", got, tt.count)
			}
		})
	}
}

// TestOneRefused covers replies that match the request but carry no usable
// time (THREATS C5, C10). A kiss-o'-death or an unsynchronized server
// stops the query; other errors let it ask again.
func TestOneRefused(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*ntp.Header)
		want error
		sent int // of 3
	}{
		{"RATE", kiss(ntp.KissRATE), source.KissError{Code: ntp.KissRATE}, 1},
		{"DENY", kiss(ntp.KissDENY), source.KissError{Code: ntp.KissDENY}, 1},
		{"RSTR", kiss(ntp.KissRSTR), source.KissError{Code: ntp.KissRSTR}, 1},
		{"NTSN", kiss(ntp.KissNTSN), source.KissError{Code: ntp.KissNTSN}, 1},
		// Other stratum-0 codes are status reports, not kisses.
		{"stratum 0 INIT", kiss(ntp.RefID{'I', 'N', 'I', 'T'}), source.ErrUnsynchronized, 1},
		{"stratum 0 STEP", kiss(ntp.RefID{'S', 'T', 'E', 'P'}), source.ErrUnsynchronized, 1},
		{"stratum 0 address", func(h *ntp.Header) { h.Stratum = 0 }, source.ErrUnsynchronized, 1},
		{"leap 3", func(h *ntp.Header) { h.Leap = ntp.LeapUnsync }, source.ErrUnsynchronized, 1},
		{"stratum 16", func(h *ntp.Header) { h.Stratum = 16 }, source.ErrUnsynchronized, 1},
		{"stratum 255", func(h *ntp.Header) { h.Stratum = 255 }, source.ErrUnsynchronized, 1},
		{"version 5", func(h *ntp.Header) { h.Version = 5 }, source.ErrVersion, 3},
		{"version 0", func(h *ntp.Header) { h.Version = 0 }, source.ErrVersion, 3},
		{"zero receive", func(h *ntp.Header) { h.Receive = 0 }, source.ErrTimestamps, 3},
		{"zero transmit", func(h *ntp.Header) { h.Transmit = 0 }, source.ErrTimestamps, 3},
		{"held for a day", func(h *ntp.Header) { h.Transmit = h.Receive.Add(24 * time.Hour) }, source.ErrTimestamps, 3},
		{"transmit before receive", func(h *ntp.Header) { h.Transmit = h.Receive.Add(-time.Second) }, source.ErrTimestamps, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startEvil(t, always(good(0, tt.mod)))
			cfg := testConfig(t)
			cfg.Count, cfg.Interval = 3, 10*time.Millisecond
			r := One(context.Background(), srv.addr.String(), cfg)
			if !errors.Is(r.Err, tt.want) {
				t.Errorf("One(%s) error = %v; want %v", srv.addr, r.Err, tt.want)
			}
			var k source.KissError
			if wantKiss, isKiss := tt.want.(source.KissError); isKiss && (!errors.As(r.Err, &k) || k != wantKiss) {
				t.Errorf("One(%s) error = %#v; want a source.KissError %v", srv.addr, r.Err, wantKiss)
			}
			if r.Sent != tt.sent || r.Valid != 0 || r.Discarded != 0 {
				t.Errorf("One(%s) sent, valid, discarded = %d, %d, %d; want %d, 0, 0",
					srv.addr, r.Sent, r.Valid, r.Discarded, tt.sent)
			}
			if got := len(srv.requests()); got != tt.sent {
				t.Errorf("server got %d requests; want %d", got, tt.sent)
			}
		})
	}
}

// TestOneKissAfterSample: a kiss ends the query, but the sample already
// taken stands.
func TestOneKissAfterSample(t *testing.T) {
	srv := startEvil(t, perRequest([]reply{good(0, nil)}, []reply{good(0, kiss(ntp.KissRATE))}))
	cfg := testConfig(t)
	cfg.Count, cfg.Interval = 5, 10*time.Millisecond
	r := One(context.Background(), srv.addr.String(), cfg)
	checkPlausible(t, r)
	if r.Sent != 2 || r.Valid != 1 {
		t.Errorf("One(%s) sent, valid = %d, %d; want 2, 1", srv.addr, r.Sent, r.Valid)
	}
	if want := srv.sent(0, 0); !bytes.Equal(r.Packet, want) {
		t.Errorf("One(%s) packet = %x; want the first reply, %x", srv.addr, r.Packet, want)
	}
	if got := len(srv.requests()); got != 2 {
		t.Errorf("server got %d requests; want 2", got)
	}
}

// TestOneReplay replays the genuine reply to the first request after the
// second (THREATS C3): the replay does not match the new request.
func TestOneReplay(t *testing.T) {
	var (
		mu    sync.Mutex // guards first
		first []byte
	)
	record := raw(func(req []byte, rx, tx time.Time) []byte {
		b := encode(goodHeader(req, rx, tx))
		mu.Lock()
		defer mu.Unlock()
		first = b
		return b
	})
	replay := raw(func([]byte, time.Time, time.Time) []byte {
		mu.Lock()
		defer mu.Unlock()
		return first
	})
	srv := startEvil(t, perRequest([]reply{record}, []reply{replay, good(0, nil)}))
	cfg := testConfig(t)
	cfg.Count, cfg.Interval = 2, 10*time.Millisecond
	r := One(context.Background(), srv.addr.String(), cfg)
	checkPlausible(t, r)
	if r.Sent != 2 || r.Valid != 2 || r.Discarded != 1 {
		t.Errorf("One(%s) sent, valid, discarded = %d, %d, %d; want 2, 2, 1", srv.addr, r.Sent, r.Valid, r.Discarded)
	}
	if first, replayed := srv.sent(0, 0), srv.sent(1, 0); first == nil || !bytes.Equal(first, replayed) {
		t.Errorf("the server did not replay the first reply: %x, %x", first, replayed)
	}
}

// TestOneWrongSource sends a reply that matches the request, but from
// another port or address, before the genuine one (THREATS C7): the
// connected socket never delivers it.
func TestOneWrongSource(t *testing.T) {
	tests := []struct {
		name, laddr string // where the impostor sends from; port 0 means the server's
	}{
		{"other port", "127.0.0.1:0"},
		{"other address", "127.0.0.2:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var impostor atomic.Pointer[net.UDPConn]
			spoof := good(0, func(h *ntp.Header) { h.RootDisp = 99 })
			srv := startEvil(t, func(int) []reply {
				return []reply{{build: spoof.build, via: impostor.Load()}, good(0, nil)}
			})
			laddr := netip.MustParseAddrPort(tt.laddr)
			if laddr.Addr() != srv.addr.Addr() {
				laddr = netip.AddrPortFrom(laddr.Addr(), srv.addr.Port())
			}
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(laddr))
			if err != nil {
				t.Skipf("cannot send from %v: %v", laddr, err)
			}
			defer c.Close()
			impostor.Store(c)

			r := One(context.Background(), srv.addr.String(), testConfig(t))
			checkPlausible(t, r)
			if r.Sample.Header.RootDisp == 99 || !bytes.Equal(r.Packet, srv.sent(0, 1)) {
				t.Errorf("One(%s) kept %x; want the genuine reply %x, not the one from %v", srv.addr, r.Packet, srv.sent(0, 1), c.LocalAddr())
			}
			if r.Valid != 1 || r.Discarded != 0 {
				t.Errorf("One(%s) valid, discarded = %d, %d; want 1, 0 (the kernel drops the impostor)", srv.addr, r.Valid, r.Discarded)
			}
			if srv.sent(0, 0) == nil {
				t.Errorf("the impostor's reply was not sent")
			}
		})
	}
}

// TestOneConnRefused queries a port nothing listens on: the ICMP error
// ends the query at once, long before the timeout or the next request.
func TestOneConnRefused(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()

	cfg := testConfig(t)
	cfg.Count, cfg.Interval, cfg.Timeout = 3, 20*time.Second, 20*time.Second
	start := time.Now()
	r := One(context.Background(), addr, cfg)
	if elapsed := time.Since(start); elapsed > 4*time.Second {
		t.Errorf("One(%s) took %v; want an immediate failure", addr, elapsed)
	}
	if !errors.Is(r.Err, syscall.ECONNREFUSED) {
		t.Errorf("One(%s) error = %v; want ECONNREFUSED", addr, r.Err)
	}
	if r.Sent != 1 || r.Valid != 0 {
		t.Errorf("One(%s) sent, valid = %d, %d; want 1, 0", addr, r.Sent, r.Valid)
	}
}

// TestOneLowestDelay sends three requests that the server holds for
// different times while claiming to have answered at once, so that each
// hold counts as network delay: the reply held least must be kept. The
// holds differ by far more than scheduling on a busy machine can add, so
// the test checks which reply was kept, not the delays measured.
func TestOneLowestDelay(t *testing.T) {
	const interval = 100 * time.Millisecond
	// The shortest hold is neither first nor last, so keeping the first
	// or the last sample is caught too.
	holds := []time.Duration{time.Second, 0, 500 * time.Millisecond}
	const shortest = 1
	var script [][]reply
	for i, hold := range holds {
		// RootDisp marks the reply.
		script = append(script, []reply{good(hold, func(h *ntp.Header) {
			hideHold(h)
			h.RootDisp = ntp.Short(i + 1)
		})})
	}
	srv := startEvil(t, perRequest(script...))
	cfg := testConfig(t)
	cfg.Count, cfg.Interval = len(holds), interval
	r := One(context.Background(), srv.addr.String(), cfg)
	checkPlausible(t, r)
	if r.Sent != 3 || r.Valid != 3 || r.Discarded != 0 {
		t.Errorf("One(%s) sent, valid, discarded = %d, %d, %d; want 3, 3, 0", srv.addr, r.Sent, r.Valid, r.Discarded)
	}
	if want := srv.sent(shortest, 0); r.Sample.Header.RootDisp != shortest+1 || want == nil || !bytes.Equal(r.Packet, want) {
		t.Errorf("One(%s) kept reply %d (%x); want reply %d (%x), held %v",
			srv.addr, r.Sample.Header.RootDisp, r.Packet, shortest+1, want, holds[shortest])
	}
	// The next request cannot arrive before the reply to the previous one
	// was sent (after its hold) and the interval had passed.
	reqs := srv.requests()
	for i := 1; i < len(reqs); i++ {
		if gap, least := reqs[i].at.Sub(reqs[i-1].at), holds[i-1]+interval; gap < least {
			t.Errorf("requests %d and %d were %v apart; want at least the hold plus the interval, %v", i-1, i, gap, least)
		}
	}
}

// TestOneCancel cancels the context while a query waits, for a reply or
// for its next request. The cancel is tied to events, not to a time: the
// server's receipt of the request, or a reading of the local clock, which
// One takes once before each request and once after each datagram it
// receives. The timeout and interval are long, so only the cancel can end
// the query quickly.
func TestOneCancel(t *testing.T) {
	tests := []struct {
		name      string
		script    func(cancel func()) func(int) []reply
		cancelAt  int // cancel at this reading of the local clock, if not 0
		count     int
		wantErr   error // nil: a valid sample
		discarded int
	}{
		{
			name:    "waiting for a reply",
			script:  func(cancel func()) func(int) []reply { return always(do(cancel)) },
			count:   1,
			wantErr: context.Canceled,
		},
		{
			name: "waiting for a reply after bogus ones",
			script: func(func()) func(int) []reply {
				return always(good(0, wrongOrigin), good(0, spoofedKiss(ntp.KissDENY)))
			},
			cancelAt:  3, // on receiving the second bogus reply
			count:     3,
			wantErr:   context.Canceled,
			discarded: 2,
		},
		{
			name:     "waiting for the next request",
			script:   func(func()) func(int) []reply { return always(good(0, nil)) },
			cancelAt: 2, // on receiving the reply
			count:    3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			srv := startEvil(t, tt.script(cancel))
			cfg := testConfig(t)
			cfg.Count, cfg.Interval, cfg.Timeout = tt.count, 20*time.Second, 20*time.Second
			var readings atomic.Int64
			cfg.Now = func() time.Time {
				if readings.Add(1) == int64(tt.cancelAt) {
					cancel()
				}
				return time.Now()
			}
			start := time.Now()
			r := One(ctx, srv.addr.String(), cfg)
			if elapsed := time.Since(start); elapsed > 4*time.Second {
				t.Errorf("One(%s) returned %v after the start; want soon after the cancel", srv.addr, elapsed)
			}
			if ctx.Err() == nil {
				t.Fatalf("One(%s) returned %+v before the cancel", srv.addr, r)
			}
			if tt.wantErr == nil {
				checkPlausible(t, r)
			} else if !errors.Is(r.Err, tt.wantErr) {
				t.Errorf("One(%s) error = %v; want %v", srv.addr, r.Err, tt.wantErr)
			}
			if r.Sent != 1 || r.Discarded != tt.discarded {
				t.Errorf("One(%s) sent, discarded = %d, %d; want 1, %d", srv.addr, r.Sent, r.Discarded, tt.discarded)
			}
		})
	}
}

// TestOneDeadline lets a context deadline, shorter than the timeout, end
// the wait.
func TestOneDeadline(t *testing.T) {
	srv := startEvil(t, always())
	cfg := testConfig(t)
	cfg.Timeout = 20 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	r := One(ctx, srv.addr.String(), cfg)
	if elapsed := time.Since(start); elapsed > 4*time.Second {
		t.Errorf("One(%s) took %v; want about 200ms", srv.addr, elapsed)
	}
	// The socket deadline and the context's expire together, so either
	// error is right.
	if !errors.Is(r.Err, context.DeadlineExceeded) && !errors.Is(r.Err, ErrTimeout) {
		t.Errorf("One(%s) error = %v; want context.DeadlineExceeded or ErrTimeout", srv.addr, r.Err)
	}
}

// TestOneRandFails checks that without randomness no request is sent.
func TestOneRandFails(t *testing.T) {
	errRand := errors.New("entropy exhausted")
	tests := []struct {
		name string
		rand io.Reader
		want error
	}{
		{"error", iotest.ErrReader(errRand), errRand},
		{"empty", bytes.NewReader(nil), io.EOF},
		{"short", bytes.NewReader([]byte{1, 2, 3, 4}), io.ErrUnexpectedEOF},
		{"one byte at a time then error", iotest.OneByteReader(io.MultiReader(bytes.NewReader([]byte{1, 2, 3}), iotest.ErrReader(errRand))), errRand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startEvil(t, always(good(0, nil)))
			cfg := testConfig(t)
			cfg.Rand = tt.rand
			r := One(context.Background(), srv.addr.String(), cfg)
			if !errors.Is(r.Err, tt.want) {
				t.Errorf("One(%s) with a failing Rand: error = %v; want %v", srv.addr, r.Err, tt.want)
			}
			if r.Sent != 0 || r.Valid != 0 {
				t.Errorf("One(%s) with a failing Rand: sent, valid = %d, %d; want 0, 0", srv.addr, r.Sent, r.Valid)
			}
			if got := len(srv.requests()); got != 0 {
				t.Errorf("server got %d requests; want none", got)
			}
		})
	}
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

// TestOneZeroTransmit: a random transmit timestamp of zero, which means
// "not set" on the wire, is never sent.
func TestOneZeroTransmit(t *testing.T) {
	srv := startEvil(t, always(good(0, nil)))
	cfg := testConfig(t)
	cfg.Rand = zeros{}
	r := One(context.Background(), srv.addr.String(), cfg)
	checkPlausible(t, r)
	reqs := srv.requests()
	if len(reqs) != 1 || xmtOf(reqs[0].data) == 0 {
		t.Errorf("server got %v; want one request with a non-zero transmit timestamp", reqs)
	}
}

// TestAll checks the results and that All queries its servers
// concurrently: each server holds its reply until all three have received
// a request. Queried one after another, the first would time out waiting
// for the others, whatever the speed of the machine.
func TestAll(t *testing.T) {
	all := newBarrier(3)
	held := func(mod func(*ntp.Header)) func(int) []reply {
		return func(int) []reply {
			all.arrive()
			return []reply{gated(all.ch, good(0, mod))}
		}
	}
	ok1 := startEvil(t, held(nil))
	kod := startEvil(t, held(kiss(ntp.KissDENY)))
	ok2 := startEvil(t, held(nil))
	servers := []string{ok1.addr.String(), "", kod.addr.String(), "[::1]:0", ok2.addr.String()}
	rs := All(context.Background(), servers, testConfig(t))
	if len(rs) != len(servers) {
		t.Fatalf("All(%q) returned %d results; want %d", servers, len(rs), len(servers))
	}
	for i, r := range rs {
		if r.Server != servers[i] {
			t.Errorf("All(%q)[%d].Server = %q; want %q", servers, i, r.Server, servers[i])
		}
	}
	for i, srv := range map[int]*evilServer{0: ok1, 4: ok2} {
		r := rs[i]
		if r.Err != nil || r.Sent != 1 || r.Valid != 1 || r.Addr != srv.addr || !bytes.Equal(r.Packet, srv.sent(0, 0)) {
			t.Errorf("All(%q)[%d] = %+v; want the reply from %v", servers, i, r, srv.addr)
			continue
		}
		// The server reports its hold, so it is not network delay.
		checkPlausible(t, r)
	}
	if rs[1].Err == nil || rs[1].Addr.IsValid() || rs[1].Sent != 0 {
		t.Errorf("All(%q)[1] = %+v; want a resolution error and nothing sent", servers, rs[1])
	}
	if !errors.Is(rs[2].Err, source.KissError{Code: ntp.KissDENY}) || rs[2].Addr != kod.addr {
		t.Errorf("All(%q)[2] = %v, %v; want kiss-o'-death DENY from %v", servers, rs[2].Addr, rs[2].Err, kod.addr)
	}
	if rs[3].Err == nil || !strings.Contains(rs[3].Err.Error(), "invalid port") {
		t.Errorf("All(%q)[3] error = %v; want an invalid port", servers, rs[3].Err)
	}
	for _, srv := range []*evilServer{ok1, kod, ok2} {
		if got := len(srv.requests()); got != 1 {
			t.Errorf("server %v got %d requests; want 1", srv.addr, got)
		}
	}
}

// TestRequestContents checks what a request reveals (THREATS C8, C9): only
// version, mode and a random transmit timestamp, from a random source port.
func TestRequestContents(t *testing.T) {
	const n = 200
	srv := startEvil(t, always(good(0, nil)))
	cfg := testConfig(t)
	cfg.Count, cfg.Interval = n, time.Millisecond
	start := time.Now()
	r := One(context.Background(), srv.addr.String(), cfg)
	checkPlausible(t, r)
	if r.Sent != n || r.Valid != n {
		t.Errorf("One(%s) sent, valid = %d, %d; want %d, %d", srv.addr, r.Sent, r.Valid, n, n)
	}
	reqs := srv.requests()
	if len(reqs) != n {
		t.Fatalf("server got %d requests; want %d", len(reqs), n)
	}

	now := ntp.TimeFrom(start)
	xmts := make(map[ntp.Time]bool)
	ports := make(map[uint16]bool)
	var nearNow, adjacentPorts int
	var ones [64]int
	for i, q := range reqs {
		b := q.data
		if len(b) != ntp.HeaderLen {
			t.Errorf("request %d is %d bytes; want %d", i, len(b), ntp.HeaderLen)
			continue
		}
		if b[0] != 0x23 {
			t.Errorf("request %d byte 0 = %#x; want 0x23 (LI 0, VN 4, mode 3)", i, b[0])
		}
		if nz := bytes.IndexFunc(b[1:40], func(r rune) bool { return r != 0 }); nz >= 0 {
			t.Errorf("request %d = %x: byte %d is not zero; want zeros before the transmit timestamp", i, b, nz+1)
		}
		xmt := xmtOf(b)
		xmts[xmt] = true
		if d := xmt.Sub(now); d > -24*time.Hour && d < 24*time.Hour {
			nearNow++
		}
		for bit := range ones {
			ones[bit] += int(xmt >> bit & 1)
		}
		if !q.from.Addr().IsLoopback() {
			t.Errorf("request %d came from %v; want loopback", i, q.from)
		}
		ports[q.from.Port()] = true
		if i > 0 {
			if d := int(q.from.Port()) - int(reqs[i-1].from.Port()); d >= -8 && d <= 8 {
				adjacentPorts++
			}
		}
	}
	t.Logf("%d requests: %d distinct transmit timestamps, %d distinct source ports, %d within 8 of the previous port, %d timestamps within a day of now",
		n, len(xmts), len(ports), adjacentPorts, nearNow)
	if len(xmts) != n {
		t.Errorf("%d distinct transmit timestamps in %d requests; want all distinct", len(xmts), n)
	}
	// A random 64-bit value lands within a day of now with probability
	// 2^-15; a clock reading always does.
	if nearNow > 2 {
		t.Errorf("%d of %d transmit timestamps are within a day of the local clock; want them unrelated to it", nearNow, n)
	}
	// Each bit is set in about half the timestamps; 0.3 and 0.7 are more
	// than five standard deviations away. A clock's high bits never change.
	for bit, c := range ones {
		if c < n*3/10 || c > n*7/10 {
			t.Errorf("transmit timestamp bit %d set in %d of %d requests; want about half", bit, c, n)
		}
	}
	// The kernel picks a random ephemeral port for each new socket.
	if len(ports) <= n*3/4 {
		t.Errorf("%d distinct source ports in %d requests; want more than %d", len(ports), n, n*3/4)
	}
	if adjacentPorts > n/10 {
		t.Errorf("%d of %d source ports are within 8 of the previous one; want them unpredictable", adjacentPorts, n)
	}
}

// TestResultAddr checks that the result reports the address queried for a
// name, resolved through DNS.
func TestResultAddr(t *testing.T) {
	srv := startEvil(t, always(good(0, nil)))
	dns := startDNS(t, zone{"ntp.meridian.test.": {srv.addr.Addr()}})
	cfg := testConfig(t)
	cfg.Resolver = dns.resolver()
	name := fmt.Sprintf("ntp.meridian.test:%d", srv.addr.Port())
	r := One(context.Background(), name, cfg)
	checkPlausible(t, r)
	if r.Server != name || r.Addr != srv.addr {
		t.Errorf("One(%q) server, addr = %q, %v; want %q, %v", name, r.Server, r.Addr, name, srv.addr)
	}
}
