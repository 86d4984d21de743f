package source

import (
	"errors"
	"time"

	"github.com/meridian-ntp/meridian/internal/mono"
	"github.com/meridian-ntp/meridian/internal/ntp"
)

// Rand is the randomness an Association needs: unpredictable 64-bit
// values for its transmit timestamps. The daemon gives it a
// cryptographically strong generator (math/rand/v2's ChaCha8 seeded from
// crypto/rand), the simulator a seeded one.
type Rand interface {
	Uint64() uint64
}

// AssocConfig configures an Association.
type AssocConfig struct {
	// IBurst sends the first IBurstCount requests IBurstInterval apart,
	// so that the clock can be set within seconds of start.
	IBurst bool
	// MaxPoll bounds the back-off a kiss-o'-death RATE, DENY or RSTR
	// asks for, log2 seconds (default 10).
	MaxPoll int8
}

// Burst at start (chrony's iburst: four requests two seconds apart).
const (
	IBurstCount    = 4
	IBurstInterval = 2 * time.Second
)

// backoffDecay is how many valid replies take a kiss-o'-death's back-off
// down by one step.
const backoffDecay = 8

// Reach bits: the last eight polls, newest in bit 0 (RFC 5905 §13).
type Reach uint8

// Association is the client side of one server: it sends requests at the
// poll interval the caller gives it, checks every reply against the
// request outstanding (THREATS C1-C3, C10), turns valid replies into
// measurements and backs off on a kiss-o'-death (C4-C6). It performs no
// I/O; it is not safe for concurrent use.
type Association struct {
	cfg  AssocConfig
	rand Rand

	next   mono.Instant // when to send the next request
	burst  int          // burst requests still to send
	xmt    ntp.Time     // transmit value of the request outstanding, 0 if none
	t1     ntp.Time     // local time at which it was sent
	answer bool         // the outstanding request has been answered
	reach  Reach
	// backoff is the least poll interval a kiss-o'-death imposed, log2 s;
	// okRun counts the valid replies since, which wear it off.
	backoff int8
	okRun   int
	// Kisses counts the kisses-o'-death received, by code.
	Kisses map[ntp.RefID]int
}

// NewAssociation returns an Association whose first request is due at
// now.
func NewAssociation(cfg AssocConfig, rand Rand, now mono.Instant) *Association {
	if cfg.MaxPoll == 0 {
		cfg.MaxPoll = 10
	}
	a := &Association{cfg: cfg, rand: rand, next: now, Kisses: map[ntp.RefID]int{}}
	if cfg.IBurst {
		a.burst = IBurstCount
	}
	return a
}

// Next returns when HandleTimer must next be called.
func (a *Association) Next() mono.Instant { return a.next }

// Reach returns the reach register.
func (a *Association) Reach() Reach { return a.reach }

// HandleTimer sends the next request if it is due: it writes it into dst
// and returns it (nil if nothing is due), with wall the local clock's time
// now, which becomes the request's send time. poll is the interval until
// the following request, as the clock discipline wants it; a kiss-o'-death
// may lengthen it. An unanswered previous request counts as lost.
func (a *Association) HandleTimer(now mono.Instant, wall ntp.Time, poll time.Duration, dst []byte) []byte {
	if now.Before(a.next) {
		return nil
	}
	a.reach <<= 1
	if a.answer {
		a.reach |= 1
	}
	// A random transmit value, never zero, which a reply must echo: an
	// off-path attacker cannot guess it, and it says nothing about our
	// clock (RFC 9109, draft-ietf-ntp-data-minimization).
	x := ntp.Time(a.rand.Uint64())
	for x == 0 {
		x = ntp.Time(a.rand.Uint64())
	}
	req, err := Request(dst, x)
	if err != nil {
		return nil // dst too small: a caller bug; nothing is sent
	}
	a.xmt, a.t1, a.answer = x, wall, false
	interval := poll
	if a.burst > 0 {
		a.burst--
		if a.burst > 0 {
			interval = IBurstInterval
		}
	}
	if min := time.Duration(1<<a.backoff) * time.Second; a.backoff > 0 && interval < min {
		interval = min
	}
	a.next = now.Add(interval)
	return req
}

// Sent records t1, the local clock's time just before the outstanding
// request actually left (HandleTimer took its send time earlier, before
// the caller had a socket to send it from). The request carries a random
// transmit value, not t1, so it need not change.
func (a *Association) Sent(t1 ntp.Time) {
	if a.xmt != 0 && !a.answer {
		a.t1 = t1
	}
}

// ErrNoRequest: a reply arrived while no request was outstanding, or a
// second reply to one already answered (THREATS C2, C3).
var ErrNoRequest = errors.New("source: no request outstanding")

// HandleResponse checks reply b, received at now and at local time t4
// (the kernel's receive timestamp), against the request outstanding. A valid reply
// yields its sample; the request is then answered, and any later copy of
// the reply is refused. A reply that fails the origin check leaves the
// request outstanding, since the genuine reply may still come (RFC 5905
// §8). A kiss-o'-death with the right origin backs the poll off: RATE by
// doubling the least interval, DENY and RSTR to the longest poll, and
// never beyond it, so that a spoofed flood of requests that makes the
// server kiss us (CVE-2015-7705) slows us down but never stops us. The
// back-off wears off by one step for every backoffDecay valid replies.
func (a *Association) HandleResponse(now mono.Instant, b []byte, t4 ntp.Time) (Sample, error) {
	if a.xmt == 0 || a.answer {
		return Sample{}, ErrNoRequest
	}
	s, err := CheckReply(b, a.xmt, a.t1, t4)
	var kiss KissError
	switch {
	case err == nil:
		a.answer = true
		if a.okRun++; a.backoff > 0 && a.okRun >= backoffDecay {
			a.backoff--
			a.okRun = 0
			if a.backoff < 6 {
				a.backoff = 0
			}
		}
		return s, nil
	case errors.As(err, &kiss):
		a.answer = true
		a.Kisses[kiss.Code]++
		switch kiss.Code {
		case ntp.KissRATE:
			a.backoff = min(max(a.backoff+1, 6), a.cfg.MaxPoll)
		case ntp.KissDENY, ntp.KissRSTR:
			a.backoff = a.cfg.MaxPoll
		}
		a.burst, a.okRun = 0, 0
		if later := now.Add(time.Duration(1<<a.backoff) * time.Second); later.After(a.next) {
			a.next = later
		}
		return Sample{}, err
	case errors.Is(err, ErrUnsynchronized), errors.Is(err, ErrVersion), errors.Is(err, ErrTimestamps):
		// Genuine but unusable: the request is answered.
		a.answer = true
		return Sample{}, err
	}
	return Sample{}, err // bogus: keep waiting
}
