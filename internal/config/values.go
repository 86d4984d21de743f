package config

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// parseInteger parses a TOML integer: decimal with an optional sign, or
// hexadecimal, octal or binary after 0x, 0o or 0b; underscores only between
// digits; no leading zeros. The TOML scanner leaves these checks to the
// decoder, so all of them are made here. The result must fit in an int.
func parseInteger(s string) (int, string) {
	sign, body, base := "", s, 10
	switch {
	case strings.HasPrefix(s, "0x"):
		body, base = s[2:], 16
	case strings.HasPrefix(s, "0o"):
		body, base = s[2:], 8
	case strings.HasPrefix(s, "0b"):
		body, base = s[2:], 2
	case strings.HasPrefix(s, "+"), strings.HasPrefix(s, "-"):
		sign, body = s[:1], s[1:]
	}
	if !validDigits(body, base) || (base == 10 && len(body) > 1 && body[0] == '0') {
		return 0, "invalid integer " + quote(s)
	}
	n, err := strconv.ParseInt(sign+strings.ReplaceAll(body, "_", ""), base, 64)
	if err != nil || int64(int(n)) != n {
		return 0, fmt.Sprintf("integer %s does not fit in 64 bits", clip(s))
	}
	return int(n), ""
}

// validDigits reports whether s is digits of base with single underscores
// between them.
func validDigits(s string, base int) bool {
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' || strings.Contains(s, "__") {
		return false
	}
	for _, c := range []byte(s) {
		if c != '_' && digitValue(c) >= base {
			return false
		}
	}
	return true
}

// digitValue returns the value of the digit c in bases up to 16, or 16.
func digitValue(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return 16
}

// allDigits reports whether s is a non-empty string of decimal digits.
func allDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// durationSyntax matches what time.ParseDuration accepts, so that a
// duration it rejects can be told to be out of range rather than malformed.
var durationSyntax = regexp.MustCompile(`^[-+]?(([0-9]+\.?[0-9]*|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$`)

// parseDuration parses a Go duration string ("2s", "1m30s", "500ms").
// Ranges are checked by validation.
func parseDuration(s string) (time.Duration, string) {
	d, err := time.ParseDuration(s)
	switch {
	case err == nil:
		return d, ""
	case durationSyntax.MatchString(s):
		return 0, fmt.Sprintf("duration %s is out of range", quote(s))
	}
	return 0, fmt.Sprintf(`invalid duration %s: write a number and a unit, like "2s", "500ms" or "1h"`, quote(s))
}

// parseAddrPort parses "IP:port" ("[IPv6]:port"). Host names are refused:
// a listening address must not depend on name resolution at start-up.
// IPv4-mapped IPv6 addresses become IPv4.
func parseAddrPort(s string) (netip.AddrPort, string) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if a, err := netip.ParseAddr(s); err == nil {
			return netip.AddrPort{}, fmt.Sprintf("%s has no port; write %s (IPv6 addresses go in brackets)", quote(s), netip.AddrPortFrom(a, 123))
		}
		return netip.AddrPort{}, fmt.Sprintf("%s is not an IP address and port, like 127.0.0.1:123 or [::1]:123", quote(s))
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Sprintf("%s: %s is not an IP address (host names are not allowed here)", quote(s), quote(host))
	}
	if msg := checkHostPort(s, a, port); msg != "" {
		return netip.AddrPort{}, msg
	}
	n, _ := strconv.ParseUint(port, 10, 16) // checkHostPort accepted it
	return netip.AddrPortFrom(a.Unmap(), uint16(n)), ""
}

// checkHostPort explains what is wrong with the parts of s, "host:port",
// once split: brackets around anything but an IPv6 address (a, or the
// zero Addr for a host name), or a port that is not a plain number.
func checkHostPort(s string, a netip.Addr, port string) string {
	if strings.HasPrefix(s, "[") && !a.Is6() {
		return fmt.Sprintf("%s: square brackets are only for IPv6 addresses", quote(s))
	}
	if msg := checkPort(port); msg != "" {
		return quote(s) + ": " + msg
	}
	return ""
}

