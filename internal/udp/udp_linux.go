package udp

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Conn is one UDP socket of a SO_REUSEPORT group opened by Listen, read and
// written in batches with recvmmsg(2) and sendmmsg(2).
//
// A Conn is meant to be used by one goroutine, best locked to its OS
// thread: ReadBatch must not be called concurrently with ReadBatch, nor
// WriteBatch with WriteBatch (one ReadBatch and one WriteBatch may run at
// the same time). Close may be called from any goroutine at any time.
type Conn struct {
	file    io.Closer       // owns the descriptor: an *os.File, or a *net.UDPConn in the poller
	rc      syscall.RawConn // of file
	local   netip.AddrPort
	family  int  // unix.AF_INET or unix.AF_INET6
	dual    bool // a dual-stack IPv6 socket
	steered bool // see Steered
	// blocking selects how a read waits: in the kernel, on a blocking
	// descriptor (Listen's choice), or in Go's network poller.
	blocking bool
	closed   atomic.Bool

	rx, tx batch // the arrays of ReadBatch and of WriteBatch

	// recvFn and sendFn are the method values c.recv and c.send, made once
	// so that passing them to rc.Read and rc.Write does not allocate.
	recvFn, sendFn func(fd uintptr) bool
}

// options are the choices Listen makes that tests and benchmarks vary.
type options struct {
	blocking bool
	seed     uint32 // of the steering hash
}

// rcvBuf is the receive buffer Listen asks for per socket: room for a few
// thousand small datagrams, to ride out bursts while a worker is busy.
const rcvBuf = 4 << 20

// Listen opens lc.Sockets UDP sockets bound to addr, one for each worker,
// in one SO_REUSEPORT group. If addr has port 0, the kernel picks a port
// and all the sockets share it. Receive timestamps and destination
// addresses are enabled, the receive buffer is enlarged, and datagrams are
// steered to sockets by client address (see Conn.Steered).
//
// Listen fails with EADDRINUSE if a SO_REUSEPORT group is already bound to
// addr, even one of the same user, rather than share its traffic (this
// needs the steering program, so holds whenever Steered reports true). The
// sockets are close-on-exec.
func (lc ListenConfig) Listen(addr netip.AddrPort) ([]*Conn, error) {
	var seed [4]byte
	rand.Read(seed[:]) // never fails (crypto/rand crashes the program instead)
	return listen(addr, lc, options{blocking: true, seed: binary.NativeEndian.Uint32(seed[:])})
}

// group is what listen needs to open the sockets of one group.
type group struct {
	sa     unix.Sockaddr // to bind; after the first bind, with its port
	family int
	dual   bool
	steer  steering
}

