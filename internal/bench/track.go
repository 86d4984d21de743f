package bench

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/source"
)

// A request's transmit timestamp is key XOR (socket<<seqBits | sequence).
// The key has its top bit set and socket indices stay below 2^15, so the
// result is never zero, the value RFC 5905 reserves for "unset".
const (
	seqBits    = 48
	seqMask    = 1<<seqBits - 1
	keyTopBit  = 1 << 63
	maxSockets = 1024

	// minRing and maxRing bound the number of slots of a socket's ring.
	minRing = 64
	maxRing = 1 << 20
)

// Slot states.
const (
	slotFree     uint8 = iota // never used, or a send rolled back
	slotPending               // sent, waiting for the reply
	slotAnswered              // a reply came (valid or rejected)
	slotExpired               // no reply before the timeout
)

// slot is one request of a socket.
type slot struct {
	sent     int64  // send time, ns since the run began (monotonic clock)
	seq      uint32 // low bits of the sequence number: detects reuse
	state    uint8
	measured bool // sent within the measured window
}

// ring holds a socket's requests indexed by sequence number. Requests are
// sent in sequence order, so they expire in that order too. The sequence
// numbers in [tail, head) are the ones that may still be pending.
type ring struct {
	slots   []slot // len is a power of two
	head    uint64 // sequence number of the next request
	tail    uint64 // no request before tail is pending
	pending int
}

func newRing(size int) ring {
	n := minRing
	for n < size && n < maxRing {
		n *= 2
	}
	return ring{slots: make([]slot, n)}
}

func (r *ring) at(seq uint64) *slot { return &r.slots[seq&uint64(len(r.slots)-1)] }

func (r *ring) full() bool { return r.head-r.tail >= uint64(len(r.slots)) }

// grow doubles the ring, keeping the requests in [tail, head). It reports
// false if the ring is already at its largest. It allocates, but only
// while the number of requests in flight keeps reaching new highs.
func (r *ring) grow() bool {
	if len(r.slots) >= maxRing {
		return false
	}
	old := *r
	r.slots = make([]slot, 2*len(old.slots))
	for seq := old.tail; seq < old.head; seq++ {
		*r.at(seq) = *old.at(seq)
	}
	return true
}

// sock is the state of one client socket.
type sock struct {
	idx  int // index among all the run's sockets, encoded in requests
	ring ring
	// Closed loop: conc requests are kept outstanding.
	conc int
	// Open loop: the socket sends the run's requests k = idx + S·j, for
	// j = 0, 1, ... (S is the number of sockets), at time k/rate. next is
	// the next j; those in [measuredLo, measuredHi) are measured, and
	// measuredHi is also the end of the schedule.
	next, measuredLo, measuredHi uint64
	// blockedUntil delays the next send after a send error.
	blockedUntil int64
}

// Counts are the outcomes of a run's measured requests, and the invalid
// replies that arrived from the start of the measured window on. A
// request is measured if it was due (open loop) or sent (closed loop) in
// the measured window; its reply may come after the window. Every
// measured request is counted once in Sent and then in exactly one of
// Answered, Lost, Unfinished and the rejections (Kiss, Unsynchronized,
// BadVersion, BadTimestamps, OtherRejected).
type Counts struct {
	Sent     uint64 // requests sent
	Answered uint64 // valid replies
	// Lost requests had no reply that the kernel received within the
	// timeout of their sending.
	Lost uint64
	// Unfinished requests were still waiting for a reply when the run
	// was cancelled. They are not counted as lost.
	Unfinished uint64
	// Skipped counts open-loop requests that were due but not sent
	// because the generator fell more than lateLimit behind its schedule
	// or had too many requests in flight: a sign that it, not the server,
	// is the bottleneck.
	Skipped uint64
	// SendErrors counts requests the kernel refused to send.
	SendErrors uint64

	// Rejections: replies that match a request but refuse or fail it.

	// Kiss counts kiss-o'-death replies by code, in the order of
	// KissCodes.
	Kiss           [4]uint64
	Unsynchronized uint64 // leap 3, stratum 0 (not a kiss) or 16 and above
	BadVersion     uint64 // version 0 or above 4
	BadTimestamps  uint64 // zero or inconsistent receive and transmit
	OtherRejected  uint64 // any other failure source.CheckReply reports

	// Invalid replies, which answer no request. Malformed and WrongMode
	// replies that carry a valid origin leave their request waiting for
	// the genuine reply (RFC 5905 §8).
	Malformed   uint64 // shorter than 48 bytes, truncated or undecodable
	WrongMode   uint64 // not in server mode
	WrongOrigin uint64 // origin timestamp of no request we sent
	Late        uint64 // received a timeout or more after the request was sent
	Duplicate   uint64 // the request was already answered
	RecvErrors  uint64 // receive errors, such as ICMP port unreachable
}

