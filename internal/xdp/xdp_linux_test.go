package xdp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/peertest"
	"github.com/meridian-ntp/meridian/internal/server"
)

var (
	serve4  = netip.MustParseAddrPort("192.0.2.1:123")
	serve6  = netip.MustParseAddrPort("[2001:db8::1]:123")
	client4 = netip.MustParseAddrPort("198.51.100.7:40000")
	client6 = netip.MustParseAddrPort("[2001:db8:1::7]:40000")
)

// load loads the program with c (serving serve4 and serve6 unless c says
// otherwise) and publishes st.
func load(t testing.TB, c Config, st *server.State) *Program {
	t.Helper()
	peertest.NeedRoot(t, "loading an XDP program")
	if c.Dests == nil {
		c.Dests = []netip.AddrPort{serve4, serve6}
	}
	p, err := Load(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if st != nil {
		if err := p.Publish(st); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// run runs the program on in and returns its action and the frame after
// it, with the wall-clock time read just before and after.
func run(t testing.TB, p *Program, in []byte) (action uint32, out []byte, before, after time.Time) {
	t.Helper()
	opts := &ebpf.RunOptions{Data: in, DataOut: make([]byte, len(in)+256)}
	before = time.Now()
	action, err := p.prog.Run(opts)
	after = time.Now()
	if err != nil {
		t.Fatalf("run %x: %v", in, err)
	}
	return action, opts.DataOut, before, after
}

// synced is a served state with a reference time a little in the past.
func synced() *server.State {
	return &server.State{Leap: ntp.LeapNone, Stratum: 2, Precision: -24,
		RefID: ntp.RefID{192, 0, 2, 53}, Reference: ntp.TimeFrom(time.Now().Add(-1500 * time.Millisecond)),
		RootDelay: ntp.ShortFrom(3 * time.Millisecond), RootDisp: ntp.ShortFrom(2 * time.Millisecond)}
}

// check runs in through p and through the model (resp answering from st)
// and fails t if they differ. It reports whether the program answered.
func check(t *testing.T, p *Program, c Config, resp *server.Responder, st *server.State, in []byte) bool {
	t.Helper()
	action, out, before, after := run(t, p, in)
	from, req, ok := candidate(in, c.Dests)
	if !ok {
		if action != xdpPass {
			t.Fatalf("frame %x: action %d; want pass (%d)", in, action, xdpPass)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("frame %x passed as %x; want unchanged", in, out)
		}
		return false
	}
	ntpOff := len(in) - 48
	var rx ntp.Time
	if action == xdpTX {
		rx = ntp.Time(binary.BigEndian.Uint64(out[ntpOff+32:]))
		lo, hi := ntp.TimeFrom(before), ntp.TimeFrom(after)
		if rx.Sub(lo) < -time.Microsecond || hi.Sub(rx) < -time.Microsecond {
			t.Errorf("receive timestamp %v; want between %v and %v", rx.Resolve(before), before.UTC(), after.UTC())
		}
	}
	want, v := expected(in, resp, st, from, req, rx, 0)
	if want == nil {
		if action != xdpDrop {
			t.Fatalf("frame %x: action %d; want drop (%d), verdict %v", in, action, xdpDrop, v)
		}
		return false
	}
	if action != xdpTX {
		t.Fatalf("frame %x: action %d; want TX (%d), verdict %v", in, action, xdpTX, v)
	}
	if !bytes.Equal(out, want) {
		t.Errorf("frame %x\nanswered %x\nwant     %x (verdict %v)", in, out, want, v)
	}
	return true
}

// plain loads the program serving serve4 and serve6 from synced(), with
// no access list and no rate limiter, and returns it with its
// configuration and a Responder that answers the same way.
func plain(t testing.TB) (*Program, Config, *server.Responder, *server.State) {
	c := Config{}
	st := synced()
	p := load(t, c, st)
	c.Dests = []netip.AddrPort{serve4, serve6}
	return p, c, server.NewResponder(server.Config{}), st
}

func TestAnswersLikeServer(t *testing.T) {
	p, c, resp, st := plain(t)
	var frames []frame
	for _, pair := range [][2]netip.AddrPort{{client4, serve4}, {client6, serve6}} {
		for version := uint8(0); version < 8; version++ {
			for mode := uint8(0); mode < 8; mode++ {
				frames = append(frames, frame{src: pair[0], dst: pair[1], payload: request(version, mode, 6)})
			}
		}
		for _, poll := range []int8{-128, -7, -6, -1, 0, 4, 17, 18, 127} {
			frames = append(frames, frame{src: pair[0], dst: pair[1], payload: request(4, 3, poll)})
		}
		for _, n := range []int{0, 1, 47, 49, 52, 68, 100} {
			b := make([]byte, n)
			if n > 0 {
				b[0] = 4<<3 | 3
			}
			frames = append(frames, frame{src: pair[0], dst: pair[1], payload: b})
		}
		other := netip.AddrPortFrom(pair[1].Addr(), 1123)
		frames = append(frames, frame{src: pair[0], dst: other, payload: request(4, 3, 6)})
	}
	frames = append(frames,
		frame{src: client4, dst: netip.MustParseAddrPort("192.0.2.2:123"), payload: request(4, 3, 6)},
		frame{src: client6, dst: netip.MustParseAddrPort("[2001:db8::2]:123"), payload: request(4, 3, 6)},
		frame{src: netip.MustParseAddrPort("0.1.2.3:123"), dst: serve4, payload: request(4, 3, 6)},
		frame{src: netip.MustParseAddrPort("224.0.0.1:123"), dst: serve4, payload: request(4, 3, 6)},
		frame{src: netip.MustParseAddrPort("255.255.255.255:123"), dst: serve4, payload: request(4, 3, 6)},
		frame{src: netip.MustParseAddrPort("127.0.0.1:9"), dst: serve4, payload: request(4, 3, 6)},
		frame{src: netip.MustParseAddrPort("[ff02::1]:123"), dst: serve6, payload: request(4, 3, 6)},
		frame{src: netip.MustParseAddrPort("[::]:123"), dst: serve6, payload: request(4, 3, 6)},
		frame{src: netip.MustParseAddrPort("[::ffff:198.51.100.7]:123"), dst: serve6, payload: request(4, 3, 6)},
		frame{src: netip.MustParseAddrPort("[::1]:123"), dst: serve6, payload: request(4, 3, 6)},
		frame{src: client4, dst: serve4, payload: request(4, 3, 6), zeroChecksum: true},
		frame{src: client4, dst: serve4, payload: request(3, 3, 6), ttl: 1, ipID: 0xBEEF},
	)
	answered := 0
	for i, f := range frames {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			if check(t, p, c, resp, st, f.build()) {
				answered++
			}
		})
	}
	// Versions 1-4 of mode 3, 9 polls, the low TTL and the zero checksum,
	// for each family; then 127.0.0.1 and ::1 (a martian source off the
	// loopback interface, which the stack would drop; answering it sends
	// one reply of the request's size back to the MAC that sent it).
	if want := 2*(4+9) + 2 + 2; answered != want {
		t.Errorf("%d frames answered; want %d", answered, want)
	}
}

// TestPassesMalformedFrames mutates a valid request frame byte by byte:
// every variant the model does not accept must be passed on unchanged,
// every one it accepts answered as package server would.
func TestPassesMalformedFrames(t *testing.T) {
	p, c, resp, st := plain(t)
	for _, f := range []frame{{src: client4, dst: serve4}, {src: client6, dst: serve6}} {
		f.payload = request(4, 3, 6)
		in := f.build()
		answered := 0
		for i := range in {
			for _, x := range []byte{0x01, 0x80, 0xFF} {
				b := bytes.Clone(in)
				b[i] ^= x
				if check(t, p, c, resp, st, b) {
					answered++
				}
			}
		}
		// Mutations the program must still answer: MAC source, IP header
		// fields it does not check, the addresses' low bits, the ports,
		// the checksums and the NTP fields other than byte 0.
		if answered < 150 {
			t.Errorf("%v: %d mutations answered; want at least 150", f.src, answered)
		}
		for _, n := range []int{14, 33, 41, 89, 91, 109, 111, 200} {
			b := make([]byte, n)
			copy(b, in)
			check(t, p, c, resp, st, b)
		}
	}
}

func TestPublish(t *testing.T) {
	for _, st := range []*server.State{
		server.Unsynchronized(-20),
		server.Local(10, -23, ntp.TimeFrom(time.Now())),
		synced(),
		{Leap: ntp.LeapNone, Stratum: 3, RootDisp: 0xFFFFFF00, Reference: ntp.TimeFrom(time.Now().Add(-time.Hour))},
		{Leap: ntp.LeapNone, Stratum: 3, Reference: ntp.TimeFrom(time.Now().Add(time.Hour))},
		{Leap: ntp.LeapNone, Stratum: 3, Reference: ntp.TimeFrom(time.Now().Add(-100 * 24 * time.Hour))},
	} {
		t.Run(fmt.Sprintf("%+v", *st), func(t *testing.T) {
			c := Config{}
			p := load(t, c, st)
			c.Dests = []netip.AddrPort{serve4, serve6}
			resp := server.NewResponder(server.Config{})
			check(t, p, c, resp, st, frame{src: client4, dst: serve4, payload: request(4, 3, 6)}.build())
			check(t, p, c, resp, st, frame{src: client6, dst: serve6, payload: request(4, 3, 6)}.build())
		})
	}
}

// TestLeapPasses: with a leap second announced, everything goes to the
// sockets.
func TestLeapPasses(t *testing.T) {
	for _, leap := range []ntp.Leap{ntp.LeapInsert, ntp.LeapDelete} {
		st := synced()
		st.Leap = leap
		p := load(t, Config{}, st)
		if action, _, _, _ := run(t, p, frame{src: client4, dst: serve4, payload: request(4, 3, 6)}.build()); action != xdpPass {
			t.Errorf("leap %d: action %d; want pass", leap, action)
		}
	}
	// Before the first Publish, too.
	p := load(t, Config{}, nil)
	if action, _, _, _ := run(t, p, frame{src: client4, dst: serve4, payload: request(4, 3, 6)}.build()); action != xdpPass {
		t.Errorf("unpublished: action %d; want pass", action)
	}
}

// TestOpenMaps hands the maps of a loaded program over as files, as to a
// server process: states published through them are what the program
// serves, its counts are read through them, Off turns it back into a
// pass-through, and files that are not the program's maps are refused.
func TestOpenMaps(t *testing.T) {
	c := Config{}
	p := load(t, c, nil)
	c.Dests = []netip.AddrPort{serve4, serve6}
	files, err := p.MapFiles()
	if err != nil {
		t.Fatal(err)
	}
	m, err := OpenMaps(files, c)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	in := frame{src: client4, dst: serve4, payload: request(4, 3, 6)}.build()
	resp := server.NewResponder(server.Config{})
	for range 3 { // both slots, and back
		st := synced()
		if err := m.Publish(st); err != nil {
			t.Fatal(err)
		}
		if !check(t, p, c, resp, st, in) {
			t.Fatal("the program did not answer after a state published through handed-over maps")
		}
	}
	got, err := m.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if got[server.Answered] != 3 {
		t.Errorf("counters through the handed-over maps: %v; want %d answered", got, 3)
	}
	if err := m.Off(); err != nil {
		t.Fatal(err)
	}
	if action, _, _, _ := run(t, p, in); action != xdpPass {
		t.Errorf("after Off: action %d; want pass", action)
	}
	// The program's own handle still publishes, to the slot the program
	// does not read: it remembers nothing stale.
	st := synced()
	if err := p.Publish(st); err != nil {
		t.Fatal(err)
	}
	if !check(t, p, c, resp, st, in) {
		t.Fatal("the program did not answer after a state published through its own handle")
	}
	files, err = p.MapFiles()
	if err != nil {
		t.Fatal(err)
	}
	files[0], files[1] = files[1], files[0]
	if _, err := OpenMaps(files, c); err == nil || !strings.Contains(err.Error(), "XDP map ctl") {
		t.Errorf("OpenMaps with the state map first: %v; want an error about map ctl", err)
	}
	files, err = p.MapFiles()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenMaps(files[:2], c); err == nil {
		t.Error("OpenMaps with two files: no error")
	}
}

// TestTAIOffset: the offset read from the two clocks is the kernel's own
// (adjtimex, only read).
func TestTAIOffset(t *testing.T) {
	got, err := taiOffset()
	if err != nil {
		t.Fatal(err)
	}
	var tx unix.Timex
	if _, err := unix.Adjtimex(&tx); err != nil {
		t.Fatal(err)
	}
	if want := time.Duration(tx.Tai) * time.Second; got != want {
		t.Errorf("taiOffset = %v; the kernel says %v", got, want)
	}
}

// TestLimitsLikeServer sends sequences of requests through the program and
// through a Responder with the same access list and rate limiter: every
// action, response and count must agree.
func TestLimitsLikeServer(t *testing.T) {
	hour := time.Hour
	acl := server.NewACL(
		[]netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:1::/48")},
		[]netip.Prefix{netip.MustParsePrefix("198.51.100.128/25"), netip.MustParsePrefix("2001:db8:1:bad::/64")})
	at := func(s string) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr(s), 40000) }
	clients := []netip.AddrPort{
		at("198.51.100.7"), at("198.51.100.8"), at("198.51.100.200"), at("203.0.113.1"),
		at("2001:db8:1::7"), at("2001:db8:1::8"), at("2001:db8:1:2::7"), at("2001:db8:1:bad::1"), at("2001:db8:2::1"),
	}
	for _, tc := range []struct {
		name string
		c    Config
	}{
		{"drop", Config{Limit: &server.LimitConfig{Interval: hour, Burst: 3, Leak: -1}}},
		{"kod", Config{Limit: &server.LimitConfig{Interval: hour, Burst: 2, Leak: -1, KoD: true}}},
		{"leak all", Config{Limit: &server.LimitConfig{Interval: hour, Burst: 2, Leak: 1}}},
		{"prefixes", Config{Limit: &server.LimitConfig{Interval: hour, Burst: 2, Leak: -1, IPv4Prefix: 24, IPv6Prefix: 48}}},
		{"acl drop", Config{ACL: acl}},
		{"acl kod", Config{ACL: acl, DenyKoD: true}},
		{"acl kod limited", Config{ACL: acl, DenyKoD: true, Limit: &server.LimitConfig{Interval: hour, Burst: 1, Leak: -1}}},
		{"acl limit kod", Config{ACL: acl, Limit: &server.LimitConfig{Interval: hour, Burst: 2, Leak: -1, KoD: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := synced()
			p := load(t, tc.c, st)
			c := tc.c
			c.Dests = []netip.AddrPort{serve4, serve6}
			sc := server.Config{ACL: c.ACL, DenyKoD: c.DenyKoD}
			if c.Limit != nil {
				sc.Limiter = server.NewLimiter(*c.Limit, maphash.MakeSeed(), rand.New(rand.NewPCG(1, 2)))
			}
			resp := server.NewResponder(sc)
			for range 5 {
				for _, from := range clients {
					dst := serve4
					if from.Addr().Is6() {
						dst = serve6
					}
					check(t, p, c, resp, st, frame{src: from, dst: dst, payload: request(4, 3, 6)}.build())
				}
			}
			got, err := p.Counters()
			if err != nil {
				t.Fatal(err)
			}
			verdicts, _ := resp.Counters.Snapshot()
			want := map[server.Verdict]uint64{}
			for v, n := range verdicts {
				if n != 0 {
					want[server.Verdict(v)] = n
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("counters (-server +xdp):\n%s", diff)
			}
		})
	}
}

// BenchmarkProgram runs the program on one request frame in the kernel
// (BPF_PROG_TEST_RUN), rate limiter on with a budget it never exhausts,
// and reports the time the kernel measured around each run: the program
// alone, with the kernel's timer reads. Each run gets a fresh copy of the
// request (repeated runs in one call would answer their own answer).
func BenchmarkProgram(b *testing.B) {
	for _, tc := range []struct {
		name string
		f    frame
	}{{"ipv4", frame{src: client4, dst: serve4}}, {"ipv6", frame{src: client6, dst: serve6}}} {
		b.Run(tc.name, func(b *testing.B) {
			p := load(b, Config{Limit: &server.LimitConfig{Interval: time.Nanosecond, Burst: 1024}}, synced())
			tc.f.payload = request(4, 3, 6)
			in := tc.f.build()
			var total time.Duration
			for range b.N {
				action, per, err := p.prog.Benchmark(in, 1, nil)
				if err != nil {
					b.Fatal(err)
				}
				if action != xdpTX {
					b.Fatalf("action %d; want TX", action)
				}
				total += per
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "kernel-ns/packet")
		})
	}
}
