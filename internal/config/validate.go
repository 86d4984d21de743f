package config

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"
)

// Limits of the values, as documented in docs/config.md.
const (
	maxListen        = 64 // listen addresses
	maxInterfaces    = 64 // XDP interfaces
	maxServers       = 32 // client servers
	maxPools         = 8  // client pools
	maxMakeStepLimit = 1000000
	maxMakeStep      = 1000 * time.Second
	maxPanic         = 100 * 365 * 24 * time.Hour
	maxIfname        = 15   // bytes of an interface name (IFNAMSIZ - 1)
	maxWorkers       = 1024 // sockets per listen address
	maxStratum       = 15   // local-stratum
	maxBurst         = 1024
	maxLeak          = 1000000
	minTableSize     = 64
	maxTableSize     = 1 << 24
	maxPrefixes      = 4096 // entries of allow and of deny
	minInterval      = time.Millisecond
	maxInterval      = time.Hour
	minPoll          = time.Second
	maxPoll          = 16 * time.Second
	maxUnsync        = 24 * time.Hour
	unsyncPerPoll    = 2 // unsync-after is at least this many polls
)

// checker reports validation problems at the lines the keys were set on.
type checker struct {
	errs *collector
	pos  *positions // nil when validating a Config built in code
}

func (k *checker) fail(key, msg string) { k.errs.add(k.pos.line(key), key, msg) }

func (k *checker) failElem(key string, i int, msg string) {
	k.errs.add(k.pos.elem(key, i), key, msg)
}

func (k *checker) intRange(key string, v, lo, hi int) bool {
	if v < lo || v > hi {
		k.fail(key, fmt.Sprintf("must be between %d and %d, got %d", lo, hi, v))
		return false
	}
	return true
}

func (k *checker) durationRange(key string, v, lo, hi time.Duration) bool {
	if v < lo || v > hi {
		k.fail(key, fmt.Sprintf("must be between %s and %s, got %s", fmtDuration(lo), fmtDuration(hi), fmtDuration(v)))
		return false
	}
	return true
}

func (k *checker) action(key string, a Action) {
	if a != Drop && a != KoD {
		k.fail(key, fmt.Sprintf(`must be "drop" or "kod", got action %d`, a))
	}
}

func (c *Config) validate(k *checker) {
	c.Server.validate(k)
	c.Client.validate(k)
	if c.Client.Enabled() && c.Mirror.Enabled() {
		key := "client.servers"
		if len(c.Client.Servers) == 0 {
			key = "client.pools"
		}
		k.fail(key, "cannot be used with mirror.upstream: the server serves either the client's time or the mirrored one")
	}
	c.Mirror.validate(k)
	switch c.Log.Level {
	case slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError:
	default:
		k.fail("log.level", fmt.Sprintf(`must be "debug", "info", "warn" or "error", got level %d`, int(c.Log.Level)))
	}
}

func (s *Server) validate(k *checker) {
	validateListen(k, s.Listen)
	k.intRange("server.workers", s.Workers, 0, maxWorkers)
	k.intRange("server.local-stratum", s.LocalStratum, 0, maxStratum)
	s.RateLimit.validate(k)
	s.Access.validate(k)
	s.XDP.validate(k)
}

func (c *Client) validate(k *checker) {
	if len(c.Servers) > maxServers {
		k.fail("client.servers", fmt.Sprintf("must list at most %d servers, got %d", maxServers, len(c.Servers)))
	}
	if len(c.Pools) > maxPools {
		k.fail("client.pools", fmt.Sprintf("must list at most %d pools, got %d", maxPools, len(c.Pools)))
	}
	seen := map[string]bool{}
	for _, l := range []struct {
		key   string
		specs []ServerSpec
	}{{"client.servers", c.Servers}, {"client.pools", c.Pools}} {
		for i, s := range l.specs {
			if hp := s.HostPort(); seen[hp] {
				k.failElem(l.key, i, fmt.Sprintf("duplicate source %s", hp))
			} else {
				seen[hp] = true
			}
		}
	}
	if c.Clock.String() == "invalid" {
		k.fail("client.clock", fmt.Sprintf(`must be "kernel" or "none", got clock %d`, int(c.Clock)))
	}
	k.intRange("client.min-sources", c.MinSources, 1, maxServers)
	k.durationRange("client.makestep", c.MakeStep, time.Millisecond, maxMakeStep)
	k.intRange("client.makestep-limit", c.MakeStepLimit, 0, maxMakeStepLimit)
	if c.Panic != 0 {
		k.durationRange("client.panic", c.Panic, time.Second, maxPanic)
	}
	if c.StepBudget != 0 {
		k.durationRange("client.step-budget", c.StepBudget, time.Second, maxPanic)
	}
}

func (x *XDP) validate(k *checker) {
	const key = "server.xdp.interfaces"
	if len(x.Interfaces) > maxInterfaces {
		k.fail(key, fmt.Sprintf("must list at most %d interfaces, got %d", maxInterfaces, len(x.Interfaces)))
		return
	}
	seen := make(map[string]bool)
	for i, name := range x.Interfaces {
		if seen[name] {
			k.failElem(key, i, fmt.Sprintf("duplicate interface %s", quote(name)))
		}
		seen[name] = true
	}
	if x.Mode.String() == "invalid" {
		k.fail("server.xdp.mode", fmt.Sprintf(`must be "auto", "native" or "generic", got mode %d`, int(x.Mode)))
	}
}