// KissCodes are the kiss-o'-death codes (RFC 5905 §7.4, RFC 8915 §5.7)
// that Counts.Kiss counts.
var KissCodes = [4]ntp.RefID{ntp.KissRATE, ntp.KissDENY, ntp.KissRSTR, ntp.KissNTSN}

// Rejected returns the number of requests whose reply refused or failed
// them.
func (c *Counts) Rejected() uint64 {
	n := c.Unsynchronized + c.BadVersion + c.BadTimestamps + c.OtherRejected
	for _, k := range c.Kiss {
		n += k
	}
	return n
}

// Invalid returns the number of invalid replies.
func (c *Counts) Invalid() uint64 {
	return c.Malformed + c.WrongMode + c.WrongOrigin + c.Late + c.Duplicate
}

// LossRatio returns Lost over the requests whose fate is known, or 0.
func (c *Counts) LossRatio() float64 {
	if done := c.Sent - c.Unfinished; done > 0 {
		return float64(c.Lost) / float64(done)
	}
	return 0
}

func (c *Counts) add(o *Counts) {
	c.Sent += o.Sent
	c.Answered += o.Answered
	c.Lost += o.Lost
	c.Unfinished += o.Unfinished
	c.Skipped += o.Skipped
	c.SendErrors += o.SendErrors
	for i := range c.Kiss {
		c.Kiss[i] += o.Kiss[i]
	}
	c.Unsynchronized += o.Unsynchronized
	c.BadVersion += o.BadVersion
	c.BadTimestamps += o.BadTimestamps
	c.OtherRejected += o.OtherRejected
	c.Malformed += o.Malformed
	c.WrongMode += o.WrongMode
	c.WrongOrigin += o.WrongOrigin
	c.Late += o.Late
	c.Duplicate += o.Duplicate
	c.RecvErrors += o.RecvErrors
}

// totals count every request and reply since the run began, warmup
// included, for the progress lines.
type totals struct {
	sent, answered, rejected, lost, replies, skipped uint64
}

// window counts the requests sent and the replies matched to a request
// (valid or rejected) whose own times, the send time and the kernel's
// receive time, fall in the measured window, whichever window their
// request belongs to. They divide the CPU time used in that window.
type window struct {
	sent, replies uint64
}

// tracker does a worker's bookkeeping: it numbers requests, matches
// replies to them, expires them, and counts. It performs no I/O and reads
// no clock; times are ns since the run began. Not safe for concurrent use.
type tracker struct {
	key      uint64
	baseWall int64 // Unix ns of the run's start
	timeout  int64 // ns
	start    int64 // beginning of the measured window
	end      int64 // end of the measured window, or when it was cancelled
	pending  int   // requests in flight on all sockets
	c        Counts
	all      totals
	win      window
	rtt      Histogram
}

// inWindow reports whether time at (ns since the run began) lies in the
// measured window.
func (t *tracker) inWindow(at int64) bool { return at >= t.start && at < t.end }

// reserve assigns the next sequence number of s to a request sent at now
// and writes the request into dst. It reports false if the ring is full
// and cannot grow. The caller then sends the request and calls commit,
// which also rolls back the requests that were not sent.
func (t *tracker) reserve(s *sock, dst []byte, now int64, measured bool) bool {
	r := &s.ring
	if r.full() {
		t.expire(s, now)
		if r.full() && !r.grow() {
			return false
		}
	}
	seq := r.head
	*r.at(seq) = slot{sent: now, seq: uint32(seq), state: slotPending, measured: measured}
	r.head++
	r.pending++
	t.pending++
	xmt := ntp.Time(t.key ^ (uint64(s.idx)<<seqBits | seq))
	// Cannot fail: dst holds at least ntp.HeaderLen bytes.
	_, _ = source.Request(dst, xmt)
	return true
}

