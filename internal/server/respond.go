package server

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"

	"github.com/meridian-ntp/meridian/internal/mono"
	"github.com/meridian-ntp/meridian/internal/ntp"
)

// Verdict is what Respond did with a request.
type Verdict uint8

// Verdicts. Only Answered, Leaked, KissRate and KissDeny produce a response.
const (
	Answered      Verdict = iota // a normal response
	Leaked                       // rate-limited, answered by the leak lottery
	KissRate                     // rate-limited, answered with a kiss-o'-death RATE
	KissDeny                     // denied by the access list, answered with a kiss-o'-death DENY
	DropShort                    // shorter than the 48-byte header
	DropMalformed                // bad extension fields or trailing bytes
	DropVersion                  // version 0 or above 4
	DropMode                     // not a client request (mode 3); counted per mode too
	DropDenied                   // denied by the access list
	DropLimited                  // over the rate limit
	DropBuffer                   // the response buffer is too small (a caller bug)
	numVerdicts
)

var verdictNames = [numVerdicts]string{"answered", "leaked", "kod_rate", "kod_deny",
	"short", "malformed", "version", "mode", "denied", "rate_limited", "buffer"}

// String returns the verdict's name as used in metrics.
func (v Verdict) String() string {
	if v < numVerdicts {
		return verdictNames[v]
	}
	return "unknown"
}

// Responds reports whether v means a response was written.
func (v Verdict) Responds() bool { return v <= KissDeny }

// Counters counts requests by verdict and by mode. Its owner (one worker)
// adds; anyone may read concurrently.
type Counters struct {
	Verdicts [numVerdicts]atomic.Uint64
	Modes    [8]atomic.Uint64 // requests of each mode, answered or not
}

// Snapshot returns the current counts.
func (c *Counters) Snapshot() (verdicts [numVerdicts]uint64, modes [8]uint64) {
	for i := range c.Verdicts {
		verdicts[i] = c.Verdicts[i].Load()
	}
	for i := range c.Modes {
		modes[i] = c.Modes[i].Load()
	}
	return verdicts, modes
}

// Config configures a Responder.
type Config struct {
	// ACL decides which clients are served; nil serves everyone.
	ACL *ACL
	// DenyKoD answers denied clients with a kiss-o'-death DENY (itself
	// rate-limited) instead of silence.
	DenyKoD bool
	// Limiter is the per-client rate limiter; nil disables rate limiting.
	Limiter *Limiter
}

// Responder answers requests. It is not safe for concurrent use: each
// server worker owns one, with its own Limiter.
type Responder struct {
	cfg      Config
	Counters Counters
}

// NewResponder returns a Responder.
func NewResponder(cfg Config) *Responder { return &Responder{cfg: cfg} }

// Poll intervals echoed to clients are clamped to what a client can
// reasonably use (RFC 5905 §7.3 allows 4 to 17; chrony goes down to -6).
const (
	minPoll = -6
	maxPoll = 17
)

// Respond handles request req from client from, received at rx by the
// kernel, at monotonic time now, serving state st. It writes the response
// into dst and returns its length, or 0 if nothing is to be sent, and the
// verdict, which it also counts. The response is never longer than req. Its
// transmit timestamp is zero: stamp it with StampTransmit just before
// sending. Respond allocates nothing.
func (r *Responder) Respond(now mono.Instant, st *State, from netip.Addr, rx ntp.Time, req, dst []byte) (int, Verdict) {
	n, v := r.respond(now, st, from, rx, req, dst)
	r.Counters.Verdicts[v].Add(1)
	return n, v
}

func (r *Responder) respond(now mono.Instant, st *State, from netip.Addr, rx ntp.Time, req, dst []byte) (int, Verdict) {
	if len(req) < ntp.HeaderLen {
		return 0, DropShort
	}
	mode := ntp.Mode(req[0] & 7)
	r.Counters.Modes[mode].Add(1)
	if mode != ntp.ModeClient {
		// Modes 6 and 7 (ntpq, ntpdc, monlist) and symmetric and broadcast
		// modes are never answered: no amplification, no remote control.
		return 0, DropMode
	}
	var p ntp.Packet
	if err := p.Decode(req); err != nil {
		return 0, DropMalformed
	}
	if p.Version == 0 || p.Version > 4 {
		return 0, DropVersion
	}
	if len(dst) < ntp.HeaderLen {
		return 0, DropBuffer
	}
	kiss := ntp.RefID{}
	verdict := Answered
	if r.cfg.ACL.Check(from) == Deny {
		if !r.cfg.DenyKoD || r.limit(now, from) == LimitDrop {
			return 0, DropDenied
		}
		kiss, verdict = ntp.KissDENY, KissDeny
	} else {
		switch r.limit(now, from) {
		case LimitLeak:
			verdict = Leaked
		case LimitKiss:
			kiss, verdict = ntp.KissRATE, KissRate
		case LimitDrop:
			return 0, DropLimited
		}
	}
	h := ntp.Header{
		Leap: st.Leap, Version: p.Version, Mode: ntp.ModeServer, Stratum: st.Stratum,
		Poll: min(max(p.Poll, minPoll), maxPoll), Precision: st.Precision,
		RootDelay: st.RootDelay, RootDisp: st.rootDisp(rx), RefID: st.RefID,
		Reference: st.Reference, Origin: p.Transmit, Receive: rx,
	}
	if verdict == KissRate || verdict == KissDeny {
		h.MakeKiss(kiss)
	}
	n, err := h.Encode(dst)
	if err != nil {
		return 0, DropBuffer
	}
	return n, verdict
}

// limit consults the rate limiter, if any.
func (r *Responder) limit(now mono.Instant, from netip.Addr) Limit {
	if r.cfg.Limiter == nil {
		return LimitPass
	}
	return r.cfg.Limiter.Check(now, from)
}

// StampTransmit sets the transmit timestamp of a response written by
// Respond. Call it as late as possible before the response is sent.
func StampTransmit(resp []byte, t ntp.Time) {
	if len(resp) >= ntp.HeaderLen {
		binary.BigEndian.PutUint64(resp[40:48], uint64(t))
	}
}
