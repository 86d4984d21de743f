package config

import (
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2/unstable"
)

// field is one key of the schema: its dotted path, the TOML type it takes
// (for messages) and the function that stores a value of it into a Config.
type field struct {
	key    string
	want   string // "an integer", "a duration string", ...
	decode decodeFunc
}

// decodeFunc converts v, the value of key set on line, and stores it,
// reporting problems through d.
type decodeFunc func(d *decoder, key string, line int, v *unstable.Node)

// schema returns every key of the file, in the order of docs/config.md,
// with decoders that store into c. TestSchemaMatchesTags keeps it in step
// with the toml tags of Config.
func schema(c *Config) []field {
	s, rl, a, x, m, cl := &c.Server, &c.Server.RateLimit, &c.Server.Access, &c.Server.XDP, &c.Mirror, &c.Client
	return []field{
		{"server.listen", "an array of strings", addrPorts(&s.Listen)},
		{"server.workers", "an integer", integer(&s.Workers)},
		{"server.local-stratum", "an integer", integer(&s.LocalStratum)},
		{"server.rate-limit.enabled", "a boolean", boolean(&rl.Enabled)},
		{"server.rate-limit.interval", "a duration string", duration(&rl.Interval)},
		{"server.rate-limit.burst", "an integer", integer(&rl.Burst)},
		{"server.rate-limit.leak", "an integer", integer(&rl.Leak)},
		{"server.rate-limit.action", "a string", action(&rl.Action)},
		{"server.rate-limit.table-size", "an integer", integer(&rl.TableSize)},
		{"server.rate-limit.ipv4-prefix", "an integer", integer(&rl.IPv4Prefix)},
		{"server.rate-limit.ipv6-prefix", "an integer", integer(&rl.IPv6Prefix)},
		{"server.access.allow", "an array of strings", prefixes(&a.Allow)},
		{"server.access.deny", "an array of strings", prefixes(&a.Deny)},
		{"server.access.deny-action", "a string", action(&a.DenyAction)},
		{"server.xdp.interfaces", "an array of strings", each(&x.Interfaces, parseInterface)},
		{"server.xdp.mode", "a string", xdpMode(&x.Mode)},
		{"client.servers", "an array of strings", each(&cl.Servers, parseServerSpec)},
		{"client.pools", "an array of strings", each(&cl.Pools, parsePoolSpec)},
		{"client.clock", "a string", clockKind(&cl.Clock)},
		{"client.min-sources", "an integer", integer(&cl.MinSources)},
		{"client.makestep", "a duration string", duration(&cl.MakeStep)},
		{"client.makestep-limit", "an integer", integer(&cl.MakeStepLimit)},
		{"client.panic", "a duration string", duration(&cl.Panic)},
		{"client.step-budget", "a duration string", duration(&cl.StepBudget)},
		{"client.step-file", "a string", path(&cl.StepFile)},
		{"client.drift-file", "a string", path(&cl.DriftFile)},
		{"client.leap-file", "a string", path(&cl.LeapFile)},
		{"mirror.upstream", "a string", upstream(m)},
		{"mirror.poll", "a duration string", duration(&m.Poll)},
		{"mirror.unsync-after", "a duration string", duration(&m.UnsyncAfter)},
		{"control.socket", "a string", path(&c.Control.Socket)},
		{"privsep.enabled", "a boolean", boolean(&c.Privsep.Enabled)},
		{"privsep.user", "a string", userName(&c.Privsep.User)},
		{"privsep.filter", "a string", filterMode(&c.Privsep.Filter)},
		{"privsep.restart", "a boolean", boolean(&c.Privsep.Restart)},
		{"privsep.keeper-step-file", "a string", path(&c.Privsep.KeeperStepFile)},
		{"log.level", "a string", level(&c.Log.Level)},
	}
}

func integer(p *int) decodeFunc {
	return func(d *decoder, key string, line int, v *unstable.Node) {
		if v.Kind != unstable.Integer {
			d.errs.add(line, key, "must be an integer, got "+describe(v))
			return
		}
		n, msg := parseInteger(string(v.Data))
		if msg != "" {
			d.errs.add(line, key, msg)
			return
		}
		*p = n
	}
}

