package daemon

import (
	"hash/maphash"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/server"
	"github.com/meridian-ntp/meridian/internal/udp"
)

// nullConn accepts every write and records nothing.
type nullConn struct{ written int }

func (c *nullConn) ReadBatch([]udp.Msg) (int, error) { return 0, nil }
func (c *nullConn) WriteBatch(m []udp.Msg) (int, error) {
	c.written += len(m)
	return len(m), nil
}
func (c *nullConn) LocalAddr() netip.AddrPort { return netip.AddrPort{} }
func (c *nullConn) Close() error              { return nil }

// TestWorkerZeroAllocs pins the steady-state cost of a batch at zero
// allocations: answering, stamping, handing responses to the socket and
// yielding to the scheduler.
func TestWorkerZeroAllocs(t *testing.T) {
	served := &Served{}
	served.Store(server.Local(10, -20, ntp.TimeFrom(time.Now())))
	conn := &nullConn{}
	lim := server.NewLimiter(server.LimitConfig{TableSize: 1024}, maphashSeed(), newRand())
	w := newWorker(conn, server.NewResponder(server.Config{Limiter: lim}), served, time.Now())
	req := rawRequest(4, ntp.ModeClient)
	reqs := make([]udp.Msg, 32)
	for i := range reqs {
		reqs[i] = udp.Msg{Buf: append(make([]byte, 0, reqBufLen), req...), N: len(req),
			Addr:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 40000),
			Local:  netip.MustParseAddr("192.0.2.1"),
			RxTime: time.Now().UnixNano()}
		reqs[i].Buf = reqs[i].Buf[:reqBufLen]
	}
	allocs := testing.AllocsPerRun(100, func() {
		now := time.Now()
		if k := w.answer(reqs, now); k > 0 {
			w.send(w.out[:k])
		}
		w.yield(now)
	})
	if allocs != 0 {
		t.Errorf("a batch of 32 allocated %.1f times; want 0", allocs)
	}
	if conn.written == 0 {
		t.Error("nothing was answered")
	}
	resp := w.out[0].Buf[:w.out[0].N]
	var h ntp.Header
	if err := h.Decode(resp); err != nil || h.Origin != 0x0102030405060708 || h.Transmit.IsZero() ||
		h.Transmit.Sub(h.Receive) < 0 || w.out[0].Local != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("response %+v from %v", h, w.out[0].Local)
	}
}

func maphashSeed() maphash.Seed { return maphash.MakeSeed() }

func newRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }
