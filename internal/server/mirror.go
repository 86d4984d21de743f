package server

import (
	"net/netip"
	"time"

	"github.com/meridian-ntp/meridian/internal/mono"
	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/source"
)

// Mirror turns measurements of one upstream server into the State a mirror
// serves: the upstream's time, one stratum further away, with the error
// bounds grown by what the measurement adds. The mirror does not steer its
// clock; it serves its own clock and vouches for it only as far as the
// measured offset allows. A Mirror is not safe for concurrent use.
type Mirror struct {
	// UnsyncAfter is how long the mirror keeps serving its last good state
	// when the upstream is unreachable or unsynchronized.
	UnsyncAfter time.Duration
	// Precision is the log2 precision of the local clock, in seconds.
	Precision int8

	last     *State
	lastGood mono.Instant
}

// Sample returns the State to serve after a valid measurement s of the
// upstream at addr, made at monotonic time now; local is the local clock's
// reading when the reply arrived.
func (m *Mirror) Sample(now mono.Instant, addr netip.Addr, s source.Sample, local ntp.Time) *State {
	h := s.Header
	if h.Stratum+1 >= ntp.MaxStratum {
		return m.Failure(now)
	}
	offset := s.Offset
	if offset < 0 {
		offset = -offset
	}
	// The local clock differs from the upstream by offset, known to within
	// the precisions of both clocks; the delay is added to the root delay.
	disp := h.RootDisp.Duration() + offset + ntp.Log2Duration(h.Precision) + ntp.Log2Duration(m.Precision)
	m.last = &State{
		Leap:      h.Leap,
		Stratum:   h.Stratum + 1,
		Precision: m.Precision,
		RefID:     ntp.RefIDFromAddr(addr),
		Reference: local,
		RootDelay: ntp.ShortCeil(h.RootDelay.Duration() + s.Delay),
		RootDisp:  ntp.ShortCeil(disp),
	}
	m.lastGood = now
	return m.last
}

// Failure returns the State to serve after a failed poll at now: the last
// good state until UnsyncAfter has passed since it was measured (its root
// dispersion keeps growing with its age as clients are answered), then
// unsynchronized.
func (m *Mirror) Failure(now mono.Instant) *State {
	if m.last == nil || now.Sub(m.lastGood) >= m.UnsyncAfter {
		return Unsynchronized(m.Precision)
	}
	return m.last
}