func validateListen(k *checker, listen []netip.AddrPort) {
	const key = "server.listen"
	switch {
	case len(listen) == 0:
		k.fail(key, "must list at least one address")
		return
	case len(listen) > maxListen:
		k.fail(key, fmt.Sprintf("must list at most %d addresses, got %d", maxListen, len(listen)))
		return
	}
	seen := make(map[netip.AddrPort]bool)
	for i, ap := range listen {
		switch {
		case !ap.Addr().IsValid():
			k.failElem(key, i, "invalid address")
		case ap.Addr().Is4In6():
			k.failElem(key, i, fmt.Sprintf("write the IPv4-mapped address %s as %s", ap, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())))
		case ap.Port() == 0:
			k.failElem(key, i, fmt.Sprintf("%s: port must be between 1 and 65535, got 0", ap))
		case seen[ap]:
			k.failElem(key, i, fmt.Sprintf("duplicate address %s", ap))
		}
		seen[ap] = true
	}
}

func (r *RateLimit) validate(k *checker) {
	const p = "server.rate-limit."
	k.durationRange(p+"interval", r.Interval, minInterval, maxInterval)
	k.intRange(p+"burst", r.Burst, 1, maxBurst)
	if r.Leak != 0 && (r.Leak < 2 || r.Leak > maxLeak) {
		msg := fmt.Sprintf("must be 0 (never) or between 2 and %d, got %d", maxLeak, r.Leak)
		if r.Leak == 1 {
			msg += " (1 would answer every request, which turns rate limiting off)"
		}
		k.fail(p+"leak", msg)
	}
	k.action(p+"action", r.Action)
	k.intRange(p+"table-size", r.TableSize, minTableSize, maxTableSize)
	k.intRange(p+"ipv4-prefix", r.IPv4Prefix, 8, 32)
	k.intRange(p+"ipv6-prefix", r.IPv6Prefix, 32, 128)
}

func (a *Access) validate(k *checker) {
	allow := validatePrefixes(k, "server.access.allow", a.Allow)
	deny := validatePrefixes(k, "server.access.deny", a.Deny)
	for i, p := range a.Deny {
		if allow[p] && deny[p] {
			k.failElem("server.access.deny", i, fmt.Sprintf("%s is also in server.access.allow", p))
		}
	}
	k.action("server.access.deny-action", a.DenyAction)
}

// validatePrefixes checks one access list and returns the set of its
// prefixes.
func validatePrefixes(k *checker, key string, list []netip.Prefix) map[netip.Prefix]bool {
	set := make(map[netip.Prefix]bool)
	if len(list) > maxPrefixes {
		k.fail(key, fmt.Sprintf("must list at most %d prefixes, got %d", maxPrefixes, len(list)))
		return set
	}
	for i, p := range list {
		switch {
		case !p.IsValid():
			k.failElem(key, i, "invalid prefix")
		case p.Addr().Is4In6() && p.Bits() >= 96:
			k.failElem(key, i, fmt.Sprintf("write the IPv4-mapped prefix %s as %s", p, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)))
		case p != p.Masked():
			k.failElem(key, i, fmt.Sprintf("%s has host bits set; did you mean %s?", p, p.Masked()))
		case set[p]:
			k.failElem(key, i, fmt.Sprintf("duplicate prefix %s", p))
		}
		set[p] = true
	}
	return set
}

func (m *Mirror) validate(k *checker) {
	m.validateUpstream(k)
	lo := unsyncPerPoll * minPoll
	if k.durationRange("mirror.poll", m.Poll, minPoll, maxPoll) {
		lo = unsyncPerPoll * m.Poll
	}
	if m.UnsyncAfter < lo || m.UnsyncAfter > maxUnsync {
		k.fail("mirror.unsync-after", fmt.Sprintf("must be between %s (%d × mirror.poll) and %s, got %s",
			fmtDuration(lo), unsyncPerPoll, fmtDuration(maxUnsync), fmtDuration(m.UnsyncAfter)))
	}
}

// validateUpstream checks Upstream, and that Host and Port are its parts
// (which only a Config built in code can get wrong).
func (m *Mirror) validateUpstream(k *checker) {
	const key = "mirror.upstream"
	if m.Upstream == "" {
		if m.Host != "" || m.Port != 0 {
			k.fail(key, fmt.Sprintf("is empty, but Host is %s and Port %d", quote(m.Host), m.Port))
		}
		return
	}
	host, port, msg := parseUpstream(m.Upstream)
	switch {
	case msg != "":
		k.fail(key, msg)
	case host != m.Host || port != m.Port:
		k.fail(key, fmt.Sprintf("Host %s and Port %d do not match %s", quote(m.Host), m.Port, quote(m.Upstream)))
	}
}

// fmtDuration formats d as time.Duration.String does, without its zero
// minutes and seconds: "1h", "24h", "1m30s".
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
