package source

import (
	"strconv"
	"time"

	"github.com/meridian-ntp/meridian/internal/ntp"
)

// Reason is why a reply was not accepted. It is an error; compare with
// errors.Is.
type Reason uint8

// Reasons for rejecting a reply, in the order the checks run.
const (
	// ErrMalformed: the reply does not decode (see package ntp).
	ErrMalformed Reason = iota + 1
	// ErrMode: the reply is not a server reply (mode 4).
	ErrMode
	// ErrOrigin: the origin timestamp is not the transmit timestamp of the
	// request, so the reply is bogus, spoofed or stale (RFC 5905 §8).
	ErrOrigin
	// ErrVersion: the reply's version is 0 or above 4.
	ErrVersion
	// ErrUnsynchronized: the server says its clock is not synchronized
	// (leap indicator 3, stratum 16 and above, or stratum 0 with a status
	// code such as INIT rather than a kiss-o'-death code).
	ErrUnsynchronized
	// ErrTimestamps: the receive or transmit timestamp is zero, or the
	// server claims to have held the request longer than the round trip.
	ErrTimestamps
)

var reasonText = [...]string{
	ErrMalformed:      "malformed reply",
	ErrMode:           "reply is not in server mode",
	ErrOrigin:         "origin timestamp does not match the request",
	ErrVersion:        "unsupported version in reply",
	ErrUnsynchronized: "server is not synchronized",
	ErrTimestamps:     "reply timestamps are inconsistent",
}

// Error returns a description of r.
func (r Reason) Error() string {
	if int(r) < len(reasonText) && reasonText[r] != "" {
		return reasonText[r]
	}
	return "Reason(" + strconv.Itoa(int(r)) + ")"
}

// Bogus reports whether r means the reply cannot be from the server's
// answer to the request (wrong mode, malformed, or not matching the
// origin), so that a client should keep waiting for the genuine reply
// rather than give up on the request (RFC 5905 §8).
func (r Reason) Bogus() bool { return r == ErrMalformed || r == ErrMode || r == ErrOrigin }

// KissError is a kiss-o'-death reply (RFC 5905 §7.4) to our request.
type KissError struct {
	Code ntp.RefID
}

// Error describes the kiss code.
func (k KissError) Error() string {
	s := "kiss-o'-death " + k.Code.Text(0)
	switch k.Code {
	case ntp.KissRATE:
		s += ": rate limit exceeded, poll less often"
	case ntp.KissDENY:
		s += ": access denied"
	case ntp.KissRSTR:
		s += ": access restricted"
	case ntp.KissNTSN:
		s += ": NTS negative acknowledgement"
	}
	return s
}

// isKissOfDeath reports whether code asks the client to stop or slow down
// (RFC 5905 §7.4, RFC 8915 §5.7). Other stratum-0 codes, such as the INIT
// that servers send before their first synchronization, only report status.
func isKissOfDeath(code ntp.RefID) bool {
	return code == ntp.KissRATE || code == ntp.KissDENY || code == ntp.KissRSTR || code == ntp.KissNTSN
}

// UnsyncError is a reply from a server that says it is not synchronized.
// errors.Is(err, ErrUnsynchronized) holds for it.
type UnsyncError struct {
	Leap    ntp.Leap
	Stratum uint8
	Code    ntp.RefID // the status code of a stratum-0 reply, such as INIT
}

// Error says what the server reported.
func (u UnsyncError) Error() string {
	s := "server is not synchronized: leap " + strconv.Itoa(int(u.Leap)) + ", stratum " + strconv.Itoa(int(u.Stratum))
	if u.Stratum == 0 {
		if code := u.Code.Text(0); code != "" {
			s += ", status " + code
		}
	}
	return s
}

// Is makes errors.Is(err, ErrUnsynchronized) true.
func (u UnsyncError) Is(target error) bool { return target == ErrUnsynchronized }

// Request writes a client request into dst and returns the 48 bytes it
// used. All fields but version (4), mode (3) and the transmit timestamp are
// zero, so the request reveals nothing about the client's clock or state;
// xmt should be random, so that a reply's origin timestamp proves the reply
// answers this request and an off-path attacker cannot guess it.
func Request(dst []byte, xmt ntp.Time) ([]byte, error) {
	h := ntp.Header{Version: 4, Mode: ntp.ModeClient, Transmit: xmt}
	n, err := h.Encode(dst)
	if err != nil {
		return nil, err
	}
	return dst[:n], nil
}

// Sample is one measurement from a valid reply.
type Sample struct {
	// Offset is the server's clock minus ours, RFC 5905's theta.
	Offset time.Duration
	// Delay is the round-trip delay, RFC 5905's delta.
	Delay time.Duration
	// Header is the reply's header.
	Header ntp.Header
}

// CheckReply validates reply b to a request whose random transmit timestamp
// was xmt, sent at local time t1 and received at local time t4 (readings of
// the local clock, not xmt), and returns the measurement. The error is a
// Reason, a KissError or an UnsyncError. Kiss codes are reported only for replies whose
// origin matches, so a spoofed kiss-o'-death is merely bogus. A stratum-0
// reply with any other code (INIT, STEP, ...) is ErrUnsynchronized.
func CheckReply(b []byte, xmt, t1, t4 ntp.Time) (Sample, error) {
	var p ntp.Packet
	if err := p.Decode(b); err != nil {
		return Sample{}, ErrMalformed
	}
	h := p.Header
	switch {
	case h.Mode != ntp.ModeServer:
		return Sample{}, ErrMode
	case xmt.IsZero() || h.Origin != xmt:
		return Sample{}, ErrOrigin
	case h.IsKiss() && isKissOfDeath(h.RefID):
		return Sample{}, KissError{Code: h.RefID}
	case h.Version == 0 || h.Version > 4:
		return Sample{}, ErrVersion
	case h.Leap == ntp.LeapUnsync || h.Stratum == 0 || h.Stratum >= ntp.MaxStratum:
		return Sample{}, UnsyncError{Leap: h.Leap, Stratum: h.Stratum, Code: h.RefID}
	case h.Receive.IsZero() || h.Transmit.IsZero():
		return Sample{}, ErrTimestamps
	}
	// RFC 5905 §8: T1..T4 are t1, receive, transmit, t4.
	held := h.Transmit.Sub(h.Receive)
	delay := t4.Sub(t1) - held
	if held < 0 || delay < 0 {
		return Sample{}, ErrTimestamps
	}
	offset := (h.Receive.Sub(t1) + h.Transmit.Sub(t4)) / 2
	return Sample{Offset: offset, Delay: delay, Header: h}, nil
}