// checkPort explains why port is not a port number, 1 to 65535, written in
// decimal without leading zeros, or returns "". A leading zero is refused
// because some programs read such numbers as octal: "0123" is ambiguous,
// and TOML refuses leading zeros in integers for the same reason.
func checkPort(port string) string {
	if !allDigits(port) {
		return fmt.Sprintf("port %s is not a number (service names are not looked up)", quote(port))
	}
	n, err := strconv.ParseUint(port, 10, 16)
	switch {
	case err != nil || n == 0:
		return fmt.Sprintf("port must be between 1 and 65535, got %s", clip(port))
	case len(port) > 1 && port[0] == '0':
		return fmt.Sprintf("port %s has a leading zero; write %d", quote(port), n)
	}
	return ""
}

// parsePrefix parses a CIDR prefix. A bare address stands for itself (/32
// or /128), as in chrony's allow and deny. An IPv4-mapped IPv6 prefix of
// length 96 or more becomes the IPv4 prefix it denotes. Host bits are left
// to validation, which suggests the masked prefix.
func parsePrefix(s string) (netip.Prefix, string) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), ""
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, prefixProblem(s)
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p, ""
}

// prefixProblem explains why s is not a CIDR prefix.
func prefixProblem(s string) string {
	addr, bits, found := strings.Cut(s, "/")
	a, err := netip.ParseAddr(addr)
	switch {
	case !found || err != nil:
		return fmt.Sprintf("%s is not a CIDR prefix like 192.0.2.0/24 or 2001:db8::/32", quote(s))
	case a.Zone() != "":
		return fmt.Sprintf("%s: a prefix cannot have a zone", quote(s))
	}
	n, err := strconv.Atoi(bits)
	if err != nil || n < 0 || n > a.BitLen() || (len(bits) > 1 && bits[0] == '0') {
		return fmt.Sprintf("%s: prefix length must be a number between 0 and %d", quote(s), a.BitLen())
	}
	return fmt.Sprintf("%s is not a CIDR prefix like 192.0.2.0/24 or 2001:db8::/32", quote(s))
}

// parseUpstream parses "host:port", where host is an IP literal (IPv6 in
// brackets) or a DNS name, and port a number.
func parseUpstream(s string) (host string, port uint16, msg string) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Sprintf("%s is not host:port, like 127.0.0.1:11123, [::1]:11123 or ntp.example.net:123", quote(s))
	}
	if host == "" {
		return "", 0, fmt.Sprintf("%s has no host", quote(s))
	}
	a, err := netip.ParseAddr(host)
	if err != nil && !validHostname(host) {
		return "", 0, fmt.Sprintf("%s: %s is neither an IP address nor a host name", quote(s), quote(host))
	}
	if msg := checkHostPort(s, a, p); msg != "" {
		return "", 0, msg
	}
	n, _ := strconv.ParseUint(p, 10, 16) // checkHostPort accepted it
	return host, uint16(n), ""
}

// validHostname reports whether h is a DNS host name: dot-separated labels
// of letters, digits, '-' and '_' (used by some internal names), 1 to 63
// bytes each, not starting or ending with '-', 253 bytes at most, with a
// last label that is not all digits (that would be a mistyped address).
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' || !bareKey(l) {
			return false
		}
	}
	return !allDigits(labels[len(labels)-1])
}

// parseInterface checks a network interface name as Linux does: 1 to 15
// bytes, not "." or "..", no slash, colon or white space.
func parseInterface(s string) (string, string) {
	switch {
	case s == "":
		return "", "an interface name must not be empty"
	case len(s) > maxIfname:
		return "", fmt.Sprintf("interface name %s is longer than %d bytes", quote(s), maxIfname)
	case s == "." || s == "..":
		return "", fmt.Sprintf("%s is not an interface name", quote(s))
	case strings.ContainsFunc(s, func(r rune) bool { return r == '/' || r == ':' || r <= ' ' || r == 0x7F || r >= 0x80 }):
		return "", fmt.Sprintf("interface name %s may not contain '/', ':', spaces, control or non-ASCII characters", quote(s))
	}
	return s, ""
}

