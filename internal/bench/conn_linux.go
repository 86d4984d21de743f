package bench

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/meridian-ntp/meridian/internal/udp"
)

// oobSize holds one SCM_TIMESTAMPNS control message with room to spare.
const oobSize = 64

// sysBatch holds the mmsghdr array of a batch, with one iovec and one
// control buffer per message. The headers point into Go memory that the
// batch keeps alive; the garbage collector does not move it.
type sysBatch struct {
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
	oob  []byte
}

func (s *sysBatch) init(bufs [][]byte) {
	n := len(bufs)
	s.hdrs = make([]unix.Mmsghdr, n)
	s.iovs = make([]unix.Iovec, n)
	s.oob = make([]byte, n*oobSize)
	for i, b := range bufs {
		s.iovs[i].Base = &b[0]
		s.iovs[i].SetLen(len(b))
		s.hdrs[i].Hdr.Iov = &s.iovs[i]
		s.hdrs[i].Hdr.SetIovlen(1)
	}
}

// conn is a set of connected, non-blocking UDP sockets and an epoll
// instance watching them. Not safe for concurrent use.
type conn struct {
	epfd   int
	fds    []int
	events []unix.EpollEvent
	// ts is the argument of nanosleep, kept here so that passing it to
	// the kernel allocates nothing.
	ts unix.Timespec
}

// dial opens n UDP sockets connected to server, each bound by the kernel
// to its own ephemeral port, with kernel receive timestamps on. Socket i
// is bound to the source address src(i) first, unless that is the zero
// Addr.
func dial(server netip.AddrPort, n int, src func(i int) netip.Addr) (*conn, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	c := &conn{epfd: epfd, events: make([]unix.EpollEvent, n)}
	for i := range n {
		fd, err := dialOne(server, src(i))
		if err != nil {
			c.close()
			return nil, err
		}
		c.fds = append(c.fds, fd)
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			c.close()
			return nil, fmt.Errorf("epoll: %w", err)
		}
	}
	return c, nil
}

func dialOne(server netip.AddrPort, src netip.Addr) (int, error) {
	var sa unix.Sockaddr
	domain := unix.AF_INET
	if a := server.Addr(); a.Is4() {
		sa = &unix.SockaddrInet4{Port: int(server.Port()), Addr: a.As4()}
	} else {
		domain = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(server.Port()), Addr: a.As16()}
	}
	fd, err := unix.Socket(domain, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("socket: SO_TIMESTAMPNS: %w", err)
	}
	// A larger receive buffer absorbs bursts of replies while the worker
	// is busy elsewhere. Best effort: the kernel caps it at rmem_max, and
	// the default (about 200 KiB) also works, only with more loss under
	// a burst.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	if src.IsValid() {
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: src.As4()}); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("bind %v: %w", src, err)
		}
	}
	if err := unix.Connect(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("connect %v: %w", server, err)
	}
	return fd, nil
}

func (c *conn) close() {
	for _, fd := range c.fds {
		unix.Close(fd) // nothing to do about an error, and no data to lose
	}
	unix.Close(c.epfd)
}

// wait blocks until a socket has datagrams to read or timeout passes,
// and returns the number of ready sockets; ready(i) gives their indices.
// The timeout is rounded up to whole milliseconds.
func (c *conn) wait(timeout time.Duration) (int, error) {
	ms := int((max(timeout, 0) + time.Millisecond - 1) / time.Millisecond)
	n, err := unix.EpollWait(c.epfd, c.events, ms)
	if errors.Is(err, unix.EINTR) {
		return 0, nil
	}
	return n, err
}

// sleep blocks for d or until a signal comes.
func (c *conn) sleep(d time.Duration) {
	c.ts = unix.NsecToTimespec(int64(d))
	_ = unix.Nanosleep(&c.ts, nil) // EINTR only ends the sleep early
}

// ready returns the index of the i-th socket reported by wait.
func (c *conn) ready(i int) int { return int(c.events[i].Fd) }

// send sends the first n datagrams of b, whole buffers, on socket i, and
// returns how many were sent.
func (c *conn) send(i int, b *batch, n int) (int, error) {
	h := b.sys.hdrs[:n]
	r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(c.fds[i]),
		uintptr(unsafe.Pointer(&h[0])), uintptr(n), unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// recv reads up to a batch of datagrams from socket i without blocking,
// and returns how many it read. It fails with EAGAIN if there are none.
func (c *conn) recv(i int, b *batch) (int, error) {
	h := b.sys.hdrs
	for j := range h {
		h[j].Hdr.Control = &b.sys.oob[j*oobSize]
		h[j].Hdr.SetControllen(oobSize)
		h[j].Hdr.Flags = 0
	}
	r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(c.fds[i]),
		uintptr(unsafe.Pointer(&h[0])), uintptr(len(h)), unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	n := int(r)
	for j := range n {
		b.lens[j] = int(h[j].Len)
		b.trunc[j] = h[j].Hdr.Flags&unix.MSG_TRUNC != 0
		b.rx[j] = rxTimestamp(b.sys.oob[j*oobSize : j*oobSize+int(h[j].Hdr.Controllen)])
	}
	return n, nil
}

// isAgain reports whether err means a non-blocking call found nothing to
// do.
func isAgain(err error) bool { return errors.Is(err, unix.EAGAIN) }

// rxTimestamp returns the SCM_TIMESTAMPNS receive time in oob, the
// control data of one datagram, in Unix ns, or 0 if there is none, it is
// malformed or it is not after the epoch. It allocates nothing and never
// panics.
func rxTimestamp(oob []byte) int64 {
	if ns, ok := udp.RxTime(oob); ok && ns > 0 {
		return ns
	}
	return 0
}
