package server

import (
	"net/netip"
	"slices"
)

// Access is what an access list decides for an address.
type Access uint8

// Access decisions.
const (
	Allow Access = iota
	Deny
)

// ACL is an allow/deny list of address prefixes. The most specific prefix
// that contains an address decides; an address that no prefix contains is
// allowed when the list has no allow prefixes and denied otherwise (so a
// list of allows is a whitelist, a list of denies a blacklist). IPv4-mapped
// IPv6 addresses and prefixes are treated as IPv4. An ACL is immutable and
// safe for concurrent use; the zero ACL and a nil *ACL allow everything.
type ACL struct {
	// byLen holds, for each prefix length in use (most specific first),
	// the prefixes of that length and their decisions.
	byLen    []lenRules
	fallback Access
}

type lenRules struct {
	bits   int
	is4    bool
	access map[netip.Prefix]Access
}

// NewACL returns the list of allow and deny prefixes. A prefix given both
// as allow and deny is denied. Prefixes are masked to their length.
func NewACL(allow, deny []netip.Prefix) *ACL {
	a := &ACL{}
	if len(allow) > 0 {
		a.fallback = Deny
	}
	for _, p := range allow {
		a.add(p, Allow)
	}
	for _, p := range deny {
		a.add(p, Deny)
	}
	slices.SortFunc(a.byLen, func(x, y lenRules) int { return y.bits - x.bits })
	return a
}

// normalize unmaps IPv4-mapped prefixes (::ffff:0:0/96 and longer) and
// masks host bits.
func normalize(p netip.Prefix) netip.Prefix {
	addr := p.Addr()
	if addr.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(addr.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

func (a *ACL) add(p netip.Prefix, access Access) {
	p = normalize(p)
	if !p.IsValid() {
		return
	}
	is4 := p.Addr().Is4()
	for i := range a.byLen {
		r := &a.byLen[i]
		if r.bits == p.Bits() && r.is4 == is4 {
			if access == Deny || r.access[p] != Deny {
				r.access[p] = access
			}
			return
		}
	}
	a.byLen = append(a.byLen, lenRules{bits: p.Bits(), is4: is4, access: map[netip.Prefix]Access{p: access}})
}

// Rule is one prefix of an ACL with its decision.
type Rule struct {
	Prefix netip.Prefix
	Access Access
}

// Rules returns the list's prefixes as Check uses them (IPv4-mapped
// prefixes as IPv4, host bits masked, one decision each), most specific
// first, and the decision for an address that no prefix contains.
func (a *ACL) Rules() (rules []Rule, fallback Access) {
	if a == nil {
		return nil, Allow
	}
	for _, r := range a.byLen {
		start := len(rules)
		for p, access := range r.access {
			rules = append(rules, Rule{p, access})
		}
		slices.SortFunc(rules[start:], func(x, y Rule) int { return x.Prefix.Addr().Compare(y.Prefix.Addr()) })
	}
	return rules, a.fallback
}

// Check returns the decision for addr. It allocates nothing; its cost grows
// with the number of distinct prefix lengths, not of prefixes.
func (a *ACL) Check(addr netip.Addr) Access {
	if a == nil {
		return Allow
	}
	addr = addr.Unmap().WithZone("")
	is4 := addr.Is4()
	for i := range a.byLen {
		r := &a.byLen[i]
		if r.is4 != is4 {
			continue
		}
		p, err := addr.Prefix(r.bits)
		if err != nil {
			continue
		}
		if access, ok := r.access[p]; ok {
			return access
		}
	}
	return a.fallback
}