// commit counts the oldest n of the last m reserved requests of s as sent
// and rolls back the other m-n, which were not sent.
func (t *tracker) commit(s *sock, m, n int) {
	r := &s.ring
	for i := range m {
		sl := r.at(r.head - uint64(m-i))
		if i < n {
			t.all.sent++
			if sl.measured {
				t.c.Sent++
			}
			if t.inWindow(sl.sent) {
				t.win.sent++
			}
		} else if sl.measured {
			t.c.SendErrors++
		}
	}
	for range m - n {
		r.head--
		*r.at(r.head) = slot{}
		r.pending--
		t.pending--
	}
}

// oldest advances the tail of s past the requests that are done and
// returns the oldest one still pending, or nil. Requests are sent in
// sequence order, so it is also the first to time out.
func (t *tracker) oldest(s *sock) *slot {
	r := &s.ring
	for ; r.tail < r.head; r.tail++ {
		if sl := r.at(r.tail); sl.state == slotPending {
			return sl
		}
	}
	return nil
}

// expire marks the requests of s sent a timeout or more before now as
// lost.
func (t *tracker) expire(s *sock, now int64) {
	for sl := t.oldest(s); sl != nil && now-sl.sent >= t.timeout; sl = t.oldest(s) {
		t.lose(&s.ring, sl)
	}
}

// lose marks pending request sl of ring r as lost.
func (t *tracker) lose(r *ring, sl *slot) {
	sl.state = slotExpired
	r.pending--
	t.pending--
	t.all.lost++
	if sl.measured {
		t.c.Lost++
	}
}

// nextExpiry returns when the oldest pending request of s times out, or
// false if none is pending.
func (t *tracker) nextExpiry(s *sock) (int64, bool) {
	if sl := t.oldest(s); sl != nil {
		return sl.sent + t.timeout, true
	}
	return 0, false
}

// unfinish counts the requests still pending on s as unfinished.
func (t *tracker) unfinish(s *sock) {
	r := &s.ring
	for seq := r.tail; seq < r.head; seq++ {
		if sl := r.at(seq); sl.state == slotPending {
			sl.state = slotExpired
			r.pending--
			t.pending--
			if sl.measured {
				t.c.Unfinished++
			}
		}
	}
}

// receive handles datagram b that arrived on s at rxWall (Unix ns, the
// kernel's receive time); truncated reports that it did not fit its
// buffer. A reply that the kernel received a timeout or more after its
// request was sent is late, and its request lost, even if the request
// had not been expired yet.
func (t *tracker) receive(s *sock, b []byte, truncated bool, rxWall int64) {
	rx := rxWall - t.baseWall
	counted := rx >= t.start // invalid replies count from the window's start on
	if truncated || len(b) < ntp.HeaderLen {
		if counted {
			t.c.Malformed++
		}
		return
	}
	origin := binary.BigEndian.Uint64(b[24:32])
	sl := t.match(s, origin, ntp.Mode(b[0]&7), counted)
	if sl == nil {
		return
	}
	t1 := ntp.TimeFrom(time.Unix(0, t.baseWall+sl.sent))
	t4 := ntp.TimeFrom(time.Unix(0, rxWall))
	vd, kiss := classify(b, ntp.Time(origin), t1, t4)
	switch {
	case vd == verdictMalformed || vd == verdictWrongMode:
		if sl.measured {
			t.countInvalid(vd)
		}
		// Not the server's answer: keep waiting for it (RFC 5905 §8).
	case rx-sl.sent >= t.timeout:
		t.lose(&s.ring, sl)
		if sl.measured {
			t.c.Late++
		}
	default:
		t.settle(&s.ring, sl, vd, kiss, rx)
	}
}

// match returns the pending request of s whose transmit timestamp is
// origin. If there is none, it counts the reply as invalid (if counted)
// and returns nil; mode is the reply's.
func (t *tracker) match(s *sock, origin uint64, mode ntp.Mode, counted bool) *slot {
	v := origin ^ t.key
	seq := v & seqMask
	r := &s.ring
	if v>>seqBits != uint64(s.idx) || seq >= r.head {
		if counted && mode != ntp.ModeServer {
			t.c.WrongMode++
		} else if counted {
			t.c.WrongOrigin++
		}
		return nil
	}
	sl := r.at(seq)
	if r.head-seq > uint64(len(r.slots)) || sl.seq != uint32(seq) || sl.state == slotFree {
		if counted { // forgotten: it timed out long ago
			t.c.Late++
		}
		return nil
	}
	switch sl.state {
	case slotAnswered:
		if sl.measured {
			t.c.Duplicate++
		}
		return nil
	case slotExpired:
		if sl.measured {
			t.c.Late++
		}
		return nil
	}
	return sl
}

