package daemon

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestXDPDests(t *testing.T) {
	listen := []netip.AddrPort{
		netip.MustParseAddrPort("0.0.0.0:123"),
		netip.MustParseAddrPort("[::]:1123"),
		netip.MustParseAddrPort("192.0.2.1:5"),
	}
	got, err := xdpDests(listen, []string{"lo"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"127.0.0.1:123", "[::1]:1123", "192.0.2.1:5"} {
		if !slices.Contains(got, netip.MustParseAddrPort(want)) {
			t.Errorf("xdpDests = %v; want %s among them", got, want)
		}
	}
	for _, d := range got {
		if d.Addr().IsUnspecified() || (d.Addr().Is4() && d.Port() == 1123) || (d.Addr().Is6() && d.Port() == 123) {
			t.Errorf("xdpDests = %v: %v is a wildcard or of the other family's listen address", got, d)
		}
	}
	if _, err := xdpDests(listen, []string{"lo", "no-such-if0"}); err == nil || !strings.Contains(err.Error(), "no-such-if0") {
		t.Errorf("xdpDests with a missing interface: %v; want an error naming it", err)
	}
}
