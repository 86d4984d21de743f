package udp

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// checkReply sends "ping" from client to dst, where s listens, checks what
// ReadBatch reports, and answers from the address the ping was sent to:
// the client must see the reply come from dst. With control set, it also
// checks that a reply without Local comes from another address, which
// shows that the first check can fail.
func checkReply(t *testing.T, s *Conn, client *net.UDPConn, dst netip.AddrPort, control bool) {
	t.Helper()
	before := time.Now()
	if _, err := client.WriteToUDPAddrPort([]byte("ping"), dst); err != nil {
		t.Fatal(err)
	}
	m := readAll(t, s, 1, 2048)[0]
	if got := string(m.Buf[:m.N]); got != "ping" || m.Trunc {
		t.Errorf("payload %q, Trunc %v; want \"ping\", false", got, m.Trunc)
	}
	want := client.LocalAddr().(*net.UDPAddr).AddrPort()
	if want.Addr().Unmap() != m.Addr.Addr() || want.Port() != m.Addr.Port() || m.Addr.Addr().Is4In6() {
		t.Errorf("Addr = %v; want %v", m.Addr, want)
	}
	if m.Local != dst.Addr() {
		t.Errorf("Local = %v; want %v", m.Local, dst.Addr())
	}
	if lo := loopbackIndex(t); m.IfIndex != lo {
		t.Errorf("IfIndex = %d; want %d (lo)", m.IfIndex, lo)
	}
	rx := time.Unix(0, m.RxTime)
	if d := rx.Sub(before); d < -time.Second || d > time.Second+time.Since(before) {
		t.Errorf("RxTime = %v, %v from sending", rx, d)
	}

	copy(m.Buf, "pong")
	m.N = 4
	if n, err := s.WriteBatch([]Msg{m}); n != 1 || err != nil {
		t.Fatalf("WriteBatch = %d, %v; want 1, nil", n, err)
	}
	if got, from := readFrom(t, client); got != "pong" || from != dst {
		t.Errorf("client got %q from %v; want \"pong\" from %v", got, from, dst)
	}
	if !control {
		return
	}
	m.Local = netip.Addr{}
	if n, err := s.WriteBatch([]Msg{m}); n != 1 || err != nil {
		t.Fatalf("WriteBatch without Local = %d, %v; want 1, nil", n, err)
	}
	if _, from := readFrom(t, client); from.Addr() == dst.Addr() {
		t.Errorf("without Local the reply also came from %v: the test proves nothing", from)
	}
}

func loopbackIndex(t testing.TB) int {
	t.Helper()
	ifi, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	return ifi.Index
}

// TestPktinfoReply checks that a reply leaves from the address a datagram
// was sent to, on a socket bound to the unspecified address.
func TestPktinfoReply(t *testing.T) {
	for _, tc := range []struct {
		name, listen, client, dst string
		dual, ipv6, control       bool
	}{
		{name: "IPv4", listen: "0.0.0.0:0", client: "127.0.0.1:0", dst: "127.0.0.2", control: true},
		{name: "IPv6", listen: "[::]:0", client: "[::1]:0", dst: "::1", ipv6: true},
		{name: "dual/IPv4", listen: "[::]:0", client: "127.0.0.1:0", dst: "127.0.0.2", dual: true, ipv6: true, control: true},
		{name: "dual/IPv6", listen: "[::]:0", client: "[::1]:0", dst: "::1", dual: true, ipv6: true},
	} {
		for _, mode := range modes {
			t.Run(tc.name+"/"+mode.name, func(t *testing.T) {
				if tc.ipv6 {
					needIPv6(t)
				}
				s := listenT(t, tc.listen, ListenConfig{Sockets: 1, DualStack: tc.dual}, mode.blocking)[0]
				dst := netip.AddrPortFrom(netip.MustParseAddr(tc.dst), s.LocalAddr().Port())
				checkReply(t, s, udpClient(t, tc.client), dst, tc.control)
			})
		}
	}
}