// listen is Listen with its choices spelled out.
func listen(addr netip.AddrPort, lc ListenConfig, o options) ([]*Conn, error) {
	g, err := newGroup(addr, lc, o.seed)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	fds, steered, err := g.bind()
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	conns := make([]*Conn, 0, len(fds))
	for i, fd := range fds {
		c, err := newConn(fd, g.family, o.blocking)
		if err != nil {
			closeAll(fds[i+1:], conns)
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		c.dual, c.steered = g.dual, steered
		conns = append(conns, c)
	}
	return conns, nil
}

// newGroup checks lc and works out the group for addr.
func newGroup(addr netip.AddrPort, lc ListenConfig, seed uint32) (*group, error) {
	g := &group{steer: steering{n: lc.Sockets, bits4: lc.IPv4Prefix, bits6: lc.IPv6Prefix, seed: seed}}
	if g.steer.n <= 0 {
		g.steer.n = runtime.NumCPU()
	}
	if g.steer.bits4 == 0 {
		g.steer.bits4 = 32
	}
	if g.steer.bits6 == 0 {
		g.steer.bits6 = 64
	}
	if g.steer.bits4 < 0 || g.steer.bits4 > 32 || g.steer.bits6 < 0 || g.steer.bits6 > 128 {
		return nil, fmt.Errorf("steering prefix lengths /%d, /%d out of range", lc.IPv4Prefix, lc.IPv6Prefix)
	}
	var err error
	if g.sa, g.family, err = sockaddr(addr); err != nil {
		return nil, err
	}
	g.dual = g.family == unix.AF_INET6 && lc.DualStack
	g.steer.v4 = g.family == unix.AF_INET || g.dual
	g.steer.v6 = g.family == unix.AF_INET6
	return g, nil
}

// bind opens and binds the sockets of g and reports whether the steering
// program is attached.
//
// The program goes on the first socket before it is bound: that creates
// the group then, so that bind sees a group where an existing one would be
// joined silently and fails with EADDRINUSE instead, and so that a
// kernel-chosen port is one no other group uses. The later sockets join
// the group when they are bound to the same address. If the kernel refuses
// the program, the error is ignored (see Conn.Steered).
func (g *group) bind() (fds []int, steered bool, err error) {
	for i := range g.steer.n {
		fd, err := socket(g.family, g.dual)
		if err != nil {
			closeAll(fds, nil)
			return nil, false, err
		}
		fds = append(fds, fd)
		if i == 0 && attachSteering(fd, g.steer) == nil {
			steered = true
		}
		if err := unix.Bind(fd, g.sa); err != nil {
			closeAll(fds, nil)
			return nil, false, fmt.Errorf("bind: %w", err)
		}
		if i == 0 {
			if g.sa, err = unix.Getsockname(fd); err != nil {
				closeAll(fds, nil)
				return nil, false, fmt.Errorf("getsockname: %w", err)
			}
		}
	}
	return fds, steered, nil
}

// closeAll closes the descriptors fds and the Conns conns, ignoring errors:
// they are closed on a failure that is reported instead.
func closeAll(fds []int, conns []*Conn) {
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
	for _, c := range conns {
		_ = c.Close()
	}
}

// sockaddr converts addr for bind(2) and returns its address family.
func sockaddr(addr netip.AddrPort) (unix.Sockaddr, int, error) {
	a := addr.Addr()
	switch {
	case !a.IsValid():
		return nil, 0, fmt.Errorf("invalid address")
	case a.Unmap().Is4():
		return &unix.SockaddrInet4{Port: int(addr.Port()), Addr: a.Unmap().As4()}, unix.AF_INET, nil
	}
	sa := &unix.SockaddrInet6{Port: int(addr.Port()), Addr: a.As16()}
	if z := a.Zone(); z != "" {
		if i, err := strconv.ParseUint(z, 10, 31); err == nil {
			sa.ZoneId = uint32(i)
		} else if ifi, err := net.InterfaceByName(z); err == nil {
			sa.ZoneId = uint32(ifi.Index)
		} else {
			return nil, 0, err
		}
	}
	return sa, unix.AF_INET6, nil
}

// socket opens a close-on-exec UDP socket of family (dual: a dual-stack
// IPv6 one) with the options every Conn needs.
func socket(family int, dual bool) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := setOptions(fd, family, dual); err != nil {
		_ = unix.Close(fd) // the setsockopt error is what matters
		return -1, err
	}
	// Best effort: SO_RCVBUFFORCE exceeds net.core.rmem_max but needs
	// CAP_NET_ADMIN; without it SO_RCVBUF is silently capped at rmem_max.
	// Either error is ignored, since a smaller buffer only drops datagrams
	// sooner in a burst, which the protocol tolerates, and should not keep
	// the server from starting.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
	}
	return fd, nil
}

// sockopt is an integer socket option.
type sockopt struct {
	level, opt, value int
	name              string
}

// setOptions sets the options of a socket of family: SO_REUSEPORT, receive
// timestamps and packet information, and IPV6_V6ONLY unless dual.
func setOptions(fd, family int, dual bool) error {
	opts := []sockopt{
		{unix.SOL_SOCKET, unix.SO_REUSEPORT, 1, "SO_REUSEPORT"},
		{unix.IPPROTO_IP, unix.IP_PKTINFO, 1, "IP_PKTINFO"},
	}
	if family == unix.AF_INET6 {
		v6only := 1
		if dual {
			v6only = 0
		}
		// IPV6_RECVPKTINFO also covers the IPv4 datagrams of a dual-stack
		// socket, with IPv4-mapped addresses.
		opts[1] = sockopt{unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO"}
		opts = append(opts, sockopt{unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v6only, "IPV6_V6ONLY"})
	}
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.value); err != nil {
			return fmt.Errorf("setsockopt %s: %w", o.name, err)
		}
	}
	// SO_TIMESTAMPNS_NEW (Linux 5.1) has 64-bit seconds on every platform;
	// the older SO_TIMESTAMPNS differs only on 32-bit ones.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_NEW, 1) == nil {
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_OLD, 1); err != nil {
		return fmt.Errorf("setsockopt SO_TIMESTAMPNS: %w", err)
	}
	return nil
}

// newConn wraps the bound socket fd, which it takes over: it is closed on
// error too.
//
// A blocking Conn keeps its descriptor out of Go's network poller: were it
// registered there, every datagram's arrival would also wake a thread that
// waits in epoll_wait(2) for nothing, several context switches per batch.
func newConn(fd, family int, blocking bool) (*Conn, error) {
	c := &Conn{family: family, blocking: blocking}
	var err error
	if blocking {
		err = c.openBlocking(fd)
	} else {
		err = c.openPolled(fd)
	}
	if err != nil {
		return nil, err
	}
	if c.local, err = localAddr(c.rc); err != nil {
		_ = c.file.Close() // the error above is what matters
		return nil, err
	}
	c.rx.controlLen = rxControlLen
	c.tx.controlLen = txControlLen
	c.recvFn, c.sendFn = c.recv, c.send
	return c, nil
}

