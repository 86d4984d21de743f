package bench

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/ntp"
)

// act is what the test server does with one request.
type act uint8

const (
	actReply       act = iota
	actDrop            // no reply: the request is lost
	actDuplicate       // the reply, twice
	actWrongOrigin     // a reply to no request, then the reply
	actShort           // 47 bytes with the right origin, then the reply
	actWrongMode       // a mode-3 packet with the right origin, then the reply
	actKissRATE        // a kiss-o'-death with code RATE
	actKissDENY        // a kiss-o'-death with code DENY
	actUnsync          // a reply with leap indicator 3
	numActs
)

// testServer answers NTP requests on loopback as a server at stratum 2
// would, or misbehaves as its policy says. It counts what it did.
type testServer struct {
	t      testing.TB
	conn   *net.UDPConn
	Addr   netip.AddrPort
	policy func(n uint64) act // n numbers the requests from 0
	delay  time.Duration      // hold each reply this long

	received atomic.Uint64
	acts     [numActs]atomic.Uint64
	// from counts the requests received from each client address and
	// port.
	fromMu sync.Mutex
	from   map[netip.AddrPort]uint64
	// Outstanding requests: received but not yet answered or dropped.
	outstanding, maxOutstanding atomic.Int64
	wg                          sync.WaitGroup
}

// startServer starts a test server that follows policy (nil: always
// reply) and holds each reply for delay. It stops when t ends.
func startServer(t testing.TB, policy func(n uint64) act, delay time.Duration) *testServer {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(4 << 20) // best effort: fewer drops under load
	if policy == nil {
		policy = func(uint64) act { return actReply }
	}
	s := &testServer{t: t, conn: c, Addr: c.LocalAddr().(*net.UDPAddr).AddrPort(), policy: policy, delay: delay,
		from: map[netip.AddrPort]uint64{}}
	s.wg.Add(1)
	// The goroutine exits when the socket is closed by the cleanup.
	go s.serve()
	t.Cleanup(func() {
		c.Close()
		s.wg.Wait()
	})
	return s
}

func (s *testServer) count(a act) uint64 { return s.acts[a].Load() }

// clients returns the client addresses and ports the server has received
// requests from, with the number of requests from each.
func (s *testServer) clients() map[netip.AddrPort]uint64 {
	s.fromMu.Lock()
	defer s.fromMu.Unlock()
	m := make(map[netip.AddrPort]uint64, len(s.from))
	for k, v := range s.from {
		m[k] = v
	}
	return m
}

func (s *testServer) serve() {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed
		}
		var req ntp.Header
		if req.Decode(buf[:n]) != nil || req.Mode != ntp.ModeClient {
			continue
		}
		rx := ntp.TimeFrom(time.Now())
		s.fromMu.Lock()
		s.from[from]++
		s.fromMu.Unlock()
		a := s.policy(s.received.Add(1) - 1)
		s.acts[a].Add(1)
		if a == actDrop {
			continue
		}
		if s.delay > 0 {
			s.later(a, req.Transmit, rx, from)
			continue
		}
		s.respond(a, req.Transmit, rx, from)
	}
}

// later responds after the server's delay. Unlike respond, it allocates.
func (s *testServer) later(a act, xmt, rx ntp.Time, to netip.AddrPort) {
	if o := s.outstanding.Add(1); o > s.maxOutstanding.Load() {
		s.maxOutstanding.Store(o) // only the serving goroutine stores it
	}
	s.wg.Add(1)
	// The goroutine exits after one reply.
	time.AfterFunc(s.delay, func() {
		defer s.wg.Done()
		s.outstanding.Add(-1)
		s.respond(a, xmt, rx, to)
	})
}