// TestPktinfoReplyIPv6 checks the reply address for IPv6 in a network
// namespace of its own, where the loopback interface has a second IPv6
// address.
func TestPktinfoReplyIPv6(t *testing.T) {
	local := netip.MustParseAddr("2001:db8::2")
	enterNetns(t, local)
	for _, dual := range []bool{false, true} {
		s := listenT(t, "[::]:0", ListenConfig{Sockets: 1, DualStack: dual}, true)[0]
		checkReply(t, s, udpClient(t, "[::1]:0"), netip.AddrPortFrom(local, s.LocalAddr().Port()), true)
	}
}

// TestTrunc checks that a datagram longer than its buffer is flagged, and
// that the flag and length of each message of a batch are its own.
func TestTrunc(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			s := listen1(t, "127.0.0.1:0", mode.blocking)
			client := udpClient(t, "127.0.0.1:0")
			payloads := []string{strings.Repeat("0123456789", 10), "short", "", "abc"}
			for _, p := range payloads {
				if _, err := client.WriteToUDPAddrPort([]byte(p), s.LocalAddr()); err != nil {
					t.Fatal(err)
				}
			}
			msgs := newMsgs(len(payloads), 10)
			msgs[3].Buf = nil
			readInto(t, s, msgs)
			for i, want := range []struct {
				payload string
				trunc   bool
			}{{"0123456789", true}, {"short", false}, {"", false}, {"", true}} {
				m := msgs[i]
				if got := string(m.Buf[:m.N]); got != want.payload || m.Trunc != want.trunc {
					t.Errorf("datagram %d: %q, Trunc %v; want %q, %v", i, got, m.Trunc, want.payload, want.trunc)
				}
			}
		})
	}
}

// TestWriteBatchBad checks that WriteBatch refuses, without sending it, a
// message that the socket cannot send.
func TestWriteBatchBad(t *testing.T) {
	v4 := netip.MustParseAddrPort("127.0.0.1:9")
	v6 := netip.MustParseAddrPort("[::1]:9")
	mapped := netip.MustParseAddrPort("[::ffff:127.0.0.1]:9")
	lo4, lo6 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")
	for _, tc := range []struct {
		name, listen string
		dual         bool
		m            Msg
	}{
		{"negative N", "127.0.0.1:0", false, Msg{N: -1, Addr: v4}},
		{"N past Buf", "127.0.0.1:0", false, Msg{N: 2, Addr: v4}},
		{"negative IfIndex", "127.0.0.1:0", false, Msg{N: 1, Addr: v4, IfIndex: -1}},
		{"huge IfIndex", "127.0.0.1:0", false, Msg{N: 1, Addr: v4, IfIndex: hugeIndex}},
		{"no Addr", "127.0.0.1:0", false, Msg{N: 1}},
		{"IPv6 Addr on IPv4", "127.0.0.1:0", false, Msg{N: 1, Addr: v6}},
		{"IPv6 Local on IPv4", "127.0.0.1:0", false, Msg{N: 1, Addr: v4, Local: lo6}},
		{"IPv4 Addr on IPv6", "[::1]:0", false, Msg{N: 1, Addr: v4}},
		{"mapped Addr on IPv6", "[::1]:0", false, Msg{N: 1, Addr: mapped}},
		{"IPv4 Local on IPv6", "[::1]:0", false, Msg{N: 1, Addr: v6, Local: lo4}},
		{"IPv6 Local for IPv4", "[::]:0", true, Msg{N: 1, Addr: v4, Local: lo6}},
		{"IPv4 Local for IPv6", "[::]:0", true, Msg{N: 1, Addr: v6, Local: lo4}},
		{"mapped Local for IPv6", "[::]:0", true, Msg{N: 1, Addr: v6, Local: mapped.Addr()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.Contains(tc.listen, ":") {
				needIPv6(t)
			}
			c := listenT(t, tc.listen, ListenConfig{Sockets: 1, DualStack: tc.dual}, false)[0]
			tc.m.Buf = []byte("x")
			if n, err := c.WriteBatch([]Msg{tc.m}); n != 0 || !errors.Is(err, ErrBadMsg) {
				t.Errorf("WriteBatch(%+v) = %d, %v; want 0, ErrBadMsg", tc.m, n, err)
			}
		})
	}
}