// openBlocking makes fd a blocking descriptor owned by an *os.File, which
// leaves it out of the network poller.
func (c *Conn) openBlocking(fd int) error {
	if err := unix.SetNonblock(fd, false); err != nil {
		_ = unix.Close(fd)
		return fmt.Errorf("set blocking: %w", err)
	}
	f := os.NewFile(uintptr(fd), "udp")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return err
	}
	c.file, c.rc = f, rc
	return nil
}

// openPolled makes fd a non-blocking descriptor in the network poller,
// owned by a *net.UDPConn.
func (c *Conn) openPolled(fd int) error {
	f := os.NewFile(uintptr(fd), "udp")
	pc, err := net.FilePacketConn(f) // a close-on-exec, non-blocking duplicate
	_ = f.Close()                    // pc has its own descriptor, or there is none to keep
	if err != nil {
		return err
	}
	rc, err := pc.(*net.UDPConn).SyscallConn()
	if err != nil {
		_ = pc.Close()
		return err
	}
	c.file, c.rc = pc, rc
	return nil
}

// localAddr returns the address the socket of rc is bound to.
func localAddr(rc syscall.RawConn) (netip.AddrPort, error) {
	var sa unix.Sockaddr
	var serr error
	if err := rc.Control(func(fd uintptr) { sa, serr = unix.Getsockname(int(fd)) }); err != nil {
		return netip.AddrPort{}, err
	}
	if serr != nil {
		return netip.AddrPort{}, fmt.Errorf("getsockname: %w", serr)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), nil
	case *unix.SockaddrInet6:
		a := netip.AddrFrom16(sa.Addr)
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				a = a.WithZone(ifi.Name)
			}
		}
		return netip.AddrPortFrom(a, uint16(sa.Port)), nil
	}
	return netip.AddrPort{}, fmt.Errorf("getsockname: unexpected address %T", sa)
}

// LocalAddr returns the address the Conn is bound to.
func (c *Conn) LocalAddr() netip.AddrPort { return c.local }

// Steered reports whether the kernel delivers all datagrams of one client
// to the same Conn of the group, whatever their source ports: those from
// one prefix of the lengths in ListenConfig. Listen arranges this with a
// classic BPF program on the group (SO_ATTACH_REUSEPORT_CBPF). If the
// kernel refused the program, Steered reports false: the kernel's default
// hash of source address and port then spreads a client that varies its
// source port over the whole group, and per-Conn state such as a rate
// limit sees only part of its traffic. The steering holds only while all
// Conns of the group are open.
func (c *Conn) Steered() bool { return c.steered }

// Close closes the socket. A ReadBatch or WriteBatch in progress in
// another goroutine returns promptly, and every later call returns
// net.ErrClosed. Closing a closed Conn returns net.ErrClosed.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return net.ErrClosed
	}
	// A call blocked in the kernel keeps the descriptor referenced, so it
	// is closed only once that call has returned. shutdown(2) wakes it at
	// once and makes the kernel return at once from any later call (it
	// reports ENOTCONN for an unconnected socket, but marks the socket all
	// the same).
	_ = c.rc.Control(func(fd uintptr) { _ = unix.Shutdown(int(fd), unix.SHUT_RDWR) })
	return c.file.Close()
}

// Release closes the Conn's descriptor without shutting the socket down,
// as Close would for every descriptor of it: for a socket handed to
// another process with File, which goes on using it. It must not be
// called while a ReadBatch or WriteBatch is in progress.
func (c *Conn) Release() error {
	if c.closed.Swap(true) {
		return net.ErrClosed
	}
	return c.file.Close()
}

// ReadBatch receives datagrams into msgs, blocking until at least one has
// arrived, and returns how many it stored, in msgs[:n]: it sets each one's
// N, Addr, Local, IfIndex, RxTime and Trunc. It does not wait to fill more
// than one, and fills at most 1024. The Conn keeps no reference to msgs or
// their buffers.
//
// After Close, ReadBatch returns net.ErrClosed; other errors are a
// syscall.Errno from recvmmsg(2). Nothing is allocated, except once when
// msgs is longer than any batch before.
func (c *Conn) ReadBatch(msgs []Msg) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	b := &c.rx
	b.prepareRead(msgs)
	err := c.rc.Read(c.recvFn)
	b.release()
	// After Close, a read woken by shutdown(2) reports an empty datagram.
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	if err != nil {
		return 0, err
	}
	if b.errno != 0 {
		return 0, b.errno
	}
	for i := range b.done {
		b.msg(i, &msgs[i])
	}
	return b.done, nil
}