func boolean(p *bool) decodeFunc {
	return func(d *decoder, key string, line int, v *unstable.Node) {
		if v.Kind != unstable.Bool {
			d.errs.add(line, key, "must be true or false, got "+describe(v))
			return
		}
		*p = string(v.Data) == "true"
	}
}

// text returns the value of a string key, or reports that v is not one.
func text(d *decoder, key string, line int, v *unstable.Node, want string) (string, bool) {
	if v.Kind != unstable.String {
		d.errs.add(line, key, "must be "+want+", got "+describe(v))
		return "", false
	}
	return string(v.Data), true
}

func duration(p *time.Duration) decodeFunc {
	return func(d *decoder, key string, line int, v *unstable.Node) {
		s, ok := text(d, key, line, v, `a duration string like "2s"`)
		if !ok {
			return
		}
		t, msg := parseDuration(s)
		if msg != "" {
			d.errs.add(line, key, msg)
			return
		}
		*p = t
	}
}

func action(p *Action) decodeFunc {
	return func(d *decoder, key string, line int, v *unstable.Node) {
		const want = `"drop" or "kod"`
		s, ok := text(d, key, line, v, want)
		if !ok {
			return
		}
		switch s {
		case "drop":
			*p = Drop
		case "kod":
			*p = KoD
		default:
			d.errs.add(line, key, "must be "+want+", got "+quote(s))
		}
	}
}

func xdpMode(p *XDPMode) decodeFunc {
	return func(d *decoder, key string, line int, v *unstable.Node) {
		const want = `"auto", "native" or "generic"`
		s, ok := text(d, key, line, v, want)
		if !ok {
			return
		}
		for m, name := range xdpModes {
			if s == name {
				*p = XDPMode(m)
				return
			}
		}
		d.errs.add(line, key, "must be "+want+", got "+quote(s))
	}
}

func filterMode(p *FilterMode) decodeFunc {
	return func(d *decoder, key string, line int, v *unstable.Node) {
		const want = `"kill" or "log"`
		s, ok := text(d, key, line, v, want)
		if !ok {
			return
		}
		switch s {
		case "kill":
			*p = FilterKill
		case "log":
			*p = FilterLog
		default:
			d.errs.add(line, key, "must be "+want+", got "+quote(s))
		}
	}
}

// userName decodes a user name as useradd(8) takes them: a lower-case
// letter or underscore, then letters, digits, underscores and dashes, at
// most 32 characters.
func userName(p *string) decodeFunc {
	return func(d *decoder, key string, line int, v *unstable.Node) {
		s, ok := text(d, key, line, v, "a user name")
		if !ok {
			return
		}
		valid := s != "" && len(s) <= 32
		for i, r := range s {
			lower := r >= 'a' && r <= 'z' || r == '_'
			if !lower && (i == 0 || !(r >= '0' && r <= '9' || r == '-')) {
				valid = false
			}
		}
		if !valid {
			d.errs.add(line, key, "must be a user name (a-z or _ first, then a-z, 0-9, _ or -, at most 32), got "+quote(s))
			return
		}
		*p = s
	}
}

func clockKind(p *ClockKind) decodeFunc {
	return func(d *decoder, key string, line int, v *unstable.Node) {
		const want = `"kernel" or "none"`
		s, ok := text(d, key, line, v, want)
		if !ok {
			return
		}
		switch s {
		case "kernel":
			*p = ClockKernel
		case "none":
			*p = ClockNone
		default:
			d.errs.add(line, key, "must be "+want+", got "+quote(s))
		}
	}
}

// path decodes a file path: absolute, or empty for none.
func path(p *string) decodeFunc {
	return func(d *decoder, key string, line int, v *unstable.Node) {
		s, ok := text(d, key, line, v, "an absolute path")
		if !ok {
			return
		}
		if s != "" && !strings.HasPrefix(s, "/") {
			d.errs.add(line, key, "must be an absolute path, got "+quote(s))
			return
		}
		if strings.ContainsRune(s, 0) || len(s) > 4096 {
			d.errs.add(line, key, "is not a usable path")
			return
		}
		*p = s
	}
}

var levels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

