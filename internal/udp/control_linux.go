package udp

import (
	"encoding/binary"
	"math"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The layout of control messages (cmsg(3)): a header of a length (a C
// size_t), a level and a type (two C ints), then the data, each message
// padded to the alignment of a size_t.
const (
	cmsgAlign  = unix.SizeofPtr
	cmsgHdrLen = (unix.SizeofCmsghdr + cmsgAlign - 1) &^ (cmsgAlign - 1)
)

// cmsgSpace is the room one control message with n bytes of data takes.
func cmsgSpace(n int) int { return cmsgHdrLen + (n+cmsgAlign-1)&^(cmsgAlign-1) }

// timespecSize is the size of the kernel's native struct timespec, the data
// of SCM_TIMESTAMPNS: two longs.
const timespecSize = int(unsafe.Sizeof(unix.Timespec{}))

// Room for the control messages of one received datagram: a timestamp and
// a packet-info message of either family, with spare room in case the
// socket carries another option (the kernel then sets MSG_CTRUNC and drops
// what does not fit, never overruns the buffer).
const rxControlLen = 128

// txControlLen is the room for the one packet-info message of a datagram
// to send.
var txControlLen = cmsgSpace(max(unix.SizeofInet4Pktinfo, unix.SizeofInet6Pktinfo))

// parseControl sets m.Local, m.IfIndex and m.RxTime from b, the control
// messages the kernel attached to a received datagram, and leaves a field
// unchanged if no message sets it. It skips messages of unknown level or
// type and messages whose data is too short, and stops at the first header
// whose length is too small or runs past the end of b. It performs no I/O
// and never panics, whatever b holds.
func parseControl(b []byte, m *Msg) {
	for len(b) >= cmsgHdrLen {
		var n uint64
		if unix.SizeofPtr == 8 {
			n = binary.NativeEndian.Uint64(b)
		} else {
			n = uint64(binary.NativeEndian.Uint32(b))
		}
		if n < cmsgHdrLen || n > uint64(len(b)) {
			return
		}
		level := int32(binary.NativeEndian.Uint32(b[unix.SizeofPtr:]))
		typ := int32(binary.NativeEndian.Uint32(b[unix.SizeofPtr+4:]))
		parseControlMsg(level, typ, b[cmsgHdrLen:n], m)
		next := (int(n) + cmsgAlign - 1) &^ (cmsgAlign - 1)
		if next >= len(b) {
			return
		}
		b = b[next:]
	}
}

// RxTime returns the kernel's receive timestamp in oob, the control
// messages of one datagram read from any UDP socket with SO_TIMESTAMPNS
// (or SO_TIMESTAMPNS_NEW) enabled, in nanoseconds since the Unix epoch, as
// ReadBatch sets Msg.RxTime. It reports false if there is none; it
// allocates nothing and never panics.
func RxTime(oob []byte) (int64, bool) {
	var m Msg
	parseControl(oob, &m)
	return m.RxTime, m.RxTime != 0
}

// parseControlMsg decodes the data of one control message into m.
func parseControlMsg(level, typ int32, data []byte, m *Msg) {
	switch {
	case level == unix.SOL_SOCKET && typ == unix.SO_TIMESTAMPNS_OLD:
		if ns, ok := timespec(data, timespecSize); ok {
			m.RxTime = ns
		}
	case level == unix.SOL_SOCKET && typ == unix.SO_TIMESTAMPNS_NEW:
		if ns, ok := timespec(data, 16); ok {
			m.RxTime = ns
		}
	case level == unix.IPPROTO_IP && typ == unix.IP_PKTINFO:
		// struct in_pktinfo: int ipi_ifindex; struct in_addr ipi_spec_dst, ipi_addr.
		if len(data) < unix.SizeofInet4Pktinfo {
			return
		}
		ifindex := int32(binary.NativeEndian.Uint32(data))
		if ifindex < 0 {
			return
		}
		m.IfIndex = int(ifindex)
		m.Local = netip.AddrFrom4([4]byte(data[8:12]))
	case level == unix.IPPROTO_IPV6 && typ == unix.IPV6_PKTINFO:
		// struct in6_pktinfo: struct in6_addr ipi6_addr; int ipi6_ifindex.
		if len(data) < unix.SizeofInet6Pktinfo {
			return
		}
		ifindex := binary.NativeEndian.Uint32(data[16:])
		if ifindex > math.MaxInt32 {
			return
		}
		m.IfIndex = int(ifindex)
		// An IPv4 datagram on a dual-stack socket has an IPv4-mapped
		// address here.
		m.Local = netip.AddrFrom16([16]byte(data[:16])).Unmap()
	}
}

// timespec decodes a struct timespec of size bytes (two 32- or two 64-bit
// native integers) into nanoseconds since the epoch. It reports false for a
// short buffer, nanoseconds outside [0, 1e9), or a time that int64
// nanoseconds cannot hold.
func timespec(b []byte, size int) (int64, bool) {
	var sec, nsec int64
	switch {
	case size == 16 && len(b) >= 16:
		sec = int64(binary.NativeEndian.Uint64(b))
		nsec = int64(binary.NativeEndian.Uint64(b[8:]))
	case size == 8 && len(b) >= 8:
		sec = int64(int32(binary.NativeEndian.Uint32(b)))
		nsec = int64(int32(binary.NativeEndian.Uint32(b[4:])))
	default:
		return 0, false
	}
	return nanos(sec, nsec)
}

// nanos returns sec seconds and nsec nanoseconds as nanoseconds. It
// reports false if nsec is outside [0, 1e9) or the result does not fit in
// an int64.
func nanos(sec, nsec int64) (int64, bool) {
	const perSec = 1_000_000_000
	switch {
	case nsec < 0 || nsec >= perSec:
		return 0, false
	case sec >= 0:
		if sec > (math.MaxInt64-nsec)/perSec {
			return 0, false
		}
		return sec*perSec + nsec, true
	}
	// sec*perSec + nsec == (sec+1)*perSec - (perSec-nsec), where the first
	// term cannot overflow once sec+1 is in range.
	if sec+1 < math.MinInt64/perSec {
		return 0, false
	}
	v, rest := (sec+1)*perSec, perSec-nsec // 0 < rest <= perSec
	if v < math.MinInt64+rest {
		return 0, false
	}
	return v - rest, true
}

// putPktinfo writes into b the packet-info control message that makes the
// kernel send a datagram from local through interface ifindex, and returns
// its length: IP_PKTINFO for an IPv4 destination (dst4), which a
// dual-stack IPv6 socket honours too, and IPV6_PKTINFO for an IPv6 one. It
// returns 0 if neither local nor ifindex is set, and -1 if local is not of
// the destination's family or ifindex is out of range. b must have room
// for txControlLen bytes.
func putPktinfo(b []byte, dst4 bool, local netip.Addr, ifindex int) int {
	switch {
	case !local.IsValid() && ifindex == 0:
		return 0
	case ifindex < 0 || int64(ifindex) > math.MaxInt32:
		return -1
	case local.IsValid() && local.Unmap().Is4() != dst4:
		return -1
	case dst4:
		// struct in_pktinfo: int ipi_ifindex; struct in_addr ipi_spec_dst, ipi_addr.
		var a [4]byte // ipi_spec_dst, the source address; zero: the kernel's choice
		if local.IsValid() {
			a = local.Unmap().As4()
		}
		n := putCmsgHdr(b, unix.IPPROTO_IP, unix.IP_PKTINFO, unix.SizeofInet4Pktinfo)
		d := b[cmsgHdrLen:n]
		binary.NativeEndian.PutUint32(d, uint32(ifindex))
		copy(d[4:8], a[:])
		clear(d[8:12]) // ipi_addr is ignored on send
		return cmsgSpace(unix.SizeofInet4Pktinfo)
	}
	// struct in6_pktinfo: struct in6_addr ipi6_addr; int ipi6_ifindex.
	n := putCmsgHdr(b, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, unix.SizeofInet6Pktinfo)
	d := b[cmsgHdrLen:n]
	a := local.As16() // all zeroes for the zero Addr: the kernel's choice
	copy(d[:16], a[:])
	binary.NativeEndian.PutUint32(d[16:], uint32(ifindex))
	return cmsgSpace(unix.SizeofInet6Pktinfo)
}

// putCmsgHdr writes a control message header for dataLen bytes of data
// into b, zeroes the padding after the data, and returns the end of the
// data.
func putCmsgHdr(b []byte, level, typ int32, dataLen int) int {
	n := cmsgHdrLen + dataLen
	if unix.SizeofPtr == 8 {
		binary.NativeEndian.PutUint64(b, uint64(n))
	} else {
		binary.NativeEndian.PutUint32(b, uint32(n))
	}
	binary.NativeEndian.PutUint32(b[unix.SizeofPtr:], uint32(level))
	binary.NativeEndian.PutUint32(b[unix.SizeofPtr+4:], uint32(typ))
	clear(b[n:cmsgSpace(dataLen)])
	return n
}