// Poll exponents a source may be given (ntpd's range: 8 s to 36 h), and
// the most members a pool may have.
const (
	minPollLog2   = 3
	maxPollLog2   = 17
	maxMaxSources = 16
)

// parseServerSpec parses an entry of client.servers: "HOST[:PORT]" and
// options, separated by spaces. HOST is an IP literal (IPv6 in brackets
// when a port follows; a link-local one may have a zone) or a DNS name;
// PORT defaults to 123. The options are iburst, prefer, noselect,
// minpoll N and maxpoll N.
func parseServerSpec(s string) (ServerSpec, string) { return parseSourceSpec(s, false) }

// parsePoolSpec parses an entry of client.pools: as parseServerSpec,
// and the option maxsources N.
func parsePoolSpec(s string) (ServerSpec, string) { return parseSourceSpec(s, true) }

func parseSourceSpec(s string, pool bool) (ServerSpec, string) {
	what := "a server"
	if pool {
		what = "a pool"
	}
	f := strings.Fields(s)
	if len(f) == 0 {
		return ServerSpec{}, what + " must not be empty"
	}
	spec := ServerSpec{Port: 123}
	hostport := f[0]
	if a, err := netip.ParseAddr(strings.Trim(hostport, "[]")); err == nil && !strings.Contains(hostport, "]:") {
		spec.Host = a.String()
	} else if strings.Contains(hostport, ":") {
		host, port, msg := parseUpstream(hostport)
		if msg != "" {
			return ServerSpec{}, msg
		}
		spec.Host, spec.Port = host, port
	} else if validHostname(hostport) {
		spec.Host = hostport
	} else {
		return ServerSpec{}, fmt.Sprintf("%s: %s is neither an IP address nor a host name", quote(s), quote(hostport))
	}
	known := "iburst, prefer, noselect, minpoll N, maxpoll N"
	if pool {
		known += ", maxsources N"
	}
	seen := map[string]bool{}
	for i := 1; i < len(f); i++ {
		o := f[i]
		if seen[o] {
			return ServerSpec{}, fmt.Sprintf("%s: option %s given twice", quote(s), o)
		}
		seen[o] = true
		switch o {
		case "iburst":
			spec.IBurst = true
		case "prefer":
			spec.Prefer = true
		case "noselect":
			spec.NoSelect = true
		case "minpoll", "maxpoll", "maxsources":
			if o == "maxsources" && !pool {
				return ServerSpec{}, fmt.Sprintf("%s: maxsources is an option of pools (client.pools), not of servers", quote(s))
			}
			lo, hi := minPollLog2, maxPollLog2
			if o == "maxsources" {
				lo, hi = 1, maxMaxSources
			}
			if i+1 >= len(f) {
				return ServerSpec{}, fmt.Sprintf("%s: %s needs a number, %d to %d", quote(s), o, lo, hi)
			}
			i++
			n, msg := parseInteger(f[i])
			if msg == "" && (n < lo || n > hi) {
				msg = "out of range"
			}
			if msg != "" {
				return ServerSpec{}, fmt.Sprintf("%s: %s %s: must be a number from %d to %d", quote(s), o, quote(f[i]), lo, hi)
			}
			switch o {
			case "minpoll":
				spec.MinPoll = int8(n)
			case "maxpoll":
				spec.MaxPoll = int8(n)
			default:
				spec.MaxSources = n
			}
		default:
			return ServerSpec{}, fmt.Sprintf("%s: unknown option %s (the options are %s)", quote(s), quote(o), known)
		}
	}
	if spec.MinPoll != 0 && spec.MaxPoll != 0 && spec.MinPoll > spec.MaxPoll {
		return ServerSpec{}, fmt.Sprintf("%s: minpoll %d is above maxpoll %d", quote(s), spec.MinPoll, spec.MaxPoll)
	}
	return spec, ""
}
