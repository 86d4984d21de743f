package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/meridian-ntp/meridian/internal/ntp"
)

const (
	// lateLimit is how far an open-loop request may fall behind its
	// schedule and still be sent; older ones are skipped and counted, so
	// that a stalled generator neither bursts nor hides its stall.
	lateLimit = 10 * time.Millisecond
	// maxWait bounds each wait for replies, so that workers notice a
	// cancelled run promptly.
	maxWait = 10 * time.Millisecond
	// expireEvery is the finest granularity of timeouts.
	expireEvery = time.Millisecond
	// cancelDrain bounds the wait for replies to outstanding requests
	// after a run is cancelled.
	cancelDrain = 250 * time.Millisecond
	// maxRecvBatches bounds the batches read from one socket per wakeup,
	// so that a flood of replies cannot starve the schedule.
	maxRecvBatches = 16
)

// plan is what every worker of a run shares. Only stop changes once the
// workers have started.
type plan struct {
	base     time.Time // the run's start; other times are ns after it
	baseWall int64     // base as Unix ns
	start    int64     // beginning of the measured window (the warmup)
	end      int64     // end of the measured window: sending stops
	timeout  int64
	tick     int64  // open loop: the shortest sleep
	sockets  uint64 // in the whole run
	// Open loop: request k of the run goes to socket k mod sockets at
	// k/rate s; those in [kStart, kEnd) are measured, and kEnd ends the
	// schedule. rate is 0 in a closed loop.
	rate         uint64
	kStart, kEnd uint64
	// stop is 1 + the time the run was cancelled, or 0.
	stop atomic.Int64
}

func (p *plan) now() int64 { return int64(time.Since(p.base)) }

// stopped returns when the run was cancelled, or false.
func (p *plan) stopped() (int64, bool) {
	s := p.stop.Load()
	return s - 1, s != 0
}

// kAt returns the first request of the open-loop schedule due at or after
// t ns: ⌈t·rate/1e9⌉.
func (p *plan) kAt(t int64) uint64 {
	if t <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(t), p.rate)
	q, r := bits.Div64(hi, lo, 1e9) // hi < 1e9 for any t below 584 years
	if r != 0 {
		q++
	}
	return q
}

// due returns the number of open-loop requests due by t: those k with
// k/rate ≤ t, up to kEnd.
func (p *plan) due(t int64) uint64 {
	if t < 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(t), p.rate)
	q, _ := bits.Div64(hi, lo, 1e9)
	return min(q+1, p.kEnd)
}

// timeOf returns when open-loop request k is due, in ns.
func (p *plan) timeOf(k uint64) int64 {
	hi, lo := bits.Mul64(k, 1e9)
	q, r := bits.Div64(hi, lo, p.rate)
	if r != 0 {
		q++
	}
	return int64(q)
}

// jAt returns the index, among the requests of socket g, of the first
// request of the run numbered k or above.
func (p *plan) jAt(k uint64, g int) uint64 {
	if k <= uint64(g) {
		return 0
	}
	return (k - uint64(g) + p.sockets - 1) / p.sockets
}

// progress is what a worker publishes for the progress lines and CPU
// figures: its totals, stored after every round.
type progress struct {
	sent, answered, rejected, lost, replies, skipped atomic.Uint64
}

func (pr *progress) load() totals {
	return totals{sent: pr.sent.Load(), answered: pr.answered.Load(), rejected: pr.rejected.Load(),
		lost: pr.lost.Load(), replies: pr.replies.Load(), skipped: pr.skipped.Load()}
}

// worker drives a share of the run's sockets from one goroutine: it sends
// what is due, waits (see wait), reads the replies in batches and expires
// what times out. Nothing it does per request allocates.
type worker struct {
	p     *plan
	c     *conn
	socks []sock
	t     tracker
	sb    *batch // requests
	rb    *batch // replies
	pub   progress
	err   error // why the worker stopped early, if it did

	nextCheck int64 // when to look for expired requests next
}

func newWorker(p *plan, c *conn, socks []sock, key uint64) *worker {
	return &worker{
		p: p, c: c, socks: socks,
		t:  tracker{key: key, baseWall: p.baseWall, timeout: p.timeout, start: p.start, end: p.end},
		sb: newBatch(ntp.HeaderLen),
		rb: newBatch(recvBufSize),
	}
}

// run is the worker's loop. It returns once sending has stopped and every
// request is answered or timed out, or, after a cancellation, once
// cancelDrain has passed.
func (w *worker) run() {
	p := w.p
	sending := true
	drainUntil := int64(math.MaxInt64)
	for {
		now := w.tick()
		if stop, ok := p.stopped(); ok {
			sending = false
			drainUntil = min(drainUntil, stop+min(p.timeout, int64(cancelDrain)))
			w.t.end = min(w.t.end, stop)
		}
		if sending {
			w.send(now)
			sending = now < p.end
		}
		if now >= w.nextCheck {
			w.expire(now)
		}
		if !sending && (w.t.pending == 0 || now >= drainUntil) {
			break
		}
		if err := w.wait(now, sending, drainUntil); err != nil {
			w.err = err
			break
		}
		w.publish()
	}
	for i := range w.socks {
		w.t.unfinish(&w.socks[i])
	}
	w.publish()
}

// tick returns the time since the run began. It also keeps the tracker's
// wall-clock time of the run's start up to date, with which kernel
// receive timestamps (wall clock) are put on the run's monotonic
// timeline: time.Now reads the wall clock a little before the monotonic
// one, so the latest estimate wins unless it is more than a millisecond
// older, which means the wall clock was stepped back.
func (w *worker) tick() int64 {
	n := time.Now()
	now := int64(n.Sub(w.p.base))
	if d := n.UnixNano() - now - w.t.baseWall; d > 0 || d < -int64(time.Millisecond) {
		w.t.baseWall += d
	}
	return now
}

