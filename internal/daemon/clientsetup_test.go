package daemon

import (
	"net/netip"
	"testing"

	"github.com/meridian-ntp/meridian/internal/ntp"
)

func TestRefIDAndGroup(t *testing.T) {
	for _, tt := range []struct {
		addr  string
		ref   ntp.RefID
		group string
	}{
		{"192.0.2.33", ntp.RefID{192, 0, 2, 33}, "192.0.2.0/24"},
		{"::ffff:198.51.100.7", ntp.RefID{198, 51, 100, 7}, "198.51.100.0/24"},
		{"127.0.0.1", ntp.RefID{127, 0, 0, 1}, ""},
		{"10.1.2.3", ntp.RefID{10, 1, 2, 3}, ""},
		{"fe80::1%eth0", ntp.RefID{}, ""},
		{"2001:db8:1:2::3", ntp.RefID{}, "2001:db8:1::/48"},
	} {
		a := netip.MustParseAddr(tt.addr)
		if g := group(a); g != tt.group {
			t.Errorf("group(%s) = %q; want %q", tt.addr, g, tt.group)
		}
		if r := refID(a); tt.ref != (ntp.RefID{}) && r != tt.ref {
			t.Errorf("refID(%s) = %v; want %v", tt.addr, r, tt.ref)
		}
	}
	// IPv6: the first four bytes of the MD5 of the address (RFC 5905 §7.3),
	// the same for the same address, different for another.
	a, b := refID(netip.MustParseAddr("2001:db8::1")), refID(netip.MustParseAddr("2001:db8::2"))
	if a == b || a != refID(netip.MustParseAddr("2001:db8::1")) {
		t.Errorf("IPv6 reference IDs %v and %v", a, b)
	}
}
