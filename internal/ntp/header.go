package ntp

import (
	"crypto/md5"
	"encoding/binary"
	"net/netip"
	"strconv"
)

// HeaderLen is the length of the NTP header in bytes.
const HeaderLen = 48

// Leap is the 2-bit leap indicator (RFC 5905 §7.3, Figure 9).
type Leap uint8

// Leap indicator values.
const (
	LeapNone   Leap = 0 // no warning
	LeapInsert Leap = 1 // last minute of the day has 61 seconds
	LeapDelete Leap = 2 // last minute of the day has 59 seconds
	LeapUnsync Leap = 3 // clock unsynchronized
)

// String returns the name of l.
func (l Leap) String() string {
	switch l {
	case LeapNone:
		return "none"
	case LeapInsert:
		return "insert"
	case LeapDelete:
		return "delete"
	case LeapUnsync:
		return "unsynchronized"
	}
	return "Leap(" + strconv.Itoa(int(l)) + ")"
}

// Mode is the 3-bit association mode (RFC 5905 §7.3, Figure 10).
type Mode uint8

// Mode values.
const (
	ModeReserved   Mode = 0
	ModeSymActive  Mode = 1
	ModeSymPassive Mode = 2
	ModeClient     Mode = 3
	ModeServer     Mode = 4
	ModeBroadcast  Mode = 5
	ModeControl    Mode = 6 // NTP control messages (ntpq); never answered by Meridian
	ModePrivate    Mode = 7 // reserved for private use (ntpdc, monlist); never answered
)

var modeNames = [8]string{"reserved", "symmetric active", "symmetric passive",
	"client", "server", "broadcast", "control", "private"}

// String returns the name of m.
func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// MaxStratum is the stratum RFC 5905 calls unsynchronized (16); strata above
// it are invalid.
const MaxStratum = 16

// RefID is the 32-bit reference identifier (RFC 5905 §7.3). For stratum 0
// it holds a kiss code, for stratum 1 a four-character clock source name,
// and above that the IPv4 address of the server's own source or the first
// four bytes of the MD5 hash of its IPv6 address.
type RefID [4]byte

// Kiss codes (RFC 5905 §7.4, RFC 8915 §5.7) carried in RefID by
// stratum-0 "kiss-o'-death" packets.
var (
	KissDENY = RefID{'D', 'E', 'N', 'Y'} // access denied; stop sending
	KissRSTR = RefID{'R', 'S', 'T', 'R'} // access restricted; stop sending
	KissRATE = RefID{'R', 'A', 'T', 'E'} // rate exceeded; reduce the rate
	KissNTSN = RefID{'N', 'T', 'S', 'N'} // NTS negative acknowledgement
)

// RefIDFromAddr returns the reference identifier a server uses when its
// source is addr: the IPv4 address itself, or the first four bytes of the
// MD5 hash of an IPv6 address (RFC 5905 §7.3). IPv4-mapped IPv6 addresses
// are treated as IPv4.
func RefIDFromAddr(addr netip.Addr) RefID {
	addr = addr.Unmap()
	if addr.Is4() {
		return RefID(addr.As4())
	}
	a := addr.As16()
	sum := md5.Sum(a[:])
	return RefID(sum[:4])
}

// Text returns r as a person reads it given the packet's stratum: the
// printable ASCII of a kiss code or clock name at strata 0 and 1 (other
// bytes dropped), and a dotted quad above.
func (r RefID) Text(stratum uint8) string {
	if stratum > 1 {
		return netip.AddrFrom4(r).String()
	}
	var b [4]byte
	n := 0
	for _, c := range r {
		if c > ' ' && c < 0x7F {
			b[n] = c
			n++
		}
	}
	return string(b[:n])
}