// recv is the read function ReadBatch hands to the runtime: it calls
// recvmmsg(2) for the prepared batch and reports false to have the poller
// wait until the socket is readable.
func (c *Conn) recv(fd uintptr) bool {
	b := &c.rx
	for {
		// MSG_WAITFORONE: wait for the first datagram, take the others
		// that are queued already.
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])),
			uintptr(b.vlen), unix.MSG_WAITFORONE, 0, 0)
		switch {
		case e == unix.EINTR:
			continue
		case e == unix.EAGAIN && !c.blocking:
			return false
		}
		b.done, b.errno = int(n), e
		if e != 0 {
			b.done = 0
		}
		return true
	}
}

// WriteBatch sends each datagram msgs[i].Buf[:msgs[i].N] to msgs[i].Addr,
// from msgs[i].Local and through msgs[i].IfIndex if they are set, in order.
// It returns the number n of datagrams sent, msgs[:n], and the error that
// stopped it at msgs[n], if any: ErrBadMsg for a message it cannot send on
// this Conn, net.ErrClosed after Close, or a syscall.Errno from
// sendmmsg(2), often one that concerns only msgs[n] (such as EPERM from a
// firewall, or EINVAL for a Local that is no local unicast address); the
// caller may skip msgs[n] and call WriteBatch again for the rest. The Conn
// keeps no reference to msgs or their buffers. Nothing is allocated,
// except once when msgs is longer than any batch before.
func (c *Conn) WriteBatch(msgs []Msg) (int, error) {
	sent := 0
	for sent < len(msgs) {
		if c.closed.Load() {
			return sent, net.ErrClosed
		}
		k, bad := c.tx.prepareWrite(msgs[sent:], c.family, c.dual)
		if k == 0 && bad {
			return sent, ErrBadMsg
		}
		c.tx.vlen = k
		err := c.rc.Write(c.sendFn)
		c.tx.release()
		if c.closed.Load() {
			return sent, net.ErrClosed
		}
		if err != nil {
			return sent, err
		}
		if c.tx.errno != 0 {
			return sent, c.tx.errno
		}
		sent += c.tx.done
		// After a partial send, the next call reports the error of the
		// first message not sent, if any.
	}
	return sent, nil
}

// send is the write function WriteBatch hands to the runtime: it calls
// sendmmsg(2) for the prepared batch and reports false to have the poller
// wait until the socket is writable.
func (c *Conn) send(fd uintptr) bool {
	b := &c.tx
	for {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])),
			uintptr(b.vlen), 0, 0, 0)
		switch {
		case e == unix.EINTR:
			continue
		case e == unix.EAGAIN && !c.blocking:
			return false
		case e == 0 && n == 0:
			// Cannot happen for a non-empty batch; an error rather
			// than a loop if it does.
			e = unix.EIO
		}
		b.done, b.errno = int(n), e
		if e != 0 {
			b.done = 0
		}
		return true
	}
}

// File returns a duplicate of the socket's descriptor, to hand to
// another process (as exec.Cmd.ExtraFiles); the Conn stays open. The
// caller closes the file.
func (c *Conn) File() (*os.File, error) {
	var nfd int
	var derr error
	if err := c.rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("dup: %w", derr)
	}
	return os.NewFile(uintptr(nfd), "udp "+c.local.String()), nil
}

// FromFile returns a Conn over a socket another process opened with
// Listen and handed over as f (File), taking f over: it is closed, here
// or with the Conn. The socket keeps the options Listen set; whether
// datagrams are steered is not known here, and Steered reports false.
func FromFile(f *os.File) (*Conn, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	_ = f.Close() // fd is the Conn's own now, or there is none
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil || typ != unix.SOCK_DGRAM {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("udp: descriptor is not a datagram socket (type %d): %v", typ, err)
	}
	family, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil || family != unix.AF_INET && family != unix.AF_INET6 {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("udp: descriptor is not an IP socket (family %d): %v", family, err)
	}
	dual := false
	if family == unix.AF_INET6 {
		v6only, err := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
		if err != nil {
			_ = unix.Close(fd)
			return nil, fmt.Errorf("getsockopt IPV6_V6ONLY: %w", err)
		}
		dual = v6only == 0
	}
	c, err := newConn(fd, family, true)
	if err != nil {
		return nil, err
	}
	c.dual = dual
	return c, nil
}
