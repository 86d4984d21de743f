package udp

import (
	"bytes"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// modes are the two ways a Conn can wait for datagrams.
var modes = []struct {
	name     string
	blocking bool
}{
	{"blocking", true},
	{"netpoll", false},
}

// testSeed is the steering seed of the groups tests open.
const testSeed = 1

// listenT opens a group for a test and closes it when the test ends.
func listenT(t testing.TB, addr string, lc ListenConfig, blocking bool) []*Conn {
	t.Helper()
	conns, err := listen(netip.MustParseAddrPort(addr), lc, options{blocking: blocking, seed: testSeed})
	if err != nil {
		t.Fatalf("listen(%s, %+v): %v", addr, lc, err)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return conns
}

// listen1 opens a group of one socket for a test.
func listen1(t testing.TB, addr string, blocking bool) *Conn {
	t.Helper()
	return listenT(t, addr, ListenConfig{Sockets: 1}, blocking)[0]
}

// needIPv6 skips the test if the host has no IPv6 loopback.
func needIPv6(t testing.TB) {
	t.Helper()
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	c.Close()
}

// udpClient opens a plain, unconnected client socket bound to addr.
func udpClient(t testing.TB, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readFrom reads one datagram from c, failing the test if none arrives
// within a generous deadline.
func readFrom(t testing.TB, c *net.UDPConn) (string, netip.AddrPort) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 2048)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("client read: %v", err)
	}
	return string(buf[:n]), from
}

// newMsgs returns n messages with buffers of size bytes.
func newMsgs(n, size int) []Msg {
	msgs := make([]Msg, n)
	for i := range msgs {
		msgs[i].Buf = make([]byte, size)
	}
	return msgs
}

// readFull reads into msgs until all of them hold a datagram.
func readFull(c *Conn, msgs []Msg) error {
	for got := 0; got < len(msgs); {
		n, err := c.ReadBatch(msgs[got:])
		if err != nil {
			return err
		}
		got += n
	}
	return nil
}

// writeAll sends msgs, failing on the first error.
func writeAll(c *Conn, msgs []Msg) error {
	n, err := c.WriteBatch(msgs)
	if err == nil && n != len(msgs) {
		err = fmt.Errorf("WriteBatch sent %d of %d", n, len(msgs))
	}
	return err
}

// readAll reads from c until it has want datagrams into buffers of size
// bytes, and returns them.
func readAll(t testing.TB, c *Conn, want, size int) []Msg {
	t.Helper()
	return readInto(t, c, newMsgs(want, size))
}

// readInto reads from c until every message of msgs holds a datagram,
// failing the test if they do not arrive within a generous deadline. It
// runs ReadBatch in a goroutine (which exits before readInto returns: on
// success, or because readInto closes c) so that a lost datagram fails
// the test instead of hanging it.
func readInto(t testing.TB, c *Conn, msgs []Msg) []Msg {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- readFull(c, msgs) }() // exits once msgs are full, or ReadBatch fails
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ReadBatch: %v", err)
		}
		return msgs
	case <-time.After(20 * time.Second):
		c.Close()
		<-done
		t.Fatalf("ReadBatch: %d datagrams did not arrive", len(msgs))
		return nil
	}
}

// fdOf returns the descriptor of c.
func fdOf(t testing.TB, c *Conn) int {
	t.Helper()
	var fd int
	if err := c.rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		t.Fatal(err)
	}
	return fd
}

// waitInSyscall waits until a thread of the process is blocked in system
// call nr on descriptor fd (its first argument), and returns the thread's
// id. It skips the test if /proc does not show system calls.
func waitInSyscall(t testing.TB, nr uintptr, fd int) int {
	t.Helper()
	if _, err := os.ReadFile("/proc/thread-self/syscall"); err != nil {
		t.Skipf("/proc shows no system calls: %v", err)
	}
	want := fmt.Sprintf("%d 0x%x ", nr, fd)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		paths, _ := filepath.Glob("/proc/self/task/*/syscall")
		for _, p := range paths {
			// A thread that ended since the glob has no file any more.
			b, _ := os.ReadFile(p)
			if bytes.HasPrefix(b, []byte(want)) {
				tid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				return tid
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no thread blocked in system call %d on descriptor %d", nr, fd)
	return 0
}

// waitParked waits until a goroutine waits in the network poller inside
// function fn.
func waitParked(t testing.TB, fn string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "[IO wait") && strings.Contains(g, fn) {
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no goroutine waits in the poller in %s", fn)
}

// in6Ifreq is the kernel's struct in6_ifreq, for SIOCSIFADDR on an IPv6
// socket.
type in6Ifreq struct {
	addr      [16]byte
	prefixlen uint32
	ifindex   int32
}

// enterNetns moves the calling goroutine into a new network namespace with
// its loopback interface up and the IPv6 addresses addrs added to it. The
// goroutine stays locked to its thread, which the runtime ends with the
// goroutine (the namespace goes with it); sockets the goroutine opens from
// then on belong to the namespace. It skips the test without the
// privilege to create a namespace.
func enterNetns(t testing.TB, addrs ...netip.Addr) {
	t.Helper()
	runtime.LockOSThread() // never unlocked, see above
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		t.Skipf("cannot create a network namespace: %v", err)
	}
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		t.Fatalf("SIOCGIFFLAGS lo: %v", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		t.Fatalf("SIOCSIFFLAGS lo: %v", err)
	}
	for _, a := range addrs {
		req := in6Ifreq{addr: a.As16(), prefixlen: 128, ifindex: 1} // lo is 1 in a new namespace
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCSIFADDR, uintptr(unsafe.Pointer(&req)))
		if e != 0 {
			t.Fatalf("add %v to lo: %v", a, e)
		}
		waitAddr(t, a)
	}
}

// waitAddr waits until a can be bound to: the kernel finishes adding an
// address asynchronously, and until then does not deliver to it.
func waitAddr(t testing.TB, a netip.Addr) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: a.AsSlice()})
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v not usable: %v", a, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// hugeIndex is an interface index above the kernel's int range (negative,
// and so invalid too, where int has 32 bits).
var hugeIndex = int(hugeIndex64)

var hugeIndex64 int64 = math.MaxInt32 + 1