// settle records the reply, received at rx, that answers pending request
// sl of ring r with verdict v.
func (t *tracker) settle(r *ring, sl *slot, v verdict, kiss int, rx int64) {
	sl.state = slotAnswered
	r.pending--
	t.pending--
	t.all.replies++
	if t.inWindow(rx) {
		t.win.replies++
	}
	if v != verdictValid {
		t.all.rejected++
		if sl.measured {
			t.countRejected(v, kiss)
		}
		return
	}
	t.all.answered++
	if sl.measured {
		t.c.Answered++
		t.rtt.Record(time.Duration(rx - sl.sent))
	}
}

// verdict is what a reply to one of our requests amounts to.
type verdict uint8

const (
	verdictValid verdict = iota
	// Not the server's answer: the request keeps waiting (RFC 5905 §8).
	verdictMalformed
	verdictWrongMode
	// Answers that refuse or fail the request.
	verdictKiss
	verdictUnsync
	verdictBadVersion
	verdictBadTimestamps
	verdictOther
)

// classify validates reply b to the request with transmit timestamp xmt,
// sent at t1 and received at t4, as source.CheckReply does, and returns
// its verdict and, for a kiss-o'-death, the index of its code in
// KissCodes.
//
// CheckReply allocates the error that reports a kiss-o'-death or an
// unsynchronized server, and a loaded or rate-limiting server may send
// those to every request. So classify decides those two cases itself,
// with CheckReply's checks in CheckReply's order, and leaves every other
// reply to CheckReply; FuzzClassify checks that both agree.
func classify(b []byte, xmt, t1, t4 ntp.Time) (verdict, int) {
	var p ntp.Packet
	if p.Decode(b) != nil {
		return verdictMalformed, 0
	}
	if h := &p.Header; h.Mode == ntp.ModeServer && !xmt.IsZero() && h.Origin == xmt {
		if h.Stratum == 0 {
			for i, code := range KissCodes {
				if h.RefID == code {
					return verdictKiss, i
				}
			}
		}
		if h.Version != 0 && h.Version <= 4 &&
			(h.Leap == ntp.LeapUnsync || h.Stratum == 0 || h.Stratum >= ntp.MaxStratum) {
			return verdictUnsync, 0
		}
	}
	_, err := source.CheckReply(b, xmt, t1, t4)
	return verdictOf(err)
}

// verdictOf maps an error of source.CheckReply to a verdict.
func verdictOf(err error) (verdict, int) {
	if err == nil {
		return verdictValid, 0
	}
	if k, ok := err.(source.KissError); ok {
		for i, code := range KissCodes {
			if k.Code == code {
				return verdictKiss, i
			}
		}
	}
	switch {
	case errors.Is(err, source.ErrMalformed):
		return verdictMalformed, 0
	case errors.Is(err, source.ErrMode):
		return verdictWrongMode, 0
	case errors.Is(err, source.ErrUnsynchronized):
		return verdictUnsync, 0
	case errors.Is(err, source.ErrVersion):
		return verdictBadVersion, 0
	case errors.Is(err, source.ErrTimestamps):
		return verdictBadTimestamps, 0
	}
	return verdictOther, 0 // ErrOrigin cannot happen here; or a check added later
}

func (t *tracker) countInvalid(v verdict) {
	if v == verdictWrongMode {
		t.c.WrongMode++
	} else {
		t.c.Malformed++
	}
}

func (t *tracker) countRejected(v verdict, kiss int) {
	switch v {
	case verdictKiss:
		t.c.Kiss[kiss]++
	case verdictUnsync:
		t.c.Unsynchronized++
	case verdictBadVersion:
		t.c.BadVersion++
	case verdictBadTimestamps:
		t.c.BadTimestamps++
	default:
		t.c.OtherRejected++
	}
}
