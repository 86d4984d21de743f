package xdp

import (
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/meridian-ntp/meridian/internal/mono"
	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/server"
)

// This file is the tests' own model of what the program must do: frames
// built and checked with encoding/binary, and the expected response from
// package server.

var (
	macServer = [6]byte{0x02, 0, 0, 0, 0, 0x01}
	macClient = [6]byte{0x02, 0, 0, 0, 0, 0x02}
)

// frame describes a UDP datagram in an Ethernet frame.
type frame struct {
	src, dst     netip.AddrPort
	payload      []byte
	ttl          uint8
	ipID         uint16
	zeroChecksum bool // IPv4 only: no UDP checksum
}

// build returns the frame's bytes, with valid lengths and checksums.
func (f frame) build() []byte {
	b := append(slices.Clone(macServer[:]), macClient[:]...)
	udp := make([]byte, 8, 8+len(f.payload))
	binary.BigEndian.PutUint16(udp[0:], f.src.Port())
	binary.BigEndian.PutUint16(udp[2:], f.dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(f.payload)))
	udp = append(udp, f.payload...)
	ttl := f.ttl
	if ttl == 0 {
		ttl = 61
	}
	if f.src.Addr().Is4() {
		b = binary.BigEndian.AppendUint16(b, 0x0800)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(udp)))
		binary.BigEndian.PutUint16(ip[4:], f.ipID)
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		ip[8], ip[9] = ttl, 17
		s, d := f.src.Addr().As4(), f.dst.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		binary.BigEndian.PutUint16(ip[10:], ^onesSum(0, ip))
		if !f.zeroChecksum {
			binary.BigEndian.PutUint16(udp[6:], udpChecksum(s[:], d[:], udp))
		}
		return append(append(b, ip...), udp...)
	}
	b = binary.BigEndian.AppendUint16(b, 0x86DD)
	ip := make([]byte, 40)
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(udp)))
	ip[6], ip[7] = 17, ttl
	s, d := f.src.Addr().As16(), f.dst.Addr().As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	binary.BigEndian.PutUint16(udp[6:], udpChecksum(s[:], d[:], udp))
	return append(append(b, ip...), udp...)
}

// onesSum adds b to sum as big-endian 16-bit words in one's complement.
func onesSum(sum uint32, b []byte) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xFFFF {
		sum = sum&0xFFFF + sum>>16
	}
	return uint16(sum)
}

// udpChecksum returns the UDP checksum of udp (its checksum field zero)
// between the addresses src and dst (RFC 768, RFC 8200 §8.1).
func udpChecksum(src, dst, udp []byte) uint16 {
	pseudo := append(append(slices.Clone(src), dst...), 0, 17)
	pseudo = binary.BigEndian.AppendUint16(pseudo, uint16(len(udp)))
	c := ^onesSum(uint32(onesSum(0, pseudo)), udp)
	if c == 0 {
		return 0xFFFF
	}
	return c
}

// request returns a 48-byte NTP request of the given version, mode and
// poll, with a transmit timestamp.
func request(version, mode uint8, poll int8) []byte {
	b := make([]byte, 48)
	b[0] = version<<3 | mode
	b[2] = byte(poll)
	binary.BigEndian.PutUint64(b[40:], 0x0123456789ABCDEF)
	return b
}

// candidate reports whether the program must answer the frame b itself,
// as the package documentation specifies; everything else is passed on.
// It returns the client's address and the NTP request.
func candidate(b []byte, dests []netip.AddrPort) (from netip.Addr, req []byte, ok bool) {
	if len(b) < 14 || b[0]&1 == 1 {
		return from, nil, false
	}
	var udp []byte
	var src, dst netip.Addr
	switch binary.BigEndian.Uint16(b[12:]) {
	case 0x0800:
		ip := b[14:]
		if len(b) != 90 || ip[0] != 0x45 || binary.BigEndian.Uint16(ip[2:]) != 76 ||
			binary.BigEndian.Uint16(ip[6:])&0x3FFF != 0 || ip[9] != 17 {
			return from, nil, false
		}
		src, dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		if ip[12] == 0 || ip[12] >= 224 {
			return from, nil, false
		}
		udp = ip[20:]
	case 0x86DD:
		ip := b[14:]
		if len(b) != 110 || ip[0]>>4 != 6 || binary.BigEndian.Uint16(ip[4:]) != 56 || ip[6] != 17 {
			return from, nil, false
		}
		src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
		if src.IsMulticast() || src.IsUnspecified() || src.Is4In6() {
			return from, nil, false
		}
		udp = ip[40:]
		if binary.BigEndian.Uint16(udp[6:]) == 0 {
			return from, nil, false
		}
	default:
		return from, nil, false
	}
	if binary.BigEndian.Uint16(udp[4:]) != 56 {
		return from, nil, false
	}
	served := slices.ContainsFunc(dests, func(d netip.AddrPort) bool {
		return d.Addr().Unmap() == dst && d.Port() == binary.BigEndian.Uint16(udp[2:])
	})
	req = udp[8:]
	if !served || req[0]&7 != 3 || req[0]>>3&7 == 0 || req[0]>>3&7 > 4 {
		return from, nil, false
	}
	return src, req, true
}

// expected returns the frame the program must send back for candidate
// frame in, answered by resp at rx (receive and transmit timestamp) and
// monotonic time now, and the verdict.
func expected(in []byte, resp *server.Responder, st *server.State, from netip.Addr, req []byte, rx ntp.Time, now mono.Instant) ([]byte, server.Verdict) {
	var ntpOut [48]byte
	n, v := resp.Respond(now, st, from, rx, req, ntpOut[:])
	if n == 0 {
		return nil, v
	}
	server.StampTransmit(ntpOut[:], rx)
	out := slices.Clone(in)
	copy(out[0:6], in[6:12])
	copy(out[6:12], in[0:6])
	if binary.BigEndian.Uint16(in[12:]) == 0x0800 {
		ip := out[14:34]
		copy(ip[12:16], in[30:34])
		copy(ip[16:20], in[26:30])
		ip[8] = replyTTL
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], ^onesSum(0, ip))
		udp := out[34:]
		copy(udp[0:2], in[36:38])
		copy(udp[2:4], in[34:36])
		copy(udp[8:], ntpOut[:])
		udp[6], udp[7] = 0, 0
		binary.BigEndian.PutUint16(udp[6:], udpChecksum(ip[12:16], ip[16:20], udp))
		return out, v
	}
	ip := out[14:54]
	copy(ip[8:24], in[38:54])
	copy(ip[24:40], in[22:38])
	ip[7] = replyTTL
	udp := out[54:]
	copy(udp[0:2], in[56:58])
	copy(udp[2:4], in[54:56])
	copy(udp[8:], ntpOut[:])
	udp[6], udp[7] = 0, 0
	binary.BigEndian.PutUint16(udp[6:], udpChecksum(ip[8:24], ip[24:40], udp))
	return out, v
}
