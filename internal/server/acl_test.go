package server

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func prefixes(s ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, x := range s {
		ps = append(ps, netip.MustParsePrefix(x))
	}
	return ps
}

// TestACL covers THREATS B10: most specific prefix wins, IPv4-mapped
// addresses and prefixes, /0, odd lengths, host bits, conflicting rules.
func TestACL(t *testing.T) {
	tests := []struct {
		name        string
		allow, deny []string
		addr        string
		want        Access
	}{
		{"empty allows all", nil, nil, "192.0.2.1", Allow},
		{"empty allows IPv6", nil, nil, "2001:db8::1", Allow},
		{"allow list is a whitelist", []string{"192.0.2.0/24"}, nil, "198.51.100.1", Deny},
		{"allow list match", []string{"192.0.2.0/24"}, nil, "192.0.2.77", Allow},
		{"deny list is a blacklist", nil, []string{"192.0.2.0/24"}, "198.51.100.1", Allow},
		{"deny list match", nil, []string{"192.0.2.0/24"}, "192.0.2.1", Deny},
		{"more specific allow in deny", []string{"192.0.2.128/25"}, []string{"192.0.2.0/24"}, "192.0.2.200", Allow},
		{"less specific deny", []string{"192.0.2.128/25"}, []string{"192.0.2.0/24"}, "192.0.2.5", Deny},
		{"more specific deny in allow", []string{"10.0.0.0/8"}, []string{"10.1.0.0/16"}, "10.1.2.3", Deny},
		{"allow /0, deny /8", []string{"0.0.0.0/0"}, []string{"10.0.0.0/8"}, "8.8.8.8", Allow},
		{"allow /0, deny /8 hit", []string{"0.0.0.0/0"}, []string{"10.0.0.0/8"}, "10.9.9.9", Deny},
		{"IPv4 /0 does not cover IPv6", []string{"0.0.0.0/0"}, nil, "2001:db8::1", Deny},
		{"IPv6 /0", []string{"::/0"}, nil, "2001:db8::1", Allow},
		{"IPv6 /0 does not cover IPv4", []string{"::/0"}, nil, "192.0.2.1", Deny},
		{"deny /0 v6", nil, []string{"::/0"}, "::1", Deny},
		{"/31 first", nil, []string{"192.0.2.0/31"}, "192.0.2.1", Deny},
		{"/31 outside", nil, []string{"192.0.2.0/31"}, "192.0.2.2", Allow},
		{"/127", nil, []string{"2001:db8::/127"}, "2001:db8::1", Deny},
		{"/127 outside", nil, []string{"2001:db8::/127"}, "2001:db8::2", Allow},
		{"/32 exact", nil, []string{"192.0.2.9/32"}, "192.0.2.9", Deny},
		{"/128 exact", nil, []string{"2001:db8::9/128"}, "2001:db8::9", Deny},
		{"mapped address vs IPv4 rule", nil, []string{"192.0.2.0/24"}, "::ffff:192.0.2.9", Deny},
		{"mapped rule vs IPv4 address", nil, []string{"::ffff:192.0.2.0/120"}, "192.0.2.9", Deny},
		{"mapped rule outside", nil, []string{"::ffff:192.0.2.0/120"}, "192.0.3.9", Allow},
		{"host bits masked", nil, []string{"192.0.2.77/24"}, "192.0.2.1", Deny},
		{"same prefix allowed and denied", []string{"192.0.2.0/24"}, []string{"192.0.2.0/24"}, "192.0.2.1", Deny},
		{"zone ignored", nil, []string{"fe80::/10"}, "fe80::1%eth0", Deny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acl := NewACL(prefixes(tt.allow...), prefixes(tt.deny...))
			if got := acl.Check(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("allow %v deny %v: Check(%s) = %v; want %v", tt.allow, tt.deny, tt.addr, got, tt.want)
			}
		})
	}
	var nilACL *ACL
	if nilACL.Check(netip.MustParseAddr("192.0.2.1")) != Allow {
		t.Error("nil ACL denies")
	}
}

// referenceCheck is the obvious linear implementation of the ACL rules.
func referenceCheck(allow, deny []netip.Prefix, addr netip.Addr) Access {
	addr = addr.Unmap()
	best, found := -1, Allow
	consider := func(ps []netip.Prefix, a Access) {
		for _, p := range ps {
			p = normalize(p)
			if p.IsValid() && p.Contains(addr) && (p.Bits() > best || p.Bits() == best && a == Deny) {
				best, found = p.Bits(), a
			}
		}
	}
	consider(allow, Allow)
	consider(deny, Deny)
	if best >= 0 {
		return found
	}
	if len(allow) > 0 {
		return Deny
	}
	return Allow
}

// FuzzACL compares the ACL with the reference on arbitrary rules.
func FuzzACL(f *testing.F) {
	f.Add([]byte{192, 0, 2, 0, 24, 1, 192, 0, 2, 128, 25, 0}, []byte{192, 0, 2, 200})
	f.Add([]byte{0, 0, 0, 0, 0, 1}, []byte{10, 1, 1, 1})
	f.Fuzz(func(t *testing.T, rules, addrBytes []byte) {
		var allow, deny []netip.Prefix
		for len(rules) >= 6 && len(allow)+len(deny) < 64 {
			a := netip.AddrFrom4([4]byte(rules[:4]))
			if rules[5]&2 != 0 {
				a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, rules[0], rules[1], rules[2], rules[3]})
			}
			bits := int(rules[4]) % (a.BitLen() + 1)
			p := netip.PrefixFrom(a, bits)
			if rules[5]&1 == 0 {
				allow = append(allow, p)
			} else {
				deny = append(deny, p)
			}
			rules = rules[6:]
		}
		var addr netip.Addr
		switch {
		case len(addrBytes) >= 16:
			addr = netip.AddrFrom16([16]byte(addrBytes[:16]))
		case len(addrBytes) >= 4:
			addr = netip.AddrFrom4([4]byte(addrBytes[:4]))
		default:
			return
		}
		acl := NewACL(allow, deny)
		if got, want := acl.Check(addr), referenceCheck(allow, deny, addr); got != want {
			t.Fatalf("allow %v deny %v: Check(%s) = %v; reference %v", allow, deny, addr, got, want)
		}
	})
}

func TestACLRules(t *testing.T) {
	a := NewACL(
		[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::ffff:192.0.2.1/120"), netip.MustParsePrefix("2001:db8::1/32")},
		[]netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("10.0.0.0/8")})
	rules, fallback := a.Rules()
	want := []Rule{
		{netip.MustParsePrefix("2001:db8::/32"), Allow},
		{netip.MustParsePrefix("192.0.2.0/24"), Allow},
		{netip.MustParsePrefix("10.1.0.0/16"), Deny},
		{netip.MustParsePrefix("10.0.0.0/8"), Deny},
	}
	if diff := cmp.Diff(want, rules, cmp.Comparer(func(x, y netip.Prefix) bool { return x == y })); diff != "" {
		t.Errorf("Rules() mismatch (-want +got):\n%s", diff)
	}
	if fallback != Deny {
		t.Errorf("fallback = %v; want Deny", fallback)
	}
	if r, f := (*ACL)(nil).Rules(); r != nil || f != Allow {
		t.Errorf("nil ACL Rules() = %v, %v; want nil, Allow", r, f)
	}
}
