package source

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/ntp"
)

var (
	base = ntp.TimeFrom(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	xmt  = ntp.Time(0x0123456789ABCDEF) // the random transmit value
)

// reply builds a server reply to xmt; the server clock runs 10 ms ahead,
// the network takes 2 ms each way and the server holds the request 1 ms.
func reply(mod func(*ntp.Header)) []byte {
	h := ntp.Header{Version: 4, Mode: ntp.ModeServer, Stratum: 2, Poll: 6, Precision: -20,
		RefID: ntp.RefID{192, 0, 2, 1}, Reference: base.Add(-time.Minute), Origin: xmt,
		Receive:  base.Add(12 * time.Millisecond),
		Transmit: base.Add(13 * time.Millisecond)}
	if mod != nil {
		mod(&h)
	}
	b := make([]byte, ntp.HeaderLen)
	if _, err := h.Encode(b); err != nil {
		panic(err)
	}
	return b
}

var (
	t1 = base                           // local send time
	t4 = base.Add(5 * time.Millisecond) // local receive time
)

func TestRequestLeaksNothing(t *testing.T) {
	b, err := Request(make([]byte, 64), xmt)
	if err != nil || len(b) != ntp.HeaderLen {
		t.Fatalf("Request = %d bytes, %v", len(b), err)
	}
	want := make([]byte, ntp.HeaderLen)
	want[0] = 4<<3 | 3 // LI 0, VN 4, mode 3
	copy(want[40:], []byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF})
	if !bytes.Equal(b, want) {
		t.Errorf("Request(%#x) = %x; want %x", uint64(xmt), b, want)
	}
	if _, err := Request(make([]byte, 10), xmt); err == nil {
		t.Error("Request into 10 bytes succeeded")
	}
}

func TestCheckReplyMeasures(t *testing.T) {
	s, err := CheckReply(reply(nil), xmt, t1, t4)
	if err != nil {
		t.Fatal(err)
	}
	if s.Offset != 10*time.Millisecond || s.Delay != 4*time.Millisecond {
		t.Errorf("offset %v delay %v; want 10ms 4ms", s.Offset, s.Delay)
	}
	if s.Header.Stratum != 2 || s.Header.RefID != (ntp.RefID{192, 0, 2, 1}) {
		t.Errorf("header not carried: %+v", s.Header)
	}
}

// TestCheckReplyRejects covers THREATS C1, C2, C4 and C10.
func TestCheckReplyRejects(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		xmt  ntp.Time
		want error
	}{
		{"short", reply(nil)[:47], xmt, ErrMalformed},
		{"trailing junk", append(reply(nil), 1, 2, 3), xmt, ErrMalformed},
		{"client mode", reply(func(h *ntp.Header) { h.Mode = ntp.ModeClient }), xmt, ErrMode},
		{"broadcast mode", reply(func(h *ntp.Header) { h.Mode = ntp.ModeBroadcast }), xmt, ErrMode},
		{"control mode", reply(func(h *ntp.Header) { h.Mode = ntp.ModeControl }), xmt, ErrMode},
		{"bogus origin (C1)", reply(func(h *ntp.Header) { h.Origin = xmt + 1 }), xmt, ErrOrigin},
		{"zero origin (C2)", reply(func(h *ntp.Header) { h.Origin = 0 }), xmt, ErrOrigin},
		{"no request outstanding (C2)", reply(func(h *ntp.Header) { h.Origin = 0 }), 0, ErrOrigin},
		{"spoofed KoD (C4)", reply(func(h *ntp.Header) { h.Stratum = 0; h.RefID = ntp.KissDENY; h.Origin = 42 }), xmt, ErrOrigin},
		{"KoD RATE", reply(func(h *ntp.Header) { h.Stratum = 0; h.RefID = ntp.KissRATE }), xmt, KissError{Code: ntp.KissRATE}},
		{"KoD DENY", reply(func(h *ntp.Header) { h.Stratum = 0; h.RefID = ntp.KissDENY }), xmt, KissError{Code: ntp.KissDENY}},
		{"KoD RSTR", reply(func(h *ntp.Header) { h.Stratum = 0; h.RefID = ntp.KissRSTR; h.Leap = ntp.LeapUnsync }), xmt, KissError{Code: ntp.KissRSTR}},
		{"status INIT is not a KoD", reply(func(h *ntp.Header) { h.Stratum = 0; h.RefID = ntp.RefID{'I', 'N', 'I', 'T'}; h.Leap = ntp.LeapUnsync }), xmt, ErrUnsynchronized},
		{"stratum 0 unknown code", reply(func(h *ntp.Header) { h.Stratum = 0; h.RefID = ntp.RefID{'S', 'T', 'E', 'P'} }), xmt, ErrUnsynchronized},
		{"version 0", reply(func(h *ntp.Header) { h.Version = 0 }), xmt, ErrVersion},
		{"version 5", reply(func(h *ntp.Header) { h.Version = 5 }), xmt, ErrVersion},
		{"leap 3 (C10)", reply(func(h *ntp.Header) { h.Leap = ntp.LeapUnsync }), xmt, ErrUnsynchronized},
		{"stratum 16 (C10)", reply(func(h *ntp.Header) { h.Stratum = 16 }), xmt, ErrUnsynchronized},
		{"stratum 255 (C10)", reply(func(h *ntp.Header) { h.Stratum = 255 }), xmt, ErrUnsynchronized},
		{"zero receive", reply(func(h *ntp.Header) { h.Receive = 0 }), xmt, ErrTimestamps},
		{"zero transmit", reply(func(h *ntp.Header) { h.Transmit = 0 }), xmt, ErrTimestamps},
		{"transmit before receive", reply(func(h *ntp.Header) { h.Transmit = h.Receive.Add(-time.Millisecond) }), xmt, ErrTimestamps},
		{"held longer than the round trip", reply(func(h *ntp.Header) { h.Transmit = h.Receive.Add(6 * time.Millisecond) }), xmt, ErrTimestamps},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CheckReply(tt.b, tt.xmt, t1, t4)
			if !errors.Is(err, tt.want) {
				t.Errorf("CheckReply(%x) = %v; want %v", tt.b, err, tt.want)
			}
		})
	}
}

