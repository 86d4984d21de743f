package server

import (
	"net/netip"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/mono"
	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/source"
)

func TestMirror(t *testing.T) {
	m := &Mirror{UnsyncAfter: time.Minute, Precision: -20}
	up := netip.MustParseAddr("127.0.0.1")
	if st := m.Failure(0); st.Leap != ntp.LeapUnsync || st.Stratum != 16 {
		t.Fatalf("before any sample: %+v", st)
	}
	s := source.Sample{Offset: -300 * time.Microsecond, Delay: 100 * time.Microsecond, Header: ntp.Header{
		Leap: ntp.LeapInsert, Stratum: 3, Precision: -24,
		RootDelay: ntp.ShortFrom(10 * time.Millisecond), RootDisp: ntp.ShortFrom(2 * time.Millisecond)}}
	st := m.Sample(mono.Instant(time.Second), up, s, rxTime)
	wantDisp := ntp.ShortFrom(2*time.Millisecond + 300*time.Microsecond + ntp.Log2Duration(-24) + ntp.Log2Duration(-20))
	want := State{Leap: ntp.LeapInsert, Stratum: 4, Precision: -20, RefID: ntp.RefID{127, 0, 0, 1}, Reference: rxTime,
		RootDelay: ntp.ShortFrom(10*time.Millisecond + 100*time.Microsecond), RootDisp: wantDisp}
	if *st != want {
		t.Errorf("Sample state\n got %+v\nwant %+v", *st, want)
	}
	if got := m.Failure(mono.Instant(30 * time.Second)); got != st {
		t.Errorf("failure within UnsyncAfter: %+v; want the last state", got)
	}
	if got := m.Failure(mono.Instant(61 * time.Second)); got.Leap != ntp.LeapUnsync {
		t.Errorf("failure after UnsyncAfter: %+v; want unsynchronized", got)
	}
	// An upstream at stratum 15 cannot be mirrored: we would be 16.
	s.Header.Stratum = 15
	m2 := &Mirror{UnsyncAfter: time.Minute}
	if st := m2.Sample(0, up, s, rxTime); st.Leap != ntp.LeapUnsync {
		t.Errorf("stratum 15 upstream: %+v", st)
	}
	if st := m.Sample(mono.Instant(62*time.Second), netip.MustParseAddr("::1"), source.Sample{Header: ntp.Header{Stratum: 1}}, rxTime); st.RefID != ntp.RefIDFromAddr(netip.IPv6Loopback()) || st.Stratum != 2 {
		t.Errorf("IPv6 upstream: %+v", st)
	}
}
