package udp

import (
	"encoding/binary"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxBatch caps the messages passed to one recvmmsg or sendmmsg call; the
// kernel itself accepts at most UIO_MAXIOV (1024).
const maxBatch = 1024

// batch holds the kernel-facing arrays of one direction, reused by every
// call and grown to the largest batch seen. Entry i of each describes
// message i.
type batch struct {
	hdrs    []unix.Mmsghdr
	iovs    []unix.Iovec
	names   []unix.RawSockaddrInet6 // also holds a RawSockaddrInet4
	control []byte                  // controlLen bytes per message
	// controlLen is the room for control messages per message.
	controlLen int

	vlen  int           // messages passed to the next call
	done  int           // messages the last call received or sent
	errno syscall.Errno // error of the last call, or 0
}

// grow makes room for n messages and links each header to its entries.
func (b *batch) grow(n int) {
	if n <= len(b.hdrs) {
		return
	}
	b.hdrs = make([]unix.Mmsghdr, n)
	b.iovs = make([]unix.Iovec, n)
	b.names = make([]unix.RawSockaddrInet6, n)
	b.control = make([]byte, n*b.controlLen)
	for i := range b.hdrs {
		h := &b.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Iov = &b.iovs[i]
		h.SetIovlen(1)
	}
}

// setIov points entry i at buf.
func (b *batch) setIov(i int, buf []byte) {
	v := &b.iovs[i]
	v.Base = nil
	if len(buf) > 0 {
		v.Base = &buf[0]
	}
	v.SetLen(len(buf))
}

// release drops the references to the caller's buffers, so that the Conn
// does not keep them alive.
func (b *batch) release() {
	for i := range b.vlen {
		b.iovs[i].Base = nil
	}
}

// prepareRead fills the entries for receiving into the buffers of msgs,
// at most maxBatch of them.
func (b *batch) prepareRead(msgs []Msg) {
	b.vlen = min(len(msgs), maxBatch)
	b.grow(b.vlen)
	for i := range b.vlen {
		b.setIov(i, msgs[i].Buf)
		h := &b.hdrs[i].Hdr
		h.Namelen = unix.SizeofSockaddrInet6
		h.Control = &b.control[i*b.controlLen]
		h.SetControllen(b.controlLen)
		h.Flags = 0
	}
}

// msg stores the result of received message i in m.
func (b *batch) msg(i int, m *Msg) {
	h := &b.hdrs[i]
	m.N = int(h.Len)
	m.Trunc = h.Hdr.Flags&unix.MSG_TRUNC != 0
	m.Addr = addrPort(&b.names[i], h.Hdr.Namelen)
	m.Local, m.IfIndex, m.RxTime = netip.Addr{}, 0, 0
	n := min(int(h.Hdr.Controllen), b.controlLen)
	parseControl(b.control[i*b.controlLen:i*b.controlLen+n], m)
}

// prepareWrite fills the entries for sending the first messages of msgs,
// at most maxBatch, up to the first one that cannot be sent on a socket of
// family (dual: a dual-stack IPv6 socket). It returns how many it filled
// and whether it stopped at such a message.
func (b *batch) prepareWrite(msgs []Msg, family int, dual bool) (n int, bad bool) {
	b.grow(min(len(msgs), maxBatch))
	for i := range min(len(msgs), maxBatch) {
		m := &msgs[i]
		if m.N < 0 || m.N > len(m.Buf) || m.IfIndex < 0 {
			return i, true
		}
		h := &b.hdrs[i].Hdr
		namelen, dst4 := putSockaddr(&b.names[i], family, dual, m.Addr, m.IfIndex)
		if namelen == 0 {
			return i, true
		}
		h.Namelen = uint32(namelen)
		ctl := b.control[i*b.controlLen : (i+1)*b.controlLen]
		switch cl := putPktinfo(ctl, dst4, m.Local, m.IfIndex); {
		case cl < 0:
			return i, true
		case cl == 0:
			h.Control = nil
			h.SetControllen(0)
		default:
			h.Control = &ctl[0]
			h.SetControllen(cl)
		}
		b.setIov(i, m.Buf[:m.N])
		h.Flags = 0
	}
	return min(len(msgs), maxBatch), false
}

// addrPort decodes the sockaddr of namelen bytes in sa. An IPv4-mapped
// address, as a dual-stack socket reports an IPv4 peer, is unmapped.
func addrPort(sa *unix.RawSockaddrInet6, namelen uint32) netip.AddrPort {
	switch {
	case sa.Family == unix.AF_INET && namelen >= unix.SizeofSockaddrInet4:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), ntohs(sa4.Port))
	case sa.Family == unix.AF_INET6 && namelen >= unix.SizeofSockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), ntohs(sa.Port))
	}
	return netip.AddrPort{}
}

// putSockaddr stores addr in sa as a sockaddr for a socket of family
// (dual: a dual-stack IPv6 socket), with scope ifindex if it is an IPv6
// address that needs one. It returns the sockaddr's length, or 0 if the
// socket cannot send to addr, and whether addr is an IPv4 address.
func putSockaddr(sa *unix.RawSockaddrInet6, family int, dual bool, addr netip.AddrPort, ifindex int) (int, bool) {
	a := addr.Addr().Unmap()
	switch {
	case a.Is4() && family == unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Port: htons(addr.Port()), Addr: a.As4()}
		return unix.SizeofSockaddrInet4, true
	case a.Is4() && dual:
		// The kernel sends to an IPv4-mapped address over IPv4.
		*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: htons(addr.Port()), Addr: a.As16()}
		return unix.SizeofSockaddrInet6, true
	case a.Is6() && family == unix.AF_INET6:
		// The kernel uses the scope only for addresses that need one,
		// such as link-local ones.
		*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: htons(addr.Port()), Addr: a.As16(), Scope_id: uint32(ifindex)}
		return unix.SizeofSockaddrInet6, false
	}
	return 0, false
}

// htons and ntohs convert a port to and from the network byte order of a
// sockaddr's port field.
func htons(p uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], p)
	return binary.NativeEndian.Uint16(b[:])
}

func ntohs(p uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], p)
	return binary.BigEndian.Uint16(b[:])
}
