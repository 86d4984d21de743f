package server

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/mono"
	"github.com/meridian-ntp/meridian/internal/ntp"
)

var (
	refTime = ntp.TimeFrom(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	rxTime  = refTime.Add(10 * time.Second)
	client  = netip.MustParseAddr("192.0.2.7")
	synced  = &State{Leap: ntp.LeapNone, Stratum: 2, Precision: -24, RefID: ntp.RefID{192, 0, 2, 1},
		Reference: refTime, RootDelay: ntp.ShortFrom(5 * time.Millisecond), RootDisp: ntp.ShortFrom(time.Millisecond)}
)

// request builds a request of the given version and mode with a
// recognisable transmit timestamp, followed by extra bytes.
func request(version uint8, mode ntp.Mode, extra ...byte) []byte {
	h := ntp.Header{Version: version, Mode: mode, Poll: 6, Transmit: 0x1122334455667788}
	b := make([]byte, ntp.HeaderLen, ntp.HeaderLen+len(extra))
	if _, err := h.Encode(b); err != nil {
		panic(err)
	}
	return append(b, extra...)
}

func respondOnce(t *testing.T, r *Responder, st *State, req []byte) ([]byte, Verdict) {
	t.Helper()
	dst := make([]byte, 1500)
	n, v := r.Respond(0, st, client, rxTime, req, dst)
	if n > len(req) {
		t.Fatalf("response of %d bytes to a %d-byte request", n, len(req))
	}
	if (n > 0) != v.Responds() {
		t.Fatalf("verdict %v with %d bytes", v, n)
	}
	return dst[:n], v
}

func TestRespondAnswersClients(t *testing.T) {
	for version := uint8(1); version <= 4; version++ {
		r := NewResponder(Config{})
		resp, v := respondOnce(t, r, synced, request(version, ntp.ModeClient))
		if v != Answered {
			t.Fatalf("v%d: verdict %v", version, v)
		}
		var h ntp.Header
		if err := h.Decode(resp); err != nil {
			t.Fatal(err)
		}
		StampTransmit(resp, rxTime.Add(time.Microsecond))
		if err := h.Decode(resp); err != nil {
			t.Fatal(err)
		}
		want := ntp.Header{Leap: ntp.LeapNone, Version: version, Mode: ntp.ModeServer, Stratum: 2, Poll: 6,
			Precision: -24, RootDelay: synced.RootDelay,
			RootDisp: ntp.ShortFrom(synced.RootDisp.Duration() + 150*time.Microsecond), // grown 15 ppm over 10 s
			RefID:    synced.RefID, Reference: refTime, Origin: 0x1122334455667788, Receive: rxTime,
			Transmit: rxTime.Add(time.Microsecond)}
		if h != want {
			t.Errorf("v%d response\n got %+v\nwant %+v", version, h, want)
		}
	}
}

// TestRespondDrops covers THREATS A1, A2, A3 and A4 on the server side.
func TestRespondDrops(t *testing.T) {
	monlist := request(2, ntp.ModePrivate)
	monlist[1], monlist[2], monlist[3] = 0, 3, 42 // implementation 3, request code 42 (MON_GETLIST_1)
	control := request(2, ntp.ModeControl)
	control[1] = 2 // read variables
	badEF := request(4, ntp.ModeClient, 0, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	tests := []struct {
		name string
		req  []byte
		want Verdict
	}{
		{"empty", nil, DropShort},
		{"1 byte", []byte{0x23}, DropShort},
		{"47 bytes", request(4, ntp.ModeClient)[:47], DropShort},
		{"version 0", request(0, ntp.ModeClient), DropVersion},
		{"version 5", request(5, ntp.ModeClient), DropVersion},
		{"version 7", request(7, ntp.ModeClient), DropVersion},
		{"mode 0", request(4, 0), DropMode},
		{"symmetric active", request(4, ntp.ModeSymActive), DropMode},
		{"symmetric passive", request(4, ntp.ModeSymPassive), DropMode},
		{"server", request(4, ntp.ModeServer), DropMode},
		{"broadcast", request(4, ntp.ModeBroadcast), DropMode},
		{"control (ntpq)", control, DropMode},
		{"private monlist", monlist, DropMode},
		{"extension field length 3", badEF, DropMalformed},
		{"trailing 8 bytes", request(4, ntp.ModeClient, make([]byte, 8)...), DropMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewResponder(Config{})
			if _, v := respondOnce(t, r, synced, tt.req); v != tt.want {
				t.Errorf("Respond(%x) = %v; want %v", tt.req, v, tt.want)
			}
			verdicts, modes := r.Counters.Snapshot()
			if verdicts[tt.want] != 1 {
				t.Errorf("counter %v = %d; want 1", tt.want, verdicts[tt.want])
			}
			if len(tt.req) >= ntp.HeaderLen && modes[tt.req[0]&7] != 1 {
				t.Errorf("mode %d counted %d times", tt.req[0]&7, modes[tt.req[0]&7])
			}
		})
	}
}

// TestRespondIgnoresUnknownFields covers THREATS A5 and A6: unknown
// extension fields and legacy MACs do not stop an answer, and the answer
// carries none of them.
func TestRespondIgnoresUnknownFields(t *testing.T) {
	ef := make([]byte, 32)
	if _, err := ntp.PutExt(ef, 0xFEED, []byte("an unknown extension field")); err != nil {
		t.Fatal(err)
	}
	mac := append([]byte{0, 0, 0, 9}, make([]byte, 16)...) // unknown key id 9
	for _, req := range [][]byte{
		request(4, ntp.ModeClient, ef...),
		request(4, ntp.ModeClient, append(append([]byte{}, ef...), mac...)...),
		request(4, ntp.ModeClient, mac...),
		request(3, ntp.ModeClient, mac...),
	} {
		resp, v := respondOnce(t, NewResponder(Config{}), synced, req)
		if v != Answered || len(resp) != ntp.HeaderLen {
			t.Errorf("Respond(%d-byte request) = %v, %d bytes; want answered, 48", len(req), v, len(resp))
		}
	}
}

func TestRespondUnsynchronizedAndLocal(t *testing.T) {
	resp, v := respondOnce(t, NewResponder(Config{}), Unsynchronized(-20), request(4, ntp.ModeClient))
	var h ntp.Header
	if v != Answered || h.Decode(resp) != nil || h.Leap != ntp.LeapUnsync || h.Stratum != 16 {
		t.Errorf("unsynchronized: %v %+v", v, h)
	}
	resp, _ = respondOnce(t, NewResponder(Config{}), Local(10, -20, refTime), request(4, ntp.ModeClient))
	if h.Decode(resp) != nil || h.Leap != ntp.LeapNone || h.Stratum != 10 || h.RefID != (ntp.RefID{127, 127, 1, 1}) {
		t.Errorf("local stratum 10: %+v", h)
	}
}

func TestRespondPollClamped(t *testing.T) {
	for _, tt := range []struct{ in, want int8 }{{-128, -6}, {0, 0}, {10, 10}, {127, 17}} {
		req := request(4, ntp.ModeClient)
		req[2] = byte(tt.in)
		resp, _ := respondOnce(t, NewResponder(Config{}), synced, req)
		if got := int8(resp[2]); got != tt.want {
			t.Errorf("poll %d echoed as %d; want %d", tt.in, got, tt.want)
		}
	}
}

func TestRootDispersionSaturates(t *testing.T) {
	st := *synced
	st.RootDisp = ntp.MaxShort - 1
	if got := st.rootDisp(rxTime.Add(1000 * time.Hour)); got != ntp.MaxShort {
		t.Errorf("rootDisp = %#x; want saturated", uint32(got))
	}
	if got := st.rootDisp(refTime.Add(-time.Hour)); got != st.RootDisp {
		t.Errorf("rootDisp before the reference = %#x", uint32(got))
	}
}

func TestRespondKissOfDeath(t *testing.T) {
	acl := NewACL(nil, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")})
	for _, tt := range []struct {
		name string
		cfg  Config
		want Verdict
		code ntp.RefID
	}{
		{"deny drop", Config{ACL: acl}, DropDenied, ntp.RefID{}},
		{"deny kod", Config{ACL: acl, DenyKoD: true}, KissDeny, ntp.KissDENY},
	} {
		req := request(4, ntp.ModeClient)
		resp, v := respondOnce(t, NewResponder(tt.cfg), synced, req)
		if v != tt.want {
			t.Fatalf("%s: verdict %v; want %v", tt.name, v, tt.want)
		}
		if v.Responds() {
			var h ntp.Header
			if err := h.Decode(resp); err != nil || h.Stratum != 0 || h.RefID != tt.code ||
				h.Origin != 0x1122334455667788 || h.Leap != ntp.LeapUnsync || len(resp) > len(req) {
				t.Errorf("%s: kiss %+v", tt.name, h)
			}
		}
	}
}

func newLimiter(cfg LimitConfig) *Limiter {
	return NewLimiter(cfg, maphash.MakeSeed(), rand.New(rand.NewPCG(1, 2)))
}

// TestRespondZeroAllocs pins the hot path's allocation budget at zero, with
// rate limiting and an access list in use.
func TestRespondZeroAllocs(t *testing.T) {
	acl := NewACL([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")},
		[]netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")})
	r := NewResponder(Config{ACL: acl, Limiter: newLimiter(LimitConfig{TableSize: 1024})})
	req := request(4, ntp.ModeClient)
	dst := make([]byte, 1500)
	addrs := []netip.Addr{client, netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("198.51.100.9")}
	now := mono.Instant(0)
	allocs := testing.AllocsPerRun(1000, func() {
		for _, a := range addrs {
			now += mono.Instant(time.Millisecond)
			n, _ := r.Respond(now, synced, a, rxTime, req, dst)
			StampTransmit(dst[:n], rxTime)
		}
	})
	if allocs != 0 {
		t.Errorf("Respond allocated %.1f times per run; want 0", allocs)
	}
}

func BenchmarkRespond(b *testing.B) {
	r := NewResponder(Config{Limiter: newLimiter(LimitConfig{Interval: time.Nanosecond, Burst: 1 << 20})})
	req := request(4, ntp.ModeClient)
	dst := make([]byte, 1500)
	b.ReportAllocs()
	var now mono.Instant
	for i := 0; b.Loop(); i++ {
		now++
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		n, _ := r.Respond(now, synced, a, rxTime, req, dst)
		StampTransmit(dst[:n], rxTime)
	}
}

// FuzzRespond checks the server's promises on any input: no panic, a
// response never longer than the request, nothing written past the
// response, an answer only to mode 3, and the origin echoed.
func FuzzRespond(f *testing.F) {
	f.Add(request(4, ntp.ModeClient))
	f.Add(request(3, ntp.ModeClient, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16))
	f.Add(request(2, ntp.ModePrivate))
	f.Add(request(4, ntp.ModeClient)[:47])
	f.Fuzz(func(t *testing.T, req []byte) {
		r := NewResponder(Config{})
		dst := bytes.Repeat([]byte{0xA5}, 2048)
		n, v := r.Respond(0, synced, client, rxTime, req, dst)
		if n > len(req) || (n > 0) != v.Responds() {
			t.Fatalf("Respond(%x) = %d, %v", req, n, v)
		}
		if !bytes.Equal(dst[n:], bytes.Repeat([]byte{0xA5}, 2048-n)) {
			t.Fatalf("Respond(%x) wrote past its %d-byte response", req, n)
		}
		if n == 0 {
			return
		}
		if req[0]&7 != 3 || dst[0]&7 != 4 || dst[0]>>3&7 != req[0]>>3&7 {
			t.Fatalf("Respond(%x) answered mode %d version %d with %x", req, req[0]&7, req[0]>>3&7, dst[:n])
		}
		if !bytes.Equal(dst[24:32], req[40:48]) {
			t.Fatalf("origin %x; want the request's transmit %x", dst[24:32], req[40:48])
		}
		if binary.BigEndian.Uint64(dst[32:40]) != uint64(rxTime) {
			t.Fatalf("receive timestamp %x", dst[32:40])
		}
	})
}
