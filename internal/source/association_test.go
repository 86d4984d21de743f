package source

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/mono"
	"github.com/meridian-ntp/meridian/internal/ntp"
)

// kissReply returns a server's reply to a request whose transmit value was
// origin.
func kissReply(t *testing.T, origin ntp.Time, stratum uint8, refID ntp.RefID) []byte {
	t.Helper()
	h := ntp.Header{Leap: ntp.LeapNone, Version: 4, Mode: ntp.ModeServer, Stratum: stratum, RefID: refID,
		Origin: origin, Receive: ntp.Time(10 << 32), Transmit: ntp.Time(10<<32 + 1000)}
	if stratum == 0 {
		h.Leap = ntp.LeapUnsync
	}
	b := make([]byte, 48)
	if _, err := h.Encode(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func newAssoc(iburst bool) *Association {
	return NewAssociation(AssocConfig{IBurst: iburst}, rand.New(rand.NewPCG(1, 2)), 0)
}

const poll = 64 * time.Second

func TestAssociationRequests(t *testing.T) {
	a := newAssoc(true)
	buf := make([]byte, 48)
	now := mono.Instant(0)
	var intervals []time.Duration
	seen := map[ntp.Time]bool{}
	for range 6 {
		req := a.HandleTimer(now, ntp.Time(9<<32), poll, buf)
		if len(req) != 48 {
			t.Fatalf("request %x; want 48 bytes", req)
		}
		var p ntp.Packet
		if err := p.Decode(req); err != nil || p.Mode != ntp.ModeClient || p.Version != 4 || p.Transmit == 0 {
			t.Fatalf("request %+v, %v; want mode 3, version 4, a transmit value", p.Header, err)
		}
		// THREATS C8: nothing but the version, the mode and the random
		// transmit value.
		for i, b := range req[:40] {
			if i > 0 && b != 0 {
				t.Fatalf("request byte %d is %#x; want 0: %x", i, b, req)
			}
		}
		if seen[p.Transmit] {
			t.Fatalf("transmit value %v reused", p.Transmit)
		}
		seen[p.Transmit] = true
		if a.HandleTimer(now, 0, poll, buf) != nil {
			t.Fatal("a second request before the next is due")
		}
		intervals = append(intervals, a.Next().Sub(now))
		now = a.Next()
	}
	want := []time.Duration{2 * time.Second, 2 * time.Second, 2 * time.Second, poll, poll, poll}
	for i := range want {
		if intervals[i] != want[i] {
			t.Errorf("intervals %v; want %v (iburst: four requests 2 s apart)", intervals, want)
			break
		}
	}
}

// TestAssociationOnWire: THREATS C1-C4.
func TestAssociationOnWire(t *testing.T) {
	a := newAssoc(false)
	buf := make([]byte, 48)
	if _, err := a.HandleResponse(0, kissReply(t, 12345, 2, ntp.RefID{1, 2, 3, 4}), ntp.Time(11<<32)); !errors.Is(err, ErrNoRequest) {
		t.Errorf("reply before any request: %v; want ErrNoRequest (C2)", err)
	}
	req := a.HandleTimer(0, ntp.Time(9<<32), poll, buf)
	var p ntp.Packet
	if err := p.Decode(req); err != nil {
		t.Fatal(err)
	}
	xmt := p.Transmit
	if _, err := a.HandleResponse(0, kissReply(t, xmt+1, 2, ntp.RefID{1, 2, 3, 4}), ntp.Time(11<<32)); !errors.Is(err, ErrOrigin) {
		t.Errorf("reply with a bogus origin: %v; want ErrOrigin (C1)", err)
	}
	if _, err := a.HandleResponse(0, kissReply(t, xmt+1, 0, ntp.KissDENY), ntp.Time(11<<32)); !errors.Is(err, ErrOrigin) || a.backoff != 0 {
		t.Errorf("spoofed kiss: %v, back-off %d; want ErrOrigin, none (C4)", err, a.backoff)
	}
	s, err := a.HandleResponse(0, kissReply(t, xmt, 2, ntp.RefID{1, 2, 3, 4}), ntp.Time(11<<32))
	if err != nil || s.Header.Stratum != 2 {
		t.Fatalf("genuine reply: %+v, %v; want a sample (the bogus ones before it did not consume the request)", s, err)
	}
	if _, err := a.HandleResponse(0, kissReply(t, xmt, 2, ntp.RefID{1, 2, 3, 4}), ntp.Time(11<<32)); !errors.Is(err, ErrNoRequest) {
		t.Errorf("replayed reply: %v; want ErrNoRequest (C3)", err)
	}
	a.HandleTimer(a.Next(), ntp.Time(20<<32), poll, buf)
	if _, err := a.HandleResponse(0, kissReply(t, xmt, 2, ntp.RefID{1, 2, 3, 4}), ntp.Time(21<<32)); !errors.Is(err, ErrOrigin) {
		t.Errorf("the old reply after a new request: %v; want ErrOrigin (C3)", err)
	}
	if a.Reach() != 0b1 {
		t.Errorf("reach %08b; want 1 (the answered request; the new one is pending)", a.Reach())
	}
}

// TestAssociationKiss: THREATS C5, C6. A RATE kiss backs off step by step
// up to the longest poll and no further; DENY goes straight there; the
// association keeps polling, and the back-off wears off.
func TestAssociationKiss(t *testing.T) {
	a := newAssoc(false)
	buf := make([]byte, 48)
	now := mono.Instant(0)
	send := func() ntp.Time {
		t.Helper()
		now = a.Next()
		var p ntp.Packet
		if err := p.Decode(a.HandleTimer(now, ntp.Time(9<<32), poll, buf)); err != nil {
			t.Fatal(err)
		}
		return p.Transmit
	}
	var gaps []time.Duration
	for range 7 {
		x := send()
		if _, err := a.HandleResponse(now, kissReply(t, x, 0, ntp.KissRATE), ntp.Time(11<<32)); err == nil {
			t.Fatal("a kiss gave a sample")
		}
		gaps = append(gaps, a.Next().Sub(now))
	}
	want := []time.Duration{64, 128, 256, 512, 1024, 1024, 1024}
	for i := range want {
		if gaps[i] != want[i]*time.Second {
			t.Errorf("intervals after RATE kisses %v; want %v s", gaps, want)
			break
		}
	}
	for range 8 * 5 {
		x := send()
		if _, err := a.HandleResponse(now, kissReply(t, x, 2, ntp.RefID{1, 2, 3, 4}), ntp.Time(11<<32)); err != nil {
			t.Fatal(err)
		}
	}
	if a.backoff != 0 {
		t.Errorf("back-off %d after 40 valid replies; want worn off", a.backoff)
	}
	x := send()
	a.HandleResponse(now, kissReply(t, x, 0, ntp.KissDENY), ntp.Time(11<<32))
	if got := a.Next().Sub(now); got != 1024*time.Second || a.Kisses[ntp.KissDENY] != 1 {
		t.Errorf("after DENY: next in %v, kisses %v; want 1024 s, one DENY", got, a.Kisses)
	}
}

// TestTransmitValuesUnpredictable: THREATS C9, with the daemon's
// generator: 10 000 values, no repeat, every bit set about half the time.
func TestTransmitValuesUnpredictable(t *testing.T) {
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(i * 7)
	}
	a := NewAssociation(AssocConfig{}, rand.NewChaCha8(seed), 0)
	buf := make([]byte, 48)
	seen := map[ntp.Time]bool{}
	var ones [64]int
	now := mono.Instant(0)
	for range 10000 {
		var p ntp.Packet
		if err := p.Decode(a.HandleTimer(now, 0, time.Second, buf)); err != nil {
			t.Fatal(err)
		}
		now = a.Next()
		if seen[p.Transmit] {
			t.Fatalf("transmit value %v repeated", p.Transmit)
		}
		seen[p.Transmit] = true
		for b := range 64 {
			ones[b] += int(uint64(p.Transmit) >> b & 1)
		}
	}
	for b, n := range ones {
		if n < 4700 || n > 5300 {
			t.Errorf("bit %d set in %d of 10000 transmit values; want about half", b, n)
		}
	}
}

// TestAssociationSent: the send time recorded after the request was built
// is what the delay is measured from; after the reply, it changes
// nothing.
func TestAssociationSent(t *testing.T) {
	a := newAssoc(false)
	req := a.HandleTimer(0, ntp.Time(9<<32), poll, make([]byte, 48))
	var p ntp.Packet
	if err := p.Decode(req); err != nil {
		t.Fatal(err)
	}
	a.Sent(ntp.Time(10<<32 - 1<<31)) // half a second later than HandleTimer said
	// The server received at 10 s and sent at 10 s + 1000/2^32; the reply
	// arrives at 10.5 s: from the corrected send time (9.5 s) the delay
	// is 1 s, not the 1.5 s HandleTimer's time would give.
	s, err := a.HandleResponse(0, kissReply(t, p.Transmit, 2, ntp.RefID{1, 2, 3, 4}), ntp.Time(10<<32+1<<31))
	if err != nil || (s.Delay-time.Second).Abs() > time.Microsecond {
		t.Errorf("sample %+v, %v; want a delay of 1 s", s, err)
	}
	a.Sent(ntp.Time(1 << 32))
	if a.t1 != ntp.Time(10<<32-1<<31) {
		t.Errorf("Sent after the reply changed the send time to %v", a.t1)
	}
}