// wait waits until the next request is due or expires, at most
// maxWait, and handles the replies that came meanwhile.
//
// A closed loop, or a run that has stopped sending, wakes as soon as a
// reply comes, to replace its request at once or to finish. An open
// loop's schedule does not depend on replies, and their kernel receive
// timestamps make the time they are read irrelevant, so it sleeps at
// least a tick, without waking for each reply, and reads them all when
// it wakes: far fewer wakeups, hence less CPU, for the generator and,
// since requests then come in small bursts, for the server too.
func (w *worker) wait(now int64, sending bool, drainUntil int64) error {
	wait := w.nextCheck - now
	if sending {
		wait = min(wait, w.nextSend(now))
	} else {
		wait = min(wait, drainUntil-now)
	}
	wait = min(max(wait, 0), int64(maxWait))
	if sending && w.p.rate > 0 {
		w.c.sleep(time.Duration(max(wait, w.p.tick)))
		wait = 0
	}
	n, err := w.c.wait(time.Duration(wait))
	if err != nil {
		return err
	}
	for i := range n {
		w.receive(w.c.ready(i), now)
	}
	return nil
}

func (w *worker) publish() {
	a := &w.t.all
	w.pub.sent.Store(a.sent)
	w.pub.answered.Store(a.answered)
	w.pub.rejected.Store(a.rejected)
	w.pub.lost.Store(a.lost)
	w.pub.replies.Store(a.replies)
	w.pub.skipped.Store(a.skipped)
}

// expire times out requests on every socket and sets nextCheck. Before it
// times out a socket's requests, it reads the replies waiting there: a
// reply the kernel received in time answers its request however late the
// worker gets to it.
func (w *worker) expire(now int64) {
	next := now + w.p.timeout
	for i := range w.socks {
		s := &w.socks[i]
		sl := w.t.oldest(s)
		if sl != nil && now-sl.sent >= w.p.timeout {
			w.receive(i, now)
			w.t.expire(s, now)
			sl = w.t.oldest(s)
		}
		if sl != nil {
			next = min(next, sl.sent+w.p.timeout)
		}
	}
	w.nextCheck = max(next, now+int64(expireEvery))
}

// nextSend returns how long until the next open-loop request is due, or
// until the end of sending.
func (w *worker) nextSend(now int64) int64 {
	p := w.p
	if p.rate == 0 {
		return p.end - now
	}
	k := p.due(now)
	if k >= p.kEnd {
		return p.end - now
	}
	return min(p.timeOf(k), p.end) - now
}

func (w *worker) send(now int64) {
	if w.p.rate > 0 {
		w.sendOpen(now)
	} else if now < w.p.end {
		w.sendClosed(now)
	}
}

// sendOpen sends the open-loop requests due by now.
func (w *worker) sendOpen(now int64) {
	p := w.p
	kDue := p.due(now)
	kLate := p.kAt(now - int64(lateLimit))
	for i := range w.socks {
		s := &w.socks[i]
		jDue := p.jAt(kDue, s.idx)
		if jLate := p.jAt(kLate, s.idx); s.next < jLate {
			w.skip(s, jLate)
		}
		for s.next < jDue {
			n := 0
			t := p.now()
			for ; n < batchSize && s.next+uint64(n) < jDue; n++ {
				j := s.next + uint64(n)
				if !w.t.reserve(s, w.sb.bufs[n], t, j >= s.measuredLo && j < s.measuredHi) {
					break
				}
			}
			if n == 0 { // the ring is full and at its largest
				w.skip(s, s.next+1)
				continue
			}
			sent, _ := w.c.send(i, w.sb, n) // a failure is counted by commit
			w.t.commit(s, n, sent)
			s.next += uint64(n)
		}
	}
}

// skip counts the open-loop requests of s from s.next up to j as skipped.
func (w *worker) skip(s *sock, j uint64) {
	w.t.all.skipped += j - s.next
	lo, hi := max(s.next, s.measuredLo), min(j, s.measuredHi)
	if hi > lo {
		w.t.c.Skipped += hi - lo
	}
	s.next = j
}

// sendClosed tops every socket up to its share of the concurrency.
func (w *worker) sendClosed(now int64) {
	p := w.p
	for i := range w.socks {
		s := &w.socks[i]
		if s.blockedUntil > now {
			continue
		}
		for s.ring.pending < s.conc {
			t := p.now()
			measured := t >= p.start && t < p.end
			n := 0
			for ; n < batchSize && s.ring.pending < s.conc; n++ {
				if !w.t.reserve(s, w.sb.bufs[n], t, measured) {
					break
				}
			}
			if n == 0 {
				break // the ring is full: wait for replies or timeouts
			}
			sent, _ := w.c.send(i, w.sb, n)
			w.t.commit(s, n, sent)
			if sent < n {
				s.blockedUntil = now + int64(expireEvery)
				break
			}
		}
	}
}

// receive reads and handles the replies waiting on socket i.
func (w *worker) receive(i int, now int64) {
	s := &w.socks[i]
	for range maxRecvBatches {
		n, err := w.c.recv(i, w.rb)
		if err != nil {
			if !isAgain(err) && now >= w.p.start {
				w.t.c.RecvErrors++ // typically ICMP port unreachable
			}
			return
		}
		var fallback int64
		for j := range n {
			rx := w.rb.rx[j]
			if rx == 0 { // no kernel timestamp
				if fallback == 0 {
					fallback = time.Now().UnixNano()
				}
				rx = fallback
			}
			w.t.receive(s, w.rb.bufs[j][:w.rb.lens[j]], w.rb.trunc[j], rx)
		}
		if n < batchSize {
			return
		}
	}
}
