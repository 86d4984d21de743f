package xdp

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/server"
)

// Config configures the program.
type Config struct {
	// Dests are the addresses and ports answered in the program: specific
	// addresses only (a wildcard listen address is expanded by the caller
	// into the addresses of the interfaces the program is attached to).
	// IPv4-mapped addresses are taken as IPv4.
	Dests []netip.AddrPort
	// ACL decides which clients are served; nil serves everyone.
	ACL *server.ACL
	// DenyKoD answers denied clients with a kiss-o'-death DENY (itself
	// rate-limited) instead of silence.
	DenyKoD bool
	// Limit configures the rate limiter; nil turns it off. Its TableSize
	// bounds the program's client table, which is shared by all CPUs.
	Limit *server.LimitConfig
}

// static is the part of the state map's value that comes from the
// configuration.
type static struct {
	flags    uint32
	leak     uint32
	interval time.Duration
	burst    time.Duration
	mask4    [4]byte
	mask6    [16]byte
}

func newStatic(c Config) static {
	s := static{flags: flagEnabled}
	if c.ACL != nil {
		rules, fallback := c.ACL.Rules()
		if len(rules) > 0 || fallback == server.Deny {
			s.flags |= flagACL
		}
		if fallback == server.Deny {
			s.flags |= flagFallbackDeny
		}
	}
	if c.DenyKoD {
		s.flags |= flagDenyKoD
	}
	if c.Limit != nil {
		l := c.Limit.WithDefaults()
		s.flags |= flagLimit
		if l.KoD {
			s.flags |= flagRateKoD
		}
		if l.Leak > 0 {
			s.leak = uint32(l.Leak)
		}
		s.interval = l.Interval
		s.burst = time.Duration(l.Burst-1) * l.Interval
		s.mask4 = netip.PrefixFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), l.IPv4Prefix).Masked().Addr().As4()
		s.mask6 = netip.PrefixFrom(netip.AddrFrom16(allOnes16), l.IPv6Prefix).Masked().Addr().As16()
	}
	return s
}

var allOnes16 = [16]byte{255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}

// encodeState returns the state map's value serving st, with taiOffset
// the kernel's CLOCK_TAI - CLOCK_REALTIME. A leap second announced turns
// the program off: around the leap the TAI offset it converts with would
// be stale, and the sockets take the kernel's own timestamps.
func encodeState(s static, st *server.State, taiOffset time.Duration) [stateLen]byte {
	var b [stateLen]byte
	ne := binary.NativeEndian
	flags := s.flags
	if st.Leap == ntp.LeapInsert || st.Leap == ntp.LeapDelete {
		flags &^= flagEnabled
	}
	ne.PutUint32(b[offFlags:], flags)
	ne.PutUint32(b[offLeak:], s.leak)
	b[offLI] = byte(st.Leap) << 6
	b[offStratum] = st.Stratum
	b[offPrecision] = byte(st.Precision)
	binary.BigEndian.PutUint32(b[offRootDelay:], uint32(st.RootDelay))
	ne.PutUint32(b[offRootDisp:], uint32(st.RootDisp))
	copy(b[offRefID:], st.RefID[:])
	binary.BigEndian.PutUint64(b[offRefRaw:], uint64(st.Reference))
	ne.PutUint64(b[offRefHost:], uint64(st.Reference))
	ne.PutUint64(b[offTAI:], uint64(taiOffset))
	ne.PutUint64(b[offInterval:], uint64(s.interval))
	ne.PutUint64(b[offBurst:], uint64(s.burst))
	copy(b[offMask4:], s.mask4[:])
	copy(b[offMask6:], s.mask6[:])
	return b
}

// destKey returns the dests map's key for a: the port in network order,
// two zero bytes and the address in IPv4-mapped form.
func destKey(a netip.AddrPort) [20]byte {
	var k [20]byte
	binary.BigEndian.PutUint16(k[0:], a.Port())
	addr := a.Addr().Unmap().As16()
	copy(k[4:], addr[:])
	return k
}

// aclKey returns the LPM trie key of p: its length in host order, then
// its address (4 or 16 bytes).
func aclKey(p netip.Prefix) []byte {
	a := p.Addr().AsSlice()
	k := make([]byte, 4+len(a))
	binary.NativeEndian.PutUint32(k, uint32(p.Bits()))
	copy(k[4:], a)
	return k
}