func level(p *slog.Level) decodeFunc {
	return func(d *decoder, key string, line int, v *unstable.Node) {
		const want = `"debug", "info", "warn" or "error"`
		s, ok := text(d, key, line, v, want)
		if !ok {
			return
		}
		l, known := levels[s]
		if !known {
			d.errs.add(line, key, "must be "+want+", got "+quote(s))
			return
		}
		*p = l
	}
}

func upstream(m *Mirror) decodeFunc {
	return func(d *decoder, key string, line int, v *unstable.Node) {
		s, ok := text(d, key, line, v, `a string like "127.0.0.1:11123"`)
		if !ok {
			return
		}
		if s == "" {
			m.Upstream, m.Host, m.Port = "", "", 0
			return
		}
		host, port, msg := parseUpstream(s)
		if msg != "" {
			d.errs.add(line, key, msg)
			return
		}
		m.Upstream, m.Host, m.Port = s, host, port
	}
}

// stringArray returns the elements of an array of strings, with their lines
// (recorded for validation), or reports why v is not one.
func stringArray(d *decoder, key string, line int, v *unstable.Node) (elems []string, lines []int, ok bool) {
	if v.Kind != unstable.Array {
		d.errs.add(line, key, "must be an array of strings, got "+describe(v))
		return nil, nil, false
	}
	ok = true
	for it := v.Children(); it.Next(); {
		n := it.Node()
		if n.Kind == unstable.Comment {
			continue
		}
		at := d.nodeLine(n, line)
		if n.Kind != unstable.String {
			d.errs.add(at, key, "elements must be strings, got "+describe(n))
			ok = false
			continue
		}
		elems, lines = append(elems, string(n.Data)), append(lines, at)
	}
	return elems, lines, ok
}

// each decodes every element of an array of strings with parse. The array
// is stored only if every element is valid, so that one bad element does
// not also make the list look empty or short to validation.
func each[T any](p *[]T, parse func(string) (T, string)) decodeFunc {
	return func(d *decoder, key string, line int, v *unstable.Node) {
		elems, lines, ok := stringArray(d, key, line, v)
		out := make([]T, 0, len(elems))
		for i, s := range elems {
			x, msg := parse(s)
			if msg != "" {
				d.errs.add(lines[i], key, msg)
				ok = false
			}
			out = append(out, x)
		}
		if ok {
			*p = nil // an empty array is the empty list, as in Default
			if len(out) > 0 {
				*p = out
			}
			d.pos.elems[key] = lines
		}
	}
}

func addrPorts(p *[]netip.AddrPort) decodeFunc { return each(p, parseAddrPort) }

func prefixes(p *[]netip.Prefix) decodeFunc { return each(p, parsePrefix) }

// describe names the type and value of v for "got ..." in messages.
func describe(v *unstable.Node) string {
	switch v.Kind {
	case unstable.String:
		return "string " + quote(string(v.Data))
	case unstable.Integer:
		return "integer " + clip(string(v.Data))
	case unstable.Float:
		return "float " + clip(string(v.Data))
	case unstable.Bool:
		return "boolean " + string(v.Data)
	case unstable.Array:
		return "an array"
	case unstable.InlineTable:
		return "a table"
	case unstable.LocalDate:
		return "date " + clip(string(v.Data))
	case unstable.LocalTime:
		return "time " + clip(string(v.Data))
	}
	return "date-time " + clip(string(v.Data))
}

// clip shortens text from the file that goes into a message.
func clip(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	i := limit
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}

// quote quotes text from the file for a message, escaping control
// characters so that a crafted file cannot inject terminal sequences.
func quote(s string) string {
	c := clip(s)
	if c != s {
		return strconv.Quote(strings.TrimSuffix(c, "...")) + "..."
	}
	return strconv.Quote(s)
}

// keyString joins the segments of a key with dots, quoting any segment
// that is not a bare TOML key. Schema keys are all bare, so a quoted
// segment such as "rate-limit.burst" never matches one.
func keyString(segs []string) string {
	parts := make([]string, len(segs))
	for i, s := range segs {
		parts[i] = s
		if !bareKey(s) {
			parts[i] = quote(s)
		}
	}
	return strings.Join(parts, ".")
}

func bareKey(s string) bool {
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return s != ""
}