func TestUnsyncErrorText(t *testing.T) {
	tests := []struct {
		mod  func(*ntp.Header)
		want string
	}{
		{func(h *ntp.Header) { h.Leap = ntp.LeapUnsync }, "server is not synchronized: leap 3, stratum 2"},
		{func(h *ntp.Header) { h.Stratum = 16 }, "server is not synchronized: leap 0, stratum 16"},
		{func(h *ntp.Header) { h.Stratum, h.Leap, h.RefID = 0, ntp.LeapUnsync, ntp.RefID{'I', 'N', 'I', 'T'} },
			"server is not synchronized: leap 3, stratum 0, status INIT"},
	}
	for _, tt := range tests {
		_, err := CheckReply(reply(tt.mod), xmt, t1, t4)
		if err == nil || err.Error() != tt.want || !errors.Is(err, ErrUnsynchronized) {
			t.Errorf("CheckReply error %v; want %q, matching ErrUnsynchronized", err, tt.want)
		}
	}
}

func TestReasonText(t *testing.T) {
	for r := ErrMalformed; r <= ErrTimestamps; r++ {
		if r.Error() == "" || r.Error()[0] == 'R' {
			t.Errorf("Reason %d has no text", r)
		}
	}
	if Reason(200).Error() != "Reason(200)" {
		t.Error("unknown reason text")
	}
	if !ErrOrigin.Bogus() || ErrUnsynchronized.Bogus() {
		t.Error("Bogus classification wrong")
	}
	if got := (KissError{Code: ntp.KissRATE}).Error(); got != "kiss-o'-death RATE: rate limit exceeded, poll less often" {
		t.Errorf("KissError text %q", got)
	}
}

// FuzzCheckReply feeds arbitrary replies: no panic, and an accepted reply
// always matches the request and yields a non-negative delay.
func FuzzCheckReply(f *testing.F) {
	f.Add(reply(nil))
	f.Add(reply(func(h *ntp.Header) { h.Stratum = 0; h.RefID = ntp.KissRATE }))
	f.Add(reply(func(h *ntp.Header) { h.Receive = ^ntp.Time(0) }))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := CheckReply(b, xmt, t1, t4)
		if err != nil {
			return
		}
		var p ntp.Packet
		if p.Decode(b) != nil || p.Origin != xmt || p.Mode != ntp.ModeServer || s.Delay < 0 {
			t.Fatalf("CheckReply(%x) accepted %+v", b, s)
		}
	})
}

// TestCheckReplyExtremeFields covers THREATS A8 and A9 on the client side:
// extreme poll, precision, root delay and dispersion values and edge
// timestamps are carried without overflow or panic.
func TestCheckReplyExtremeFields(t *testing.T) {
	for _, mod := range []func(*ntp.Header){
		func(h *ntp.Header) { h.Poll, h.Precision = -128, 127 },
		func(h *ntp.Header) { h.Poll, h.Precision = 127, -128 },
		func(h *ntp.Header) { h.RootDelay, h.RootDisp = ntp.MaxShort, ntp.MaxShort },
		func(h *ntp.Header) { h.Reference = ^ntp.Time(0) },
		func(h *ntp.Header) { h.Reference = 0 },
	} {
		b := reply(mod)
		s, err := CheckReply(b, xmt, t1, t4)
		if err != nil {
			t.Fatalf("CheckReply(%x) = %v", b, err)
		}
		var want ntp.Header
		if err := want.Decode(b); err != nil || s.Header != want {
			t.Errorf("CheckReply(%x) header %+v; want %+v", b, s.Header, want)
		}
	}
	if ntp.Log2Duration(127) != (1<<33)*time.Second || ntp.Log2Duration(-128) != 0 {
		t.Error("Log2Duration does not saturate")
	}
	s, err := CheckReply(reply(func(h *ntp.Header) { h.RootDelay, h.RootDisp = ntp.MaxShort, ntp.MaxShort }), xmt, t1, t4)
	if err != nil || s.Header.RootDistance() != ntp.MaxShort {
		t.Errorf("root distance of maximal delay and dispersion = %#x, %v; want saturated", uint32(s.Header.RootDistance()), err)
	}
	// Timestamps that straddle the 2036 era boundary still give the right
	// offset and delay.
	era := ntp.TimeFrom(time.Date(2036, 2, 7, 6, 28, 15, 999_000_000, time.UTC))
	b := reply(func(h *ntp.Header) {
		h.Receive, h.Transmit = era.Add(3*time.Millisecond), era.Add(4*time.Millisecond)
	})
	s, err = CheckReply(b, xmt, era, era.Add(5*time.Millisecond))
	if err != nil || s.Offset != time.Millisecond || s.Delay != 4*time.Millisecond {
		t.Errorf("across the era: offset %v delay %v err %v; want 1ms 4ms", s.Offset, s.Delay, err)
	}
}
