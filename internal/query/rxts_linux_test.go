package query

import (
	"encoding/binary"
	"net"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cmsg builds one control message the way the kernel lays it out: a
// header whose length field is length (or the true length if length is
// negative), then data, then padding to the next message.
func cmsg(level, typ int32, data []byte, length int) []byte {
	h := unix.Cmsghdr{Level: level, Type: typ}
	if length < 0 {
		length = unix.CmsgLen(len(data))
	}
	h.SetLen(length)
	b := make([]byte, unix.CmsgSpace(len(data)))
	copy(b, unsafe.Slice((*byte)(unsafe.Pointer(&h)), unix.SizeofCmsghdr))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

// timespecBytes is a struct timespec in the kernel's layout: two native
// 64-bit integers, or two 32-bit ones on 32-bit systems.
func timespecBytes(sec, nsec int64) []byte {
	if unsafe.Sizeof(unix.Timespec{}) == 8 {
		b := binary.NativeEndian.AppendUint32(nil, uint32(sec))
		return binary.NativeEndian.AppendUint32(b, uint32(nsec))
	}
	b := binary.NativeEndian.AppendUint64(nil, uint64(sec))
	return binary.NativeEndian.AppendUint64(b, uint64(nsec))
}

func tsMsg(sec, nsec int64) []byte {
	return cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, timespecBytes(sec, nsec), -1)
}

func concat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// TestRxTimestampSocket has the kernel stamp a datagram on loopback.
func TestRxTimestampSocket(t *testing.T) {
	for _, enable := range []bool{true, false} {
		name := "SO_TIMESTAMPNS"
		if !enable {
			name = "no timestamps"
		}
		t.Run(name, func(t *testing.T) {
			l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if enable {
				if err := EnableRxTimestamps(l); err != nil {
					t.Fatalf("EnableRxTimestamps: %v", err)
				}
			}
			c, err := net.DialUDP("udp", nil, l.LocalAddr().(*net.UDPAddr))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			before := time.Now()
			if _, err := c.Write([]byte("stamp me")); err != nil {
				t.Fatal(err)
			}
			if err := l.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
				t.Fatal(err)
			}
			buf, oob := make([]byte, 64), make([]byte, 128)
			n, oobn, _, _, err := l.ReadMsgUDPAddrPort(buf, oob)
			after := time.Now()
			if err != nil || string(buf[:n]) != "stamp me" {
				t.Fatalf("ReadMsgUDPAddrPort = %q, %v; want the datagram", buf[:n], err)
			}
			ts, ok := RxTimestamp(oob[:oobn])
			if !enable {
				if ok {
					t.Errorf("RxTimestamp(%x) = %v, true; want false without SO_TIMESTAMPNS", oob[:oobn], ts)
				}
				return
			}
			// The kernel stamps the datagram between the send and the
			// read, on the clock time.Now reads, however long either
			// takes. The slack covers only the clocks' rounding.
			const slack = time.Millisecond
			if !ok || ts.Before(before.Add(-slack)) || ts.After(after.Add(slack)) {
				t.Errorf("RxTimestamp(%x) = %v, %v; want between %v and %v", oob[:oobn], ts, ok, before, after)
			}
		})
	}
}

