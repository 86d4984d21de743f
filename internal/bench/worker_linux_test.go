package bench

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestExpireReadsRepliesFirst lets a reply wait in the socket past its
// request's timeout: the reply came in time, so the request is answered,
// not lost. A request with no reply is lost.
func TestExpireReadsRepliesFirst(t *testing.T) {
	s := startServer(t, func(n uint64) act {
		if n == 1 {
			return actDrop
		}
		return actReply
	}, 0)
	p := &plan{base: time.Now(), end: 1 << 62, timeout: int64(10 * time.Second), sockets: 1}
	p.baseWall = p.base.UnixNano()
	c, err := dial(s.Addr, 1, anyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	w := newWorker(p, c, []sock{{ring: newRing(0), conc: 1}}, testKey)
	sk := &w.socks[0]

	w.sendClosed(p.now())
	readable(t, c.fds[0])
	sl := w.t.oldest(sk)
	w.expire(sl.sent + p.timeout)
	if w.t.c.Answered != 1 || w.t.c.Lost != 0 || w.t.c.Late != 0 {
		t.Errorf("a reply that waited in the socket: %+v; want it answered", w.t.c)
	}
	if now := sl.sent + p.timeout; w.nextCheck != now+p.timeout {
		t.Errorf("next check at %d; want a timeout on, %d, with nothing pending", w.nextCheck, now+p.timeout)
	}

	w.sendClosed(p.now()) // the server drops this one
	sl = w.t.oldest(sk)
	now := sl.sent + p.timeout - int64(expireEvery)
	w.expire(now)
	if w.t.c.Lost != 0 || w.nextCheck != sl.sent+p.timeout {
		t.Errorf("before the timeout: lost %d, next check at %d; want 0, %d", w.t.c.Lost, w.nextCheck, sl.sent+p.timeout)
	}
	w.expire(sl.sent + p.timeout - 1)
	if w.t.c.Lost != 0 || w.nextCheck != sl.sent+p.timeout-1+int64(expireEvery) {
		t.Errorf("just before the timeout: lost %d, next check at %d; want 0 and a millisecond on", w.t.c.Lost, w.nextCheck)
	}
	w.expire(sl.sent + p.timeout)
	if w.t.c.Lost != 1 || w.t.c.Sent != 2 || w.t.pending != 0 {
		t.Errorf("after the timeout: %+v, %d pending; want 1 lost of 2 sent", w.t.c, w.t.pending)
	}
}

// readable waits until fd has a datagram to read, without reading it.
func readable(t *testing.T, fd int) {
	t.Helper()
	for range 100 {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if n, err := unix.Poll(fds, 100); err != nil && err != unix.EINTR {
			t.Fatal(err)
		} else if n == 1 {
			return
		}
	}
	t.Fatal("no reply came")
}
