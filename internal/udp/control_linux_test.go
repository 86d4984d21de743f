package udp

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/big"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cmsg builds one control message the way the kernel lays it out, with
// padding after the data.
func cmsg(level, typ int32, data []byte) []byte {
	return cmsgLen(uint64(unix.CmsgLen(len(data))), level, typ, data, unix.CmsgSpace(len(data)))
}

// cmsgLen builds a control message with the header length field n, of
// size bytes in all (data cut or padded with zeroes to fit).
func cmsgLen(n uint64, level, typ int32, data []byte, size int) []byte {
	b := make([]byte, max(size, unix.CmsgLen(0)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.SetLen(int(n))
	h.Level, h.Type = level, typ
	copy(b[unix.CmsgLen(0):], data)
	return b[:size]
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// ts is the data of SO_TIMESTAMPNS_NEW, a 64-bit struct timespec.
func ts(sec, nsec int64) []byte {
	return binary.NativeEndian.AppendUint64(binary.NativeEndian.AppendUint64(nil, uint64(sec)), uint64(nsec))
}

// pkt4 is the data of IP_PKTINFO.
func pkt4(ifindex int32, specDst, addr string) []byte {
	b := binary.NativeEndian.AppendUint32(nil, uint32(ifindex))
	b = append(b, netip.MustParseAddr(specDst).AsSlice()...)
	return append(b, netip.MustParseAddr(addr).AsSlice()...)
}

// pkt6 is the data of IPV6_PKTINFO.
func pkt6(addr string, ifindex uint32) []byte {
	return binary.NativeEndian.AppendUint32(netip.MustParseAddr(addr).AsSlice(), ifindex)
}

var (
	tsNew  = func(d []byte) []byte { return cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_NEW, d) }
	info4  = func(d []byte) []byte { return cmsg(unix.IPPROTO_IP, unix.IP_PKTINFO, d) }
	info6  = func(d []byte) []byte { return cmsg(unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, d) }
	addr4  = netip.MustParseAddr("192.0.2.7")
	addr6  = netip.MustParseAddr("2001:db8::1")
	t1     = int64(1_700_000_000_123_456_789)
	tsData = ts(1_700_000_000, 123_456_789)
)

// tsOld is SO_TIMESTAMPNS_OLD with the native struct timespec.
func tsOld(sec, nsec int64) []byte {
	t := unix.NsecToTimespec(sec*1e9 + nsec)
	d := unsafe.Slice((*byte)(unsafe.Pointer(&t)), unsafe.Sizeof(t))
	return cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_OLD, d)
}

// ctl holds the fields of a Msg that parseControl sets.
type ctl struct {
	Local   netip.Addr
	IfIndex int
	RxTime  int64
}

func ctlOf(m *Msg) ctl { return ctl{m.Local, m.IfIndex, m.RxTime} }

var parseTests = []struct {
	name string
	b    []byte
	want ctl
}{
	{"empty", nil, ctl{}},
	{"timestamp", tsNew(tsData), ctl{RxTime: t1}},
	{"old timestamp", tsOld(1_700_000_000, 123_456_789), ctl{RxTime: t1}},
	{"negative timestamp", tsNew(ts(-1, 5)), ctl{RxTime: -999_999_995}},
	{"IPv4", cat(tsNew(tsData), info4(pkt4(3, "10.0.0.1", "192.0.2.7"))), ctl{RxTime: t1, Local: addr4, IfIndex: 3}},
	{"IPv6", cat(info6(pkt6("2001:db8::1", 5)), tsNew(tsData)), ctl{RxTime: t1, Local: addr6, IfIndex: 5}},
	{"IPv4-mapped", info6(pkt6("::ffff:192.0.2.7", 2)), ctl{Local: addr4, IfIndex: 2}},
	{"unknown skipped", cat(cmsg(unix.SOL_SOCKET, unix.SO_MARK, []byte{1, 2, 3}), info4(pkt4(3, "0.0.0.0", "192.0.2.7"))),
		ctl{Local: addr4, IfIndex: 3}},
	{"wrong level", cat(cmsg(unix.SOL_SOCKET, unix.IP_PKTINFO, pkt4(3, "0.0.0.0", "192.0.2.7"))), ctl{}},
	{"short data skipped", cat(info4(pkt4(3, "0.0.0.0", "192.0.2.7")[:11]), tsNew(tsData)), ctl{RxTime: t1}},
	{"short timestamp", tsNew(tsData[:15]), ctl{}},
	{"nanoseconds too big", tsNew(ts(1, 1e9)), ctl{}},
	{"negative nanoseconds", tsNew(ts(1, -1)), ctl{}},
	{"seconds too big", tsNew(ts(math.MaxInt64/1_000_000_000, 854_775_808)), ctl{}},
	{"largest time", tsNew(ts(math.MaxInt64/1_000_000_000, 854_775_807)), ctl{RxTime: math.MaxInt64}},
	{"seconds too small", tsNew(ts(-9_223_372_037, 145_224_191)), ctl{}},
	{"smallest time", tsNew(ts(-9_223_372_037, 145_224_192)), ctl{RxTime: math.MinInt64}},
	{"small time", tsNew(ts(-9_223_372_037, 999_999_999)), ctl{RxTime: -9_223_372_036_000_000_001}},
	{"most negative seconds", tsNew(ts(math.MinInt64, 0)), ctl{}},
	{"most positive seconds", tsNew(ts(math.MaxInt64, 0)), ctl{}},
	{"negative IPv4 ifindex", info4(pkt4(-1, "0.0.0.0", "192.0.2.7")), ctl{}},
	{"huge IPv6 ifindex", info6(pkt6("2001:db8::1", 1<<31)), ctl{}},
	{"length below header", cat(cmsgLen(uint64(unix.CmsgLen(0)-1), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_NEW, tsData, 32)), ctl{}},
	{"length past end", cat(tsNew(tsData), cmsgLen(64, unix.IPPROTO_IP, unix.IP_PKTINFO, pkt4(3, "0.0.0.0", "192.0.2.7"), 32)),
		ctl{RxTime: t1}},
	{"huge length", cmsgLen(math.MaxUint64, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_NEW, tsData, 32), ctl{}},
	{"unpadded last", info4(pkt4(3, "0.0.0.0", "192.0.2.7"))[:unix.CmsgLen(12)], ctl{Local: addr4, IfIndex: 3}},
	{"trailing bytes", cat(tsNew(tsData), []byte{1, 2, 3}), ctl{RxTime: t1}},
	{"last wins", cat(info4(pkt4(3, "0.0.0.0", "192.0.2.7")), info6(pkt6("2001:db8::1", 5))), ctl{Local: addr6, IfIndex: 5}},
}

func TestParseControl(t *testing.T) {
	for _, tc := range parseTests {
		t.Run(tc.name, func(t *testing.T) {
			var m Msg
			parseControl(tc.b, &m)
			if got := ctlOf(&m); got != tc.want {
				t.Errorf("parseControl(%x) = %+v; want %+v", tc.b, got, tc.want)
			}
			if ref := refParse(tc.b); ref != tc.want {
				t.Errorf("refParse(%x) = %+v; want %+v", tc.b, ref, tc.want)
			}
		})
	}
}

func TestPutPktinfo(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dst4    bool
		local   string
		ifindex int
		want    []byte // nil: 0 bytes written
		bad     bool
	}{
		{name: "nothing", dst4: true},
		{name: "IPv4", dst4: true, local: "192.0.2.7", ifindex: 3, want: info4(pkt4(3, "192.0.2.7", "0.0.0.0"))},
		{name: "IPv4 mapped", dst4: true, local: "::ffff:192.0.2.7", want: info4(pkt4(0, "192.0.2.7", "0.0.0.0"))},
		{name: "IPv4 ifindex only", dst4: true, ifindex: 4, want: info4(pkt4(4, "0.0.0.0", "0.0.0.0"))},
		{name: "IPv6", local: "2001:db8::1", ifindex: 5, want: info6(pkt6("2001:db8::1", 5))},
		{name: "IPv6 ifindex only", ifindex: 6, want: info6(pkt6("::", 6))},
		{name: "IPv6 for IPv4", dst4: true, local: "2001:db8::1", bad: true},
		{name: "IPv4 for IPv6", local: "192.0.2.7", bad: true},
		{name: "mapped for IPv6", local: "::ffff:192.0.2.7", bad: true},
		{name: "negative ifindex", dst4: true, ifindex: -1, bad: true},
		{name: "huge ifindex", ifindex: hugeIndex, bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var local netip.Addr
			if tc.local != "" {
				local = netip.MustParseAddr(tc.local)
			}
			b := bytes.Repeat([]byte{0xa5}, txControlLen)
			n := putPktinfo(b, tc.dst4, local, tc.ifindex)
			switch {
			case tc.bad:
				if n != -1 {
					t.Errorf("putPktinfo = %d; want -1", n)
				}
			case n < 0 || !bytes.Equal(b[:n], tc.want):
				t.Errorf("putPktinfo wrote %x; want %x", b[:max(n, 0)], tc.want)
			}
		})
	}
}