// rxTimestampTests are control data with the expected result; they also
// seed FuzzRxTimestamp.
var rxTimestampTests = []struct {
	name string
	oob  []byte
	want time.Time // zero: RxTimestamp reports false
}{
	{"nil", nil, time.Time{}},
	{"empty", []byte{}, time.Time{}},
	{"valid", tsMsg(1_700_000_000, 123_456_789), time.Unix(1_700_000_000, 123_456_789)},
	{"valid at the epoch", tsMsg(0, 0), time.Unix(0, 0)},
	{"largest nsec", tsMsg(1_700_000_000, 999_999_999), time.Unix(1_700_000_000, 999_999_999)},
	{"nsec 1e9", tsMsg(1_700_000_000, 1_000_000_000), time.Time{}},
	{"nsec -1", tsMsg(1_700_000_000, -1), time.Time{}},
	{"nsec huge", tsMsg(1_700_000_000, 1<<62), time.Time{}},
	{"truncated header", tsMsg(1, 2)[:unix.SizeofCmsghdr/2], time.Time{}},
	{"header only", tsMsg(1, 2)[:unix.SizeofCmsghdr], time.Time{}},
	{"truncated data", tsMsg(1, 2)[:unix.CmsgLen(4)], time.Time{}},
	{"length without data", cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, nil, -1), time.Time{}},
	{"length short of the timespec", cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, timespecBytes(1, 2), unix.CmsgLen(8)), time.Time{}},
	{"length beyond the buffer", cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, timespecBytes(1, 2), 200), time.Time{}},
	{"length huge", cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, timespecBytes(1, 2), 1<<30), time.Time{}},
	{"length zero", cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, timespecBytes(1, 2), 0), time.Time{}},
	{"length below the header", cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, timespecBytes(1, 2), unix.SizeofCmsghdr-1), time.Time{}},
	{"wrong level", cmsg(unix.SOL_IP, unix.SCM_TIMESTAMPNS, timespecBytes(1, 2), -1), time.Time{}},
	{"wrong type", cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMP, timespecBytes(1, 2), -1), time.Time{}},
	{"SCM_TIMESTAMPING", cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPING, concat(timespecBytes(1, 2), timespecBytes(3, 4), timespecBytes(5, 6)), -1), time.Time{}},
	{"after another message", concat(cmsg(unix.SOL_SOCKET, unix.SCM_RIGHTS, []byte{7, 0, 0, 0}, -1), tsMsg(1_700_000_000, 5)), time.Unix(1_700_000_000, 5)},
	{"after a message at another level", concat(cmsg(unix.SOL_IP, unix.IP_PKTINFO, make([]byte, 12), -1), tsMsg(42, 7)), time.Unix(42, 7)},
	{"first of two", concat(tsMsg(10, 1), tsMsg(20, 2)), time.Unix(10, 1)},
	{"followed by a lying header", concat(tsMsg(10, 1), cmsg(unix.SOL_SOCKET, unix.SCM_RIGHTS, []byte{7, 0, 0, 0}, 500)), time.Time{}},
	{"invalid first of two", concat(tsMsg(10, -1), tsMsg(20, 2)), time.Time{}},
}

func TestRxTimestamp(t *testing.T) {
	for _, tt := range rxTimestampTests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := RxTimestamp(tt.oob)
			if ok != !tt.want.IsZero() || !got.Equal(tt.want) {
				t.Errorf("RxTimestamp(%x) = %v, %v; want %v, %v", tt.oob, got, ok, tt.want, !tt.want.IsZero())
			}
		})
	}
}

// refRxTimestamp is an independent reading of the control data, for
// 64-bit Linux: walk the messages, fail if any header lies about its
// length, and decode the first SCM_TIMESTAMPNS.
func refRxTimestamp(b []byte) (time.Time, bool) {
	const hdr = 16
	var data []byte
	found := false
	for off := 0; off+hdr <= len(b); {
		l := binary.NativeEndian.Uint64(b[off:])
		level := int32(binary.NativeEndian.Uint32(b[off+8:]))
		typ := int32(binary.NativeEndian.Uint32(b[off+12:]))
		if l < hdr || l > uint64(len(b)-off) {
			return time.Time{}, false
		}
		if !found && level == unix.SOL_SOCKET && typ == unix.SCM_TIMESTAMPNS {
			data, found = b[off+hdr:off+int(l)], true
		}
		off += (int(l) + 7) &^ 7
	}
	if !found || len(data) < 16 {
		return time.Time{}, false
	}
	sec := int64(binary.NativeEndian.Uint64(data))
	nsec := int64(binary.NativeEndian.Uint64(data[8:]))
	if nsec < 0 || nsec >= 1e9 {
		return time.Time{}, false
	}
	return time.Unix(sec, nsec), true
}

func FuzzRxTimestamp(f *testing.F) {
	for _, tt := range rxTimestampTests {
		f.Add(tt.oob)
	}
	f.Fuzz(func(t *testing.T, oob []byte) {
		got, ok := RxTimestamp(oob)
		if !ok && !got.IsZero() {
			t.Errorf("RxTimestamp(%x) = %v, false; want the zero time with false", oob, got)
		}
		if unix.SizeofCmsghdr != 16 || unsafe.Sizeof(unix.Timespec{}) != 16 {
			return // refRxTimestamp knows only the 64-bit layout
		}
		want, wantOK := refRxTimestamp(oob)
		if ok != wantOK || !got.Equal(want) {
			t.Errorf("RxTimestamp(%x) = %v, %v; want %v, %v", oob, got, ok, want, wantOK)
		}
	})
}
