package udp

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// steerIndex is steeringProgram written in Go: the index of the socket a
// datagram from src reaches in a group of n that steers by prefixes of
// bits4 and bits6 bits.
func steerIndex(src netip.Addr, n, bits4, bits6 int, seed uint32) int {
	b, bits := src.AsSlice(), bits6
	if src.Is4() {
		bits = bits4
	}
	var a, x uint32
	for w := 0; bits > 0; w, bits = w+1, bits-32 {
		a = binary.BigEndian.Uint32(b[4*w:])
		if bits < 32 {
			a &= ^uint32(0) << (32 - bits)
		}
		if w == 0 {
			a ^= seed
		} else {
			a ^= x
		}
		a *= hashMul
		x = a
	}
	a >>= 16
	a ^= x
	return int(a % uint32(n))
}

// send sends one datagram to dst from src, on a new socket. IPv6 sources
// need not be configured on any interface (IPV6_FREEBIND): the datagram
// still travels over loopback only, and nothing is ever sent back to them.
func send(t testing.TB, src, dst netip.AddrPort, payload []byte) {
	t.Helper()
	family := unix.AF_INET6
	var from, to unix.Sockaddr = &unix.SockaddrInet6{Port: int(src.Port()), Addr: src.Addr().As16()},
		&unix.SockaddrInet6{Port: int(dst.Port()), Addr: dst.Addr().As16()}
	if src.Addr().Is4() {
		family = unix.AF_INET
		from = &unix.SockaddrInet4{Port: int(src.Port()), Addr: src.Addr().As4()}
		to = &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Bind(fd, from); err != nil {
		t.Fatalf("bind %v: %v", src, err)
	}
	if err := unix.Sendto(fd, payload, 0, to); err != nil {
		t.Fatalf("send from %v to %v: %v", src, dst, err)
	}
}

// arrival is a datagram that reached socket index conn of a group.
type arrival struct {
	conn int
	from netip.AddrPort
}

// collect reads from every Conn of a group until it has want datagrams and
// reports where each arrived. It closes the group before returning, which
// ends its reading goroutines.
func collect(t *testing.T, conns []*Conn, want int) []arrival {
	t.Helper()
	ch := make(chan arrival, want)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() { // exits when ReadBatch fails, at the latest once c is closed
			defer wg.Done()
			msgs := make([]Msg, 8)
			for j := range msgs {
				msgs[j].Buf = make([]byte, 64)
			}
			for {
				n, err := c.ReadBatch(msgs)
				if err != nil {
					return
				}
				for _, m := range msgs[:n] {
					ch <- arrival{i, m.Addr}
				}
			}
		}()
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	}()
	var got []arrival
	timeout := time.After(20 * time.Second)
	for len(got) < want {
		select {
		case a := <-ch:
			got = append(got, a)
		case <-timeout:
			t.Fatalf("%d of %d datagrams arrived", len(got), want)
		}
	}
	return got
}

// steerCase is a group and the clients that test its steering.
type steerCase struct {
	name   string
	listen string
	lc     ListenConfig
	dst    []netip.Addr // where to send: the first for IPv4, the last for IPv6
	// one holds the addresses of one client (one prefix), all of which,
	// with any source port, must reach one socket.
	one []netip.Addr
	// many holds clients that must spread over the group.
	many []netip.Addr
}

var (
	lo4 = netip.MustParseAddr("127.0.0.1")
	lo6 = netip.MustParseAddr("::1")
)

