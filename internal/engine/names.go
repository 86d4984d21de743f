package engine

import (
	"maps"
	"net/netip"
	"time"

	"github.com/meridian-ntp/meridian/internal/mono"
	"github.com/meridian-ntp/meridian/internal/ntp"
)

// NameConfig configures a server or a pool given by name.
type NameConfig struct {
	// Name is the entry as configured, for status and logs.
	Name string
	// Host is what is resolved: a DNS name or an IP address.
	Host string
	Port uint16
	// Pool: the name stands for many servers, of which up to MaxSources
	// (default 4) are used at once; a member that stops answering or
	// keeps being a falseticker is dropped and another taken. Otherwise
	// the name is one server: one address, looked up again when it stops
	// answering, and replaced if the address changed.
	Pool       bool
	MaxSources int
	Options    SourceOptions
}

// DefaultMaxSources is a pool's MaxSources by default.
const DefaultMaxSources = 4

// max returns how many sources the name gives at most.
func (n NameConfig) max() int {
	switch {
	case !n.Pool:
		return 1
	case n.MaxSources <= 0:
		return DefaultMaxSources
	}
	return n.MaxSources
}

// nameState is the resolution state of one name.
type nameState struct {
	cfg NameConfig
	// due is when the name is to be resolved next, if wanted.
	due     mono.Instant
	wanted  bool
	pending bool // handed out by DueNames, not yet back
	// failures counts the resolutions in a row that failed or gave too
	// few addresses: each doubles the wait before the next.
	failures int
}

// Resolution retries: the first after resolveRetry (Config.ResolveRetry),
// each later one after twice the wait before it, at most resolveRetryMax. A name that keeps
// failing costs its resolver one query every 17 minutes.
const (
	resolveRetry    = 8 * time.Second
	resolveRetryMax = 1024 * time.Second
)

// Pool members dropped: after falseRuns samples in a row as a
// falseticker (while the clock is synchronized to others), and not taken
// again for shunFor. maxShunned bounds the memory of them.
const (
	falseRuns  = 8
	shunFor    = time.Hour
	maxShunned = 256
)

// EventKind is what an Event reports.
type EventKind uint8

// Events.
const (
	EventAdded         EventKind = iota + 1 // a source was added from a name
	EventRemoved                            // a source resolved from a name was dropped
	EventResolveFailed                      // a name could not be resolved (or gave too few addresses)
)

// Event is a change of the sources that the engine made itself, for the
// caller's log and sockets.
type Event struct {
	Kind EventKind
	Src  int // the source's number (Added, Removed)
	Name string
	Addr netip.AddrPort // Added, Removed
	// Reason says why a source was dropped, or why a resolution failed.
	Reason string
	// Retry is when a failed resolution is tried again.
	Retry time.Duration
}

// Events appends to dst the events since the last call and forgets them.
func (e *Engine) Events(dst []Event) []Event {
	dst = append(dst, e.events...)
	e.events = e.events[:0]
	return dst
}

// DueNames appends to dst the indices (in Config.Names) of the names due
// to be resolved at now, which are then pending until HandleResolved
// takes their answer. The caller resolves them to addresses, at its own
// pace (a resolver may be slow), and must answer every one.
func (e *Engine) DueNames(now mono.Instant, dst []int) []int {
	for i := range e.names {
		n := &e.names[i]
		if n.wanted && !n.pending && !now.Before(n.due) {
			n.pending, n.wanted = true, false
			dst = append(dst, i)
		}
	}
	return dst
}

// Name returns the configuration of name n.
func (e *Engine) Name(n int) NameConfig { return e.names[n].cfg }

// HandleResolved takes the answer to the resolution of name n: its
// addresses, or the error that ended it. A server takes the first usable
// address, or keeps its address if still among them; a pool takes new
// members from them, in order, until it has MaxSources, leaving out the
// addresses already in use and those it dropped lately. However many
// addresses come, no more sources than that are added (THREATS F3). A
// failure, or too few addresses for a pool, is retried with back-off.
func (e *Engine) HandleResolved(now mono.Instant, n int, addrs []netip.Addr, err error) {
	ns := &e.names[n]
	ns.pending = false
	members := e.members(n)
	reason := ""
	switch {
	case err != nil:
		reason = err.Error()
	case ns.cfg.Pool:
		if e.fillPool(now, n, len(members), addrs) < ns.cfg.max() {
			reason = "too few usable addresses"
		}
	default:
		if !e.keepServer(now, n, members, addrs) {
			reason = "no usable address"
		}
	}
	if reason == "" {
		ns.failures = 0
		return
	}
	first := e.cfg.ResolveRetry
	if first <= 0 {
		first = resolveRetry
	}
	wait := resolveRetryMax
	if ns.failures < 16 {
		wait = min(first<<ns.failures, resolveRetryMax)
	}
	ns.failures++
	ns.due, ns.wanted = now.Add(wait), true
	e.events = append(e.events, Event{Kind: EventResolveFailed, Src: -1, Name: ns.cfg.Name, Reason: reason, Retry: wait})
}

// members returns the numbers of the sources resolved from name n.
func (e *Engine) members(n int) []int {
	var m []int
	for i, s := range e.slots {
		if s != nil && s.name == n {
			m = append(m, i)
		}
	}
	return m
}

