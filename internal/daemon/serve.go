package daemon

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/meridian-ntp/meridian/internal/mono"
	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/server"
	"github.com/meridian-ntp/meridian/internal/udp"
)

// batchConn is what a server worker needs from its socket: a *udp.Conn, or
// an in-memory fake in tests.
type batchConn interface {
	ReadBatch(msgs []udp.Msg) (int, error)
	WriteBatch(msgs []udp.Msg) (int, error)
	LocalAddr() netip.AddrPort
	Close() error
}

// Served holds the time state the server hands out. Providers Store a new
// State; workers Load it once per batch. A stored State must not be
// modified afterwards.
type Served struct {
	p atomic.Pointer[server.State]
	// publish, when set before the first Store, also receives every
	// stored state (the XDP fast path's copy).
	publish func(*server.State)
}

// Load returns the current state.
func (s *Served) Load() *server.State { return s.p.Load() }

// Store publishes st.
func (s *Served) Store(st *server.State) {
	s.p.Store(st)
	if s.publish != nil {
		s.publish(st)
	}
}

// Batch and buffer sizes of a worker. A request larger than reqBufLen is
// truncated by the kernel and dropped unread.
const (
	batchLen  = 64
	reqBufLen = 2048
	// respBufLen holds any response: a plain response or a kiss is 48 bytes.
	respBufLen = 1024
)

// worker answers requests on one socket. It is used by one goroutine.
type worker struct {
	conn      batchConn
	resp      *server.Responder
	served    *Served
	origin    time.Time // zero of the monotonic clock
	in, out   []udp.Msg
	lastYield time.Time

	// sendErrors counts responses the kernel refused to send.
	sendErrors atomic.Uint64
	// truncated counts requests larger than the receive buffer.
	truncated atomic.Uint64
}

func newWorker(conn batchConn, resp *server.Responder, served *Served, origin time.Time) *worker {
	w := &worker{conn: conn, resp: resp, served: served, origin: origin,
		in: make([]udp.Msg, batchLen), out: make([]udp.Msg, batchLen)}
	for i := range w.in {
		w.in[i].Buf = make([]byte, reqBufLen)
		w.out[i].Buf = make([]byte, respBufLen)
	}
	return w
}

// run serves until the socket is closed. It locks its goroutine to an OS
// thread, so that each socket has a thread of its own.
func (w *worker) run() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for {
		n, err := w.conn.ReadBatch(w.in)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Errors such as ENOMEM or a pending ICMP error concern the
			// socket, not one request: pause briefly so that a persistent
			// error cannot spin a core.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		now := time.Now()
		if k := w.answer(w.in[:n], now); k > 0 {
			w.send(w.out[:k])
		}
		w.yield(now)
	}
}

// yieldEvery is how often a worker lets the Go scheduler run it anew.
const yieldEvery = 2 * time.Millisecond

// yield calls runtime.Gosched every yieldEvery; now is the time of the
// last batch. A goroutine that the
// scheduler has seen running for 10 ms without a switch, even if it spends
// that time blocked in system calls, has its P taken from it during its
// next system call; the runtime's monitor thread then wakes for every
// system call that follows, polling every 20 µs, and costs as much CPU
// time as the worker itself.
func (w *worker) yield(now time.Time) {
	if now.Sub(w.lastYield) >= yieldEvery {
		w.lastYield = now
		runtime.Gosched()
	}
}

// answer builds the responses to a batch of requests received by now in
// w.out and returns their number.
func (w *worker) answer(reqs []udp.Msg, now time.Time) int {
	mnow := mono.Instant(now.Sub(w.origin))
	st := w.served.Load()
	// A datagram without a kernel timestamp counts as received now.
	fallback := ntp.TimeFrom(now)
	k := 0
	for i := range reqs {
		m := &reqs[i]
		if m.Trunc {
			w.truncated.Add(1)
			continue
		}
		rx := fallback
		if m.RxTime != 0 {
			rx = ntp.TimeFrom(time.Unix(0, m.RxTime))
		}
		o := &w.out[k]
		n, _ := w.resp.Respond(mnow, st, m.Addr.Addr(), rx, m.Buf[:m.N], o.Buf[:cap(o.Buf)])
		if n == 0 {
			continue
		}
		o.N, o.Addr, o.IfIndex = n, m.Addr, m.IfIndex
		o.Local = m.Local
		if o.Local.IsMulticast() || o.Local == broadcast4 {
			o.Local = netip.Addr{} // no reply can leave from there
		}
		k++
	}
	return k
}

var broadcast4 = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// send stamps the transmit timestamps, as late as possible, and sends the
// responses. A response the kernel refuses is counted and skipped.
func (w *worker) send(out []udp.Msg) {
	tx := ntp.TimeFrom(time.Now())
	for i := range out {
		server.StampTransmit(out[i].Buf[:out[i].N], tx)
	}
	for len(out) > 0 {
		n, err := w.conn.WriteBatch(out)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			w.sendErrors.Add(1)
			n = max(n, 0) + 1 // skip the message that failed
		}
		out = out[min(n, len(out)):]
	}
}