// refParse is a second implementation of parseControl, for comparison:
// x/sys/unix frames the messages, and the data is read as the kernel's
// structs.
func refParse(b []byte) ctl {
	var m ctl
	for len(b) >= unix.CmsgLen(0) {
		h, data, rest, err := unix.ParseOneSocketControlMessage(b)
		if err != nil {
			break
		}
		refDecode(h, data, &m)
		b = rest
	}
	return m
}

func refDecode(h unix.Cmsghdr, data []byte, m *ctl) {
	switch {
	case h.Level == unix.SOL_SOCKET && h.Type == unix.SO_TIMESTAMPNS_NEW && len(data) >= 16:
		var t struct{ sec, nsec int64 }
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&t)), 16), data)
		refTime(t.sec, t.nsec, m)
	case h.Level == unix.SOL_SOCKET && h.Type == unix.SO_TIMESTAMPNS_OLD && len(data) >= int(unsafe.Sizeof(unix.Timespec{})):
		var t unix.Timespec
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&t)), unsafe.Sizeof(t)), data)
		refTime(int64(t.Sec), int64(t.Nsec), m)
	case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
		var p unix.Inet4Pktinfo
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&p)), unix.SizeofInet4Pktinfo), data)
		if p.Ifindex >= 0 {
			m.Local, m.IfIndex = netip.AddrFrom4(p.Addr), int(p.Ifindex)
		}
	case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
		var p unix.Inet6Pktinfo
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&p)), unix.SizeofInet6Pktinfo), data)
		if p.Ifindex <= math.MaxInt32 {
			m.Local, m.IfIndex = netip.AddrFrom16(p.Addr).Unmap(), int(p.Ifindex)
		}
	}
}

func refTime(sec, nsec int64, m *ctl) {
	ns := new(big.Int).Mul(big.NewInt(sec), big.NewInt(1e9))
	ns.Add(ns, big.NewInt(nsec))
	if nsec >= 0 && nsec < 1e9 && ns.IsInt64() {
		m.RxTime = ns.Int64()
	}
}

// FuzzParseControl checks that parseControl never panics and agrees with
// refParse on any input.
func FuzzParseControl(f *testing.F) {
	for _, tc := range parseTests {
		f.Add(tc.b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Msg
		parseControl(b, &m)
		if got, ref := ctlOf(&m), refParse(b); got != ref {
			t.Errorf("parseControl(%x) = %+v; refParse: %+v", b, got, ref)
		}
		if m.IfIndex < 0 || m.Local.Is4In6() || m.Local.Zone() != "" {
			t.Errorf("parseControl(%x) = %+v: bad IfIndex or Local", b, m)
		}
	})
}