// respond sends what act a calls for to the request whose transmit
// timestamp was xmt, received at rx.
func (s *testServer) respond(a act, xmt, rx ntp.Time, to netip.AddrPort) {
	h := ntp.Header{Version: 4, Mode: ntp.ModeServer, Stratum: 2, Precision: -20,
		RefID: ntp.RefID{192, 0, 2, 1}, Reference: rx.Add(-time.Minute), Origin: xmt, Receive: rx}
	send := func(h ntp.Header, n int) {
		var b [ntp.HeaderLen]byte
		h.Transmit = ntp.TimeFrom(time.Now())
		if _, err := h.Encode(b[:]); err != nil {
			panic(err)
		}
		// A failed send looks like a drop; the counts then disagree and
		// the test says so.
		_, _ = s.conn.WriteToUDPAddrPort(b[:n], to)
	}
	switch a {
	case actDuplicate:
		send(h, ntp.HeaderLen)
	case actWrongOrigin:
		w := h
		w.Origin ^= 0x5A5A << 48 // another socket's request, if any
		send(w, ntp.HeaderLen)
	case actShort:
		send(h, ntp.HeaderLen-1)
	case actWrongMode:
		w := h
		w.Mode = ntp.ModeClient
		send(w, ntp.HeaderLen)
	case actKissRATE, actKissDENY:
		h.Stratum, h.RefID = 0, ntp.KissRATE
		if a == actKissDENY {
			h.RefID = ntp.KissDENY
		}
	case actUnsync:
		h.Leap = ntp.LeapUnsync
	}
	send(h, ntp.HeaderLen)
}

// gateServer holds requests until it holds n, then answers them all at
// once: a closed loop keeps it answering only if it keeps n requests
// outstanding. It answers the requests it holds anyway once no request
// has come for gateIdle, so that a run's last requests are answered.
type gateServer struct {
	conn *net.UDPConn
	Addr netip.AddrPort
	n    int

	full, partial atomic.Uint64 // batches answered, of n and of fewer
	// perPort is the most requests one client port had in a batch.
	perPort atomic.Int64
}

const gateIdle = 50 * time.Millisecond

// startGate starts a gate server for n requests. It stops when t ends.
func startGate(t testing.TB, n int) *gateServer {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	g := &gateServer{conn: c, Addr: c.LocalAddr().(*net.UDPAddr).AddrPort(), n: n}
	done := make(chan struct{})
	// The goroutine exits when the cleanup closes the socket.
	go func() {
		defer close(done)
		g.serve()
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return g
}

func (g *gateServer) serve() {
	var batch []held
	buf := make([]byte, 1500)
	for {
		_ = g.conn.SetReadDeadline(time.Now().Add(gateIdle)) // cannot fail on an open socket
		n, from, err := g.conn.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if len(batch) > 0 {
				g.partial.Add(1)
				g.release(batch, buf)
				batch = batch[:0]
			}
			continue
		}
		if err != nil {
			return // closed
		}
		var req ntp.Header
		if req.Decode(buf[:n]) != nil || req.Mode != ntp.ModeClient {
			continue
		}
		batch = append(batch, held{from, req.Transmit})
		if len(batch) == g.n {
			g.full.Add(1)
			g.release(batch, buf)
			batch = batch[:0]
		}
	}
}

type held struct {
	from netip.AddrPort
	xmt  ntp.Time
}

// release answers the requests of batch, using buf.
func (g *gateServer) release(batch []held, buf []byte) {
	ports := map[netip.AddrPort]int64{}
	for _, h := range batch {
		ports[h.from]++
		if ports[h.from] > g.perPort.Load() {
			g.perPort.Store(ports[h.from]) // only the serving goroutine stores it
		}
	}
	now := ntp.TimeFrom(time.Now())
	for _, h := range batch {
		r := ntp.Header{Version: 4, Mode: ntp.ModeServer, Stratum: 2, RefID: ntp.RefID{192, 0, 2, 1},
			Reference: now, Origin: h.xmt, Receive: now, Transmit: now}
		if _, err := r.Encode(buf); err == nil {
			_, _ = g.conn.WriteToUDPAddrPort(buf[:ntp.HeaderLen], h.from) // a failed send is a lost reply
		}
	}
}
