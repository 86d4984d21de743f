package query

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/ntp"
)

// An evilServer is a scripted NTP server on loopback: for the i-th request
// it receives (from 0) it sends the replies script(i) returns, in order. It
// records every request and every reply.
type evilServer struct {
	addr   netip.AddrPort
	script func(i int) []reply

	mu      sync.Mutex // guards the fields below
	reqs    []request
	replies [][][]byte // replies[i] are the datagrams sent for request i
}

type request struct {
	from netip.AddrPort
	data []byte
	at   time.Time
}

// A reply is one datagram, sent once gate (if not nil) is closed and then
// wait has passed since the previous one was sent (or the request arrived).
// It is built at sending time from the request, the time the request
// arrived (rx) and the time of sending (tx). It leaves from via if that is
// set, else from the server's socket. A reply with run set sends nothing:
// the server calls run at its turn instead.
type reply struct {
	gate  <-chan struct{}
	wait  time.Duration
	build func(req []byte, rx, tx time.Time) []byte
	via   *net.UDPConn
	run   func()
}

// startEvil starts a server on 127.0.0.1 that runs until the test ends.
func startEvil(t *testing.T, script func(i int) []reply) *evilServer {
	return startEvilOn(t, "127.0.0.1:0", script)
}

func startEvilOn(t *testing.T, laddr string, script func(i int) []reply) *evilServer {
	t.Helper()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(laddr)))
	if err != nil {
		t.Fatalf("listen %s: %v", laddr, err)
	}
	s := &evilServer{addr: conn.LocalAddr().(*net.UDPAddr).AddrPort(), script: script}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	// The goroutine exits when the cleanup closes stop and conn.
	go func() {
		defer wg.Done()
		s.serve(conn, stop)
	}()
	t.Cleanup(func() {
		close(stop)
		conn.Close()
		wg.Wait()
	})
	return s
}

func (s *evilServer) serve(conn *net.UDPConn, stop <-chan struct{}) {
	buf := make([]byte, 2048)
	for i := 0; ; i++ {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed by the cleanup
		}
		// The request is stamped as soon as it is read, so time spent
		// before sending is the server's own and not network delay.
		rx := time.Now()
		req := append([]byte(nil), buf[:n]...)
		s.mu.Lock()
		s.reqs = append(s.reqs, request{from: from, data: req, at: rx})
		s.replies = append(s.replies, nil)
		s.mu.Unlock()
		for _, r := range s.script(i) {
			if r.gate != nil {
				select {
				case <-stop:
					return
				case <-r.gate:
				}
			}
			if r.wait > 0 {
				t := time.NewTimer(r.wait)
				select {
				case <-stop:
					t.Stop()
					return
				case <-t.C:
				}
			}
			if r.run != nil {
				r.run()
				continue
			}
			b := r.build(req, rx, time.Now())
			s.mu.Lock()
			s.replies[i] = append(s.replies[i], b)
			s.mu.Unlock()
			out := conn
			if r.via != nil {
				out = r.via
			}
			// A failed send shows up as a missing reply in the test.
			out.WriteToUDPAddrPort(b, from)
		}
	}
}

// requests returns a copy of the requests received so far.
func (s *evilServer) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.reqs...)
}

// sent returns the j-th datagram sent in answer to request i, or nil.
func (s *evilServer) sent(i, j int) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= len(s.replies) || j >= len(s.replies[i]) {
		return nil
	}
	return s.replies[i][j]
}

// always answers every request with the same replies.
func always(rs ...reply) func(int) []reply {
	return func(int) []reply { return rs }
}

// perRequest answers request i with rs[i], and later requests not at all.
func perRequest(rs ...[]reply) func(int) []reply {
	return func(i int) []reply {
		if i < len(rs) {
			return rs[i]
		}
		return nil
	}
}

// xmtOf returns the transmit timestamp of request req.
func xmtOf(req []byte) ntp.Time {
	if len(req) < ntp.HeaderLen {
		return 0
	}
	return ntp.Time(binary.BigEndian.Uint64(req[40:]))
}

// goodHeader is a valid reply to req, which arrived at rx and is answered
// at tx by the server's clock.
func goodHeader(req []byte, rx, tx time.Time) ntp.Header {
	return ntp.Header{
		Version:   4,
		Mode:      ntp.ModeServer,
		Stratum:   2,
		Poll:      6,
		Precision: -20,
		RootDelay: ntp.ShortFrom(10 * time.Millisecond),
		RootDisp:  ntp.ShortFrom(20 * time.Millisecond),
		RefID:     ntp.RefID{192, 0, 2, 1},
		Reference: ntp.TimeFrom(rx.Add(-time.Minute)),
		Origin:    xmtOf(req),
		Receive:   ntp.TimeFrom(rx),
		Transmit:  ntp.TimeFrom(tx),
	}
}

func encode(h ntp.Header) []byte {
	b := make([]byte, ntp.HeaderLen)
	if _, err := h.Encode(b); err != nil {
		panic(err) // a bug in the test's header
	}
	return b
}

// good replies validly, after wait; mod, if not nil, edits the header
// first.
func good(wait time.Duration, mod func(*ntp.Header)) reply {
	return reply{wait: wait, build: func(req []byte, rx, tx time.Time) []byte {
		h := goodHeader(req, rx, tx)
		if mod != nil {
			mod(&h)
		}
		return encode(h)
	}}
}

// raw sends whatever build returns, at once.
func raw(build func(req []byte, rx, tx time.Time) []byte) reply {
	return reply{build: build}
}

// gated is r, held until gate is closed.
func gated(gate <-chan struct{}, r reply) reply {
	r.gate = gate
	return r
}

// do sends nothing but calls f at its turn.
func do(f func()) reply {
	return reply{run: f}
}

// A barrier is closed once a given number of parties have arrived.
type barrier struct {
	mu   sync.Mutex // guards left
	left int
	ch   chan struct{}
}

func newBarrier(n int) *barrier {
	return &barrier{left: n, ch: make(chan struct{})}
}

// arrive counts one party; the last one closes b.ch.
func (b *barrier) arrive() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.left--
	if b.left == 0 {
		close(b.ch)
	}
}

// Edits that turn a good reply into a bad one.
var (
	wrongOrigin = func(h *ntp.Header) { h.Origin++ }
	zeroOrigin  = func(h *ntp.Header) { h.Origin = 0 }
)

// hideHold claims the request arrived when the reply left, so the time the
// server held it counts as network delay.
func hideHold(h *ntp.Header) { h.Receive = h.Transmit }

func kiss(code ntp.RefID) func(*ntp.Header) {
	return func(h *ntp.Header) {
		h.Stratum, h.RefID = 0, code
		h.Reference, h.Receive, h.Transmit = 0, 0, 0
	}
}

func spoofedKiss(code ntp.RefID) func(*ntp.Header) {
	return func(h *ntp.Header) {
		kiss(code)(h)
		wrongOrigin(h)
	}
}

func mode(m ntp.Mode) func(*ntp.Header) { return func(h *ntp.Header) { h.Mode = m } }

// truncated is a good reply cut to n bytes.
func truncated(n int) reply {
	return raw(func(req []byte, rx, tx time.Time) []byte { return encode(goodHeader(req, rx, tx))[:n] })
}

// echo sends the request back: a reflected packet in client mode.
var echo = raw(func(req []byte, _, _ time.Time) []byte { return bytes.Clone(req) })