// Header is the 48-byte NTP packet header (RFC 5905 §7.3, Figure 8):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|LI | VN  |Mode |    Stratum     |     Poll      |  Precision   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                         Root Delay                            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                         Root Dispersion                       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                          Reference ID                         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                     Reference Timestamp (64)                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                      Origin Timestamp (64)                    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                      Receive Timestamp (64)                   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                      Transmit Timestamp (64)                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Poll and Precision are signed log2 seconds; see Log2Duration.
type Header struct {
	Leap      Leap
	Version   uint8
	Mode      Mode
	Stratum   uint8
	Poll      int8
	Precision int8
	RootDelay Short
	RootDisp  Short
	RefID     RefID
	Reference Time
	Origin    Time
	Receive   Time
	Transmit  Time
}

// MakeKiss makes h a kiss-o'-death with code (RFC 5905 §7.4): stratum
// 0 and the code as reference ID, leap 3 so that a client that does not
// understand kisses does not use it either, and no reference time, root
// delay or root dispersion.
func (h *Header) MakeKiss(code RefID) {
	h.Leap, h.Stratum, h.RefID, h.Reference = LeapUnsync, 0, code, 0
	h.RootDelay, h.RootDisp = 0, 0
}

// Decode sets h from the first 48 bytes of b. Every bit pattern is a valid
// header; Decode fails only when b is shorter than HeaderLen.
func (h *Header) Decode(b []byte) error {
	if len(b) < HeaderLen {
		return ErrShort
	}
	h.Leap = Leap(b[0] >> 6)
	h.Version = b[0] >> 3 & 7
	h.Mode = Mode(b[0] & 7)
	h.Stratum = b[1]
	h.Poll = int8(b[2])
	h.Precision = int8(b[3])
	h.RootDelay = Short(binary.BigEndian.Uint32(b[4:]))
	h.RootDisp = Short(binary.BigEndian.Uint32(b[8:]))
	h.RefID = RefID(b[12:16])
	h.Reference = Time(binary.BigEndian.Uint64(b[16:]))
	h.Origin = Time(binary.BigEndian.Uint64(b[24:]))
	h.Receive = Time(binary.BigEndian.Uint64(b[32:]))
	h.Transmit = Time(binary.BigEndian.Uint64(b[40:]))
	return nil
}

// Encode writes h into the first 48 bytes of dst and returns HeaderLen. It
// fails with ErrBuffer if dst is too short and ErrField if Leap, Version or
// Mode does not fit its bits.
func (h *Header) Encode(dst []byte) (int, error) {
	if len(dst) < HeaderLen {
		return 0, ErrBuffer
	}
	if h.Leap > 3 || h.Version > 7 || h.Mode > 7 {
		return 0, ErrField
	}
	dst[0] = byte(h.Leap)<<6 | h.Version<<3 | byte(h.Mode)
	dst[1] = h.Stratum
	dst[2] = byte(h.Poll)
	dst[3] = byte(h.Precision)
	binary.BigEndian.PutUint32(dst[4:], uint32(h.RootDelay))
	binary.BigEndian.PutUint32(dst[8:], uint32(h.RootDisp))
	copy(dst[12:16], h.RefID[:])
	binary.BigEndian.PutUint64(dst[16:], uint64(h.Reference))
	binary.BigEndian.PutUint64(dst[24:], uint64(h.Origin))
	binary.BigEndian.PutUint64(dst[32:], uint64(h.Receive))
	binary.BigEndian.PutUint64(dst[40:], uint64(h.Transmit))
	return HeaderLen, nil
}

// IsKiss reports whether h is a kiss-o'-death packet: a server reply with
// stratum 0, whose RefID holds the kiss code (RFC 5905 §7.4).
func (h *Header) IsKiss() bool {
	return h.Mode == ModeServer && h.Stratum == 0
}

// RootDistance returns the root delay over two plus the root dispersion:
// the bound on the error of the server's clock that it advertises
// (RFC 5905 §11.2).
func (h *Header) RootDistance() Short {
	d := uint64(h.RootDelay)/2 + uint64(h.RootDisp)
	if d > uint64(MaxShort) {
		return MaxShort
	}
	return Short(d)
}