// TestWriteBatchPartial checks that WriteBatch stops at a message it or
// the kernel refuses, having sent those before it, and that the rest can
// be sent with another call.
func TestWriteBatchPartial(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  Msg
		want func(error) bool
	}{
		{"bad", Msg{N: -1}, func(err error) bool { return errors.Is(err, ErrBadMsg) }},
		{"refused", Msg{N: 1, Local: netip.MustParseAddr("192.0.2.1")}, func(err error) bool {
			var errno syscall.Errno
			return errors.As(err, &errno)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := listen1(t, "127.0.0.1:0", false)
			c := listen1(t, "127.0.0.1:0", false)
			msgs := []Msg{{Buf: []byte("0")}, {Buf: []byte("1")}, tc.bad, {Buf: []byte("3")}}
			msgs[2].Buf = []byte("2")
			for i := range msgs {
				msgs[i].Addr = s.LocalAddr()
				if i != 2 {
					msgs[i].N = 1
				}
			}
			n, err := c.WriteBatch(msgs)
			if n != 2 || !tc.want(err) {
				t.Fatalf("WriteBatch = %d, %v; want 2 and the error", n, err)
			}
			t.Logf("WriteBatch stopped with %v", err)
			if n, err := c.WriteBatch(msgs[3:]); n != 1 || err != nil {
				t.Fatalf("WriteBatch(rest) = %d, %v; want 1, nil", n, err)
			}
			var got string
			for _, m := range readAll(t, s, 3, 16) {
				got += string(m.Buf[:m.N])
			}
			if got != "013" {
				t.Errorf("received %q; want \"013\"", got)
			}
		})
	}
}

// TestCloseUnblocksRead checks that Close ends a ReadBatch that waits for
// a datagram, and that every call after Close fails.
func TestCloseUnblocksRead(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			c := listen1(t, "127.0.0.1:0", mode.blocking)
			errc := make(chan error, 1)
			go func() { // exits when ReadBatch returns, which Close forces
				_, err := c.ReadBatch(newMsgs(1, 64))
				errc <- err
			}()
			if mode.blocking {
				waitInSyscall(t, unix.SYS_RECVMMSG, fdOf(t, c))
			} else {
				waitParked(t, "(*Conn).ReadBatch")
			}
			closed := make(chan error, 1)
			go func() { closed <- c.Close() }() // exits when Close returns
			timeout := time.After(20 * time.Second)
			for range 2 {
				select {
				case err := <-closed:
					if err != nil {
						t.Errorf("Close: %v", err)
					}
				case err := <-errc:
					if !errors.Is(err, net.ErrClosed) {
						t.Errorf("ReadBatch = %v; want net.ErrClosed", err)
					}
				case <-timeout:
					// The goroutines stay blocked; the test binary ends soon.
					t.Fatal("Close or ReadBatch still blocked 20s after Close")
				}
			}
			if _, err := c.ReadBatch(make([]Msg, 1)); !errors.Is(err, net.ErrClosed) {
				t.Errorf("ReadBatch after Close = %v; want net.ErrClosed", err)
			}
			if _, err := c.WriteBatch(make([]Msg, 1)); !errors.Is(err, net.ErrClosed) {
				t.Errorf("WriteBatch after Close = %v; want net.ErrClosed", err)
			}
			if err := c.Close(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("second Close = %v; want net.ErrClosed", err)
			}
		})
	}
}