// usable returns addr with name n's port as a source address, and
// whether it may become a new source: a unicast address that no source
// uses and that was not dropped lately, with a zone if link-local.
func (e *Engine) usable(now mono.Instant, n int, addr netip.Addr) (netip.AddrPort, bool) {
	addr = addr.Unmap()
	ap := netip.AddrPortFrom(addr, e.names[n].cfg.Port)
	if !addr.IsValid() || addr.IsUnspecified() || addr.IsMulticast() ||
		addr.IsLinkLocalUnicast() && addr.Zone() == "" { // no interface to send on
		return ap, false
	}
	if until, ok := e.shunned[ap]; ok && now.Before(until) {
		return ap, false
	}
	for _, s := range e.slots {
		if s != nil && s.cfg.Addr == ap {
			return ap, false
		}
	}
	return ap, true
}

// fillPool adds members to pool n, which has have, from addrs until it
// has its most, and returns how many it has.
func (e *Engine) fillPool(now mono.Instant, n, have int, addrs []netip.Addr) int {
	for _, a := range addrs {
		if have >= e.names[n].cfg.max() {
			break
		}
		if ap, ok := e.usable(now, n, a); ok {
			e.addFrom(now, n, ap)
			have++
		}
	}
	return have
}

// keepServer keeps server n's source if its address is still among
// addrs, or (re)starts it on the first usable one; it reports whether
// the server has a source.
func (e *Engine) keepServer(now mono.Instant, n int, members []int, addrs []netip.Addr) bool {
	port := e.names[n].cfg.Port
	for _, m := range members {
		for _, a := range addrs {
			if netip.AddrPortFrom(a.Unmap(), port) == e.slots[m].cfg.Addr {
				return true
			}
		}
	}
	for _, a := range addrs {
		if ap, ok := e.usable(now, n, a); ok {
			for _, m := range members {
				e.remove(m, "its name now resolves to "+ap.Addr().String())
			}
			e.addFrom(now, n, ap)
			return true
		}
	}
	return len(members) > 0
}

// addFrom adds a source at ap resolved from name n.
func (e *Engine) addFrom(now mono.Instant, n int, ap netip.AddrPort) {
	cfg := e.names[n].cfg
	e.add(now, SourceConfig{Name: cfg.Name, Addr: ap, RefID: ntp.RefIDFromAddr(ap.Addr()), Group: GroupOf(ap.Addr()),
		Options: cfg.Options}, n)
}

// unreachable handles source src's unanswered requests: a pool drops the
// member and looks for another; a server given by name is looked up
// again (its address may have changed; THREATS F4); a source at a fixed
// address is kept as it is.
func (e *Engine) unreachable(now mono.Instant, src int) {
	s := e.slots[src]
	s.polls = 0
	if s.name < 0 {
		return
	}
	if e.names[s.name].cfg.Pool {
		e.drop(now, src, "unreachable")
	}
	e.resolveSoon(now, s.name)
}

// judge drops pool member src once it has been a falseticker for
// falseRuns of its samples in a row.
func (e *Engine) judge(now mono.Instant, src int) {
	s := e.slots[src]
	if s.name < 0 || !e.names[s.name].cfg.Pool || s.cfg.Options.NoSelect || e.d.Smearing(now, src) {
		// A member suspected of smearing a leap second is left out of
		// selection for that, not for lying: it stays.
		return
	}
	if e.d.Truechimer(src) {
		s.falseRun = 0
		return
	}
	if s.falseRun++; s.falseRun >= falseRuns {
		e.drop(now, src, "a falseticker")
		e.resolveSoon(now, s.name)
	}
}

// drop removes pool member src and shuns its address for a while. With
// the list full, the expired entries go, and then the oldest (the lowest
// address of those dropped at once): the same drops leave the same list,
// whatever the map's order.
func (e *Engine) drop(now mono.Instant, src int, reason string) {
	if len(e.shunned) >= maxShunned {
		maps.DeleteFunc(e.shunned, func(_ netip.AddrPort, until mono.Instant) bool { return !now.Before(until) })
	}
	for len(e.shunned) >= maxShunned {
		var oldest netip.AddrPort
		var at mono.Instant
		first := true
		for ap, until := range e.shunned {
			if first || until.Before(at) || until == at && ap.Compare(oldest) < 0 {
				oldest, at, first = ap, until, false
			}
		}
		delete(e.shunned, oldest)
	}
	e.shunned[e.slots[src].cfg.Addr] = now.Add(shunFor)
	e.remove(src, reason)
}

// resolveSoon makes name n due now, unless it is pending or waiting out
// a failure.
func (e *Engine) resolveSoon(now mono.Instant, n int) {
	ns := &e.names[n]
	if !ns.pending && ns.failures == 0 {
		ns.due, ns.wanted = now, true
	}
}

// GroupOf names the network of addr for the selection's diversity rule:
// its IPv4 /24 or IPv6 /48 for a public address; none (a group of its
// own) for loopback, private and link-local ones, which an operator
// configures one by one, often several on one host.
func GroupOf(addr netip.Addr) string {
	addr = addr.Unmap()
	if !addr.IsGlobalUnicast() || addr.IsPrivate() {
		return ""
	}
	bits := 48
	if addr.Is4() {
		bits = 24
	}
	p, _ := addr.WithZone("").Prefix(bits) // cannot fail: bits fit both families
	return p.String()
}