var steerCases = []steerCase{
	{name: "IPv4", listen: "127.0.0.1:0", dst: []netip.Addr{lo4},
		one: addrs("127.0.0.1"), many: addrs("127.0.0.%d", 20)},
	{name: "IPv4/24", listen: "127.0.0.1:0", lc: ListenConfig{IPv4Prefix: 24}, dst: []netip.Addr{lo4},
		one: addrs("127.0.7.%d", 20), many: addrs("127.0.%d.1", 20)},
	{name: "IPv6", listen: "[::1]:0", dst: []netip.Addr{lo6},
		one: addrs("2001:db8:0:7::%x", 20), many: addrs("2001:db8:0:%x::1", 20)},
	{name: "IPv6/48", listen: "[::1]:0", lc: ListenConfig{IPv6Prefix: 48}, dst: []netip.Addr{lo6},
		one: addrs("2001:db8:7:%x::1", 20), many: addrs("2001:db8:%x::1", 20)},
	{name: "IPv6/128", listen: "[::1]:0", lc: ListenConfig{IPv6Prefix: 128}, dst: []netip.Addr{lo6},
		one: addrs("2001:db8::7"), many: addrs("2001:db8::%x", 20)},
	{name: "dual", listen: "[::]:0", lc: ListenConfig{DualStack: true}, dst: []netip.Addr{lo4, lo6},
		one:  addrs("127.0.0.1"),
		many: append(addrs("127.0.0.%d", 10), addrs("2001:db8:0:%x::1", 10)...)},
	{name: "dual/24/48/IPv4", listen: "[::]:0", lc: ListenConfig{DualStack: true, IPv4Prefix: 24, IPv6Prefix: 48},
		dst: []netip.Addr{lo4, lo6}, one: addrs("127.0.7.%d", 20), many: addrs("2001:db8:%x::1", 20)},
	{name: "dual/24/48/IPv6", listen: "[::]:0", lc: ListenConfig{DualStack: true, IPv4Prefix: 24, IPv6Prefix: 48},
		dst: []netip.Addr{lo4, lo6}, one: addrs("2001:db8:7:%x::1", 20), many: addrs("127.0.%d.1", 20)},
}

// TestSteering checks that the kernel runs the steering program as
// steerIndex models it: a client reaches one socket whatever its source
// port and address within its prefix, and many clients spread.
func TestSteering(t *testing.T) {
	for _, tc := range steerCases {
		for n := 2; n <= 4; n++ {
			t.Run(fmt.Sprintf("%s/n=%d", tc.name, n), func(t *testing.T) {
				if tc.listen[0] == '[' {
					needIPv6(t)
				}
				tc.lc.Sockets = n
				bits4, bits6 := cmp.Or(tc.lc.IPv4Prefix, 32), cmp.Or(tc.lc.IPv6Prefix, 64)

				// One client: 50 source ports spread over its addresses.
				got := steerRun(t, tc, tc.one, 50)
				want := steerIndex(tc.one[0], n, bits4, bits6, testSeed)
				ports := map[uint16]bool{}
				for _, a := range got {
					ports[a.from.Port()] = true
					if a.conn != want {
						t.Errorf("datagram from %v reached socket %d; want %d", a.from, a.conn, want)
					}
				}
				if len(ports) < 40 {
					t.Errorf("only %d distinct source ports", len(ports))
				}

				// Many clients: each on its own socket, more than one in all.
				used := map[int]bool{}
				for _, a := range steerRun(t, tc, tc.many, len(tc.many)) {
					used[a.conn] = true
					if want := steerIndex(a.from.Addr(), n, bits4, bits6, testSeed); a.conn != want {
						t.Errorf("datagram from %v reached socket %d; want %d", a.from, a.conn, want)
					}
				}
				if len(used) < 2 {
					t.Errorf("%d clients all reached one socket", len(tc.many))
				}
			})
		}
	}
}

// steerRun opens the group of tc, sends count datagrams to it from the
// addresses srcs in turn, each from a new socket, and reports where they
// arrived.
func steerRun(t *testing.T, tc steerCase, srcs []netip.Addr, count int) []arrival {
	t.Helper()
	conns := listenT(t, tc.listen, tc.lc, true)
	for _, c := range conns {
		if !c.Steered() {
			t.Fatal("Steered() = false: the kernel refused the program")
		}
	}
	for i := range count {
		src := srcs[i%len(srcs)]
		dst := tc.dst[len(tc.dst)-1]
		if src.Is4() {
			dst = tc.dst[0]
		}
		send(t, netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, conns[0].LocalAddr().Port()), []byte("x"))
	}
	got := collect(t, conns, count)
	for _, a := range got {
		if a.from.Addr().Is4In6() {
			t.Errorf("datagram from %v: ReadBatch reported an IPv4-mapped address", a.from)
		}
	}
	return got
}

// addrs formats the addresses format(i) for i from 1 to count (default
// 1).
func addrs(format string, count ...int) []netip.Addr {
	var a []netip.Addr
	for i := 1; i <= cmp.Or(append(count, 1)...); i++ {
		s := format
		if strings.Contains(format, "%") {
			s = fmt.Sprintf(format, i)
		}
		a = append(a, netip.MustParseAddr(s))
	}
	return a
}