// TestReadRetriesEINTR interrupts a blocked ReadBatch with signals. With a
// receive timeout set, the kernel does not restart an interrupted
// recvmmsg(2) but fails it with EINTR, which ReadBatch must retry.
func TestReadRetriesEINTR(t *testing.T) {
	c := listen1(t, "127.0.0.1:0", true)
	var serr error
	tv := unix.Timeval{Sec: 60}
	if err := c.rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptTimeval(int(fd), unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	msgs := newMsgs(1, 64)
	errc := make(chan error, 1)
	go func() { // exits when ReadBatch returns: with a datagram, an error, or after Close
		_, err := c.ReadBatch(msgs)
		errc <- err
	}()
	for range 5 {
		// The runtime ignores a SIGURG that it did not ask for.
		tid := waitInSyscall(t, unix.SYS_RECVMMSG, fdOf(t, c))
		if err := unix.Tgkill(unix.Getpid(), tid, unix.SIGURG); err != nil {
			t.Fatal(err)
		}
	}
	client := udpClient(t, "127.0.0.1:0")
	if _, err := client.WriteToUDPAddrPort([]byte("x"), c.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if got := string(msgs[0].Buf[:msgs[0].N]); err != nil || got != "x" {
			t.Errorf("ReadBatch after signals = %q, %v; want \"x\", nil", got, err)
		}
	case <-time.After(20 * time.Second):
		c.Close()
		<-errc
		t.Fatal("ReadBatch: the datagram did not arrive")
	}
}

// TestListen checks the group Listen opens and the errors it reports.
func TestListen(t *testing.T) {
	conns := listenT(t, "127.0.0.1:0", ListenConfig{}, true)
	if len(conns) != runtime.NumCPU() {
		t.Errorf("ListenConfig{} opened %d sockets; want one per CPU, %d", len(conns), runtime.NumCPU())
	}
	for _, c := range conns {
		if c.LocalAddr() != conns[0].LocalAddr() || c.LocalAddr().Port() == 0 || !c.Steered() {
			t.Errorf("socket on %v (Steered %v), first on %v; want one port, steered",
				c.LocalAddr(), c.Steered(), conns[0].LocalAddr())
		}
	}
	if c := listen1(t, "127.0.0.1:0", true); !c.Steered() {
		t.Error("a group of one socket is not Steered")
	}
	if _, err := Listen(conns[0].LocalAddr(), 2); !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("Listen on a bound group's address = %v; want EADDRINUSE", err)
	}
	for _, lc := range []ListenConfig{{IPv4Prefix: 33}, {IPv4Prefix: -1}, {IPv6Prefix: 129}, {IPv6Prefix: -8}} {
		if conns, err := lc.Listen(netip.MustParseAddrPort("127.0.0.1:0")); err == nil {
			closeAll(nil, conns)
			t.Errorf("%+v: Listen succeeded; want an error", lc)
		}
	}
	if _, err := Listen(netip.AddrPort{}, 1); err == nil {
		t.Error("Listen on the zero AddrPort succeeded; want an error")
	}
}

// TestFromFile: a socket handed over as a file (as to another process)
// works as the original did: same address, destination addresses,
// timestamps, and replies from the address asked; IPv4, IPv6 and dual
// stack. Something other than a UDP socket is refused.
func TestFromFile(t *testing.T) {
	for _, tc := range []struct {
		name, listen, client, dst string
		dual, ipv6                bool
	}{
		{name: "IPv4", listen: "0.0.0.0:0", client: "127.0.0.1:0", dst: "127.0.0.2"},
		{name: "dual/IPv4", listen: "[::]:0", client: "127.0.0.1:0", dst: "127.0.0.2", dual: true, ipv6: true},
		{name: "IPv6", listen: "[::]:0", client: "[::1]:0", dst: "::1", ipv6: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.ipv6 {
				needIPv6(t)
			}
			orig := listenT(t, tc.listen, ListenConfig{Sockets: 1, DualStack: tc.dual}, true)[0]
			f, err := orig.File()
			if err != nil {
				t.Fatal(err)
			}
			if err := orig.Release(); err != nil {
				t.Fatal(err)
			}
			s, err := FromFile(f)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.LocalAddr() != orig.LocalAddr() || s.dual != tc.dual {
				t.Errorf("handed over: %v dual %v; want %v dual %v", s.LocalAddr(), s.dual, orig.LocalAddr(), tc.dual)
			}
			dst := netip.AddrPortFrom(netip.MustParseAddr(tc.dst), s.LocalAddr().Port())
			checkReply(t, s, udpClient(t, tc.client), dst, !tc.ipv6 || tc.dual)
		})
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FromFile(f); err == nil {
		t.Error("FromFile of a TCP socket: no error")
	}
}
