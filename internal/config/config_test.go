package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// netipComparable lets cmp compare the netip types, whose fields are
// unexported.
var netipComparable = cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{}, netip.Prefix{})

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v; want nil", err)
	}
	a, b := Default(), Default()
	a.Server.Listen[0] = netip.MustParseAddrPort("192.0.2.1:1")
	if b.Server.Listen[0] == a.Server.Listen[0] {
		t.Error("Default() results share their Listen slice")
	}
}

func TestParseEmptyIsDefault(t *testing.T) {
	for _, doc := range []string{"", "\n", "# comment\n", "\ufeff", "[server]\n[server.rate-limit]\n[server.access]\n[mirror]\n[log]\n"} {
		c, err := Parse("x.toml", []byte(doc))
		if err != nil {
			t.Fatalf("Parse(%q) = %v", doc, err)
		}
		if diff := cmp.Diff(Default(), c, netipComparable); diff != "" {
			t.Errorf("Parse(%q) differs from Default() (-want +got):\n%s", doc, diff)
		}
	}
}

func TestParseEveryKey(t *testing.T) {
	doc := `
[server]
listen = ["127.0.0.1:1123", "[::1]:1123", "[::ffff:192.0.2.7]:123", "[fe80::1%eth0]:123"]
workers = 4
local-stratum = 10

[server.rate-limit]
enabled = false
interval = "500ms"
burst = 0x20
leak = 1_000
action = "kod"
table-size = 1024
ipv4-prefix = 24
ipv6-prefix = 56

[server.access]
allow = ["192.0.2.0/24", "2001:db8::/32", "::ffff:198.51.100.0/120", "203.0.113.9", "::1"]
deny = ["192.0.2.128/25"]
deny-action = "kod"

[mirror]
upstream = "[::1]:11123"
poll = "4s"
unsync-after = "1m30s"

[privsep]
enabled = false
user = "_ntp-2"
filter = "log"
restart = false
keeper-step-file = "/var/lib/meridian-keeper/steps"

[log]
level = "debug"
`
	want := &Config{
		Server: Server{
			Listen: []netip.AddrPort{
				netip.MustParseAddrPort("127.0.0.1:1123"),
				netip.MustParseAddrPort("[::1]:1123"),
				netip.MustParseAddrPort("192.0.2.7:123"),
				netip.MustParseAddrPort("[fe80::1%eth0]:123"),
			},
			Workers:      4,
			LocalStratum: 10,
			RateLimit: RateLimit{
				Interval:   500 * time.Millisecond,
				Burst:      32,
				Leak:       1000,
				Action:     KoD,
				TableSize:  1024,
				IPv4Prefix: 24,
				IPv6Prefix: 56,
			},
			Access: Access{
				Allow: []netip.Prefix{
					netip.MustParsePrefix("192.0.2.0/24"),
					netip.MustParsePrefix("2001:db8::/32"),
					netip.MustParsePrefix("198.51.100.0/24"),
					netip.MustParsePrefix("203.0.113.9/32"),
					netip.MustParsePrefix("::1/128"),
				},
				Deny:       []netip.Prefix{netip.MustParsePrefix("192.0.2.128/25")},
				DenyAction: KoD,
			},
		},
		Client:  Default().Client,
		Mirror:  Mirror{Upstream: "[::1]:11123", Host: "::1", Port: 11123, Poll: 4 * time.Second, UnsyncAfter: 90 * time.Second},
		Privsep: Privsep{User: "_ntp-2", Filter: FilterLog, KeeperStepFile: "/var/lib/meridian-keeper/steps"},
		Log:     Log{Level: slog.LevelDebug},
	}
	got, err := Parse("x.toml", []byte(doc))
	if err != nil {
		t.Fatalf("Parse = %v", err)
	}
	if diff := cmp.Diff(want, got, netipComparable); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	if !got.Mirror.Enabled() || Default().Mirror.Enabled() {
		t.Error("Mirror.Enabled is wrong")
	}
}

// TestParseSpellings checks that the TOML ways of writing the same
// configuration (inline tables, dotted keys, quoted keys, literal
// strings, CRLF) give the same result.
func TestParseSpellings(t *testing.T) {
	docs := []string{
		"[server]\nworkers = 2\n[server.rate-limit]\nburst = 8\n[mirror]\nupstream = \"ntp.example.net:123\"\n",
		"server.workers = 2\nserver.rate-limit.burst = 8\nmirror.upstream = 'ntp.example.net:123'\n",
		"server = { workers = 2, rate-limit = { burst = 8 } }\nmirror = { upstream = \"ntp.example.net:123\" }\n",
		"[server]\nworkers = +2\nrate-limit.burst = 0o10\n[\"mirror\"]\n'upstream' = \"\"\"ntp.example.net:123\"\"\"\n",
		"[server]\r\nworkers = 2\r\n[server.rate-limit]\r\nburst = 0b1000\r\n[mirror]\r\nupstream = \"ntp.example.net:123\"\r\n",
		"[server.rate-limit]\nburst = 8\n[server]\nworkers = 2\n[mirror]\nupstream = \"ntp.example.net:123\" # chronyd\n",
	}
	want := Default()
	want.Server.Workers, want.Server.RateLimit.Burst = 2, 8
	want.Mirror.Upstream, want.Mirror.Host, want.Mirror.Port = "ntp.example.net:123", "ntp.example.net", 123
	for _, doc := range docs {
		got, err := Parse("x.toml", []byte(doc))
		if err != nil {
			t.Errorf("Parse(%q) = %v", doc, err)
			continue
		}
		if diff := cmp.Diff(want, got, netipComparable); diff != "" {
			t.Errorf("Parse(%q) (-want +got):\n%s", doc, diff)
		}
	}
}

func TestParseDoesNotAliasInput(t *testing.T) {
	data := []byte("[mirror]\nupstream = \"abc.example:123\"\n")
	c, err := Parse("x.toml", data)
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] = 'z'
	}
	if c.Mirror.Upstream != "abc.example:123" || c.Mirror.Host != "abc.example" {
		t.Errorf("after overwriting the input, Mirror = %+v", c.Mirror)
	}
}

// TestValidate covers what only a Config built in code can hold.
func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(c *Config)
		want   string
	}{
		{"mapped listen", func(c *Config) { c.Server.Listen = []netip.AddrPort{netip.MustParseAddrPort("[::ffff:127.0.0.1]:123")} },
			"server.listen: write the IPv4-mapped address [::ffff:127.0.0.1]:123 as 127.0.0.1:123"},
		{"zero listen", func(c *Config) { c.Server.Listen = []netip.AddrPort{{}} }, "server.listen: invalid address"},
		{"listen port 0", func(c *Config) { c.Server.Listen = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")} },
			"server.listen: 127.0.0.1:0: port must be between 1 and 65535, got 0"},
		{"nil listen", func(c *Config) { c.Server.Listen = nil }, "server.listen: must list at least one address"},
		{"zero prefix", func(c *Config) { c.Server.Access.Deny = []netip.Prefix{{}} }, "server.access.deny: invalid prefix"},
		{"mapped prefix", func(c *Config) { c.Server.Access.Allow = []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")} },
			"server.access.allow: write the IPv4-mapped prefix ::ffff:10.0.0.0/104 as 10.0.0.0/8"},
		{"action", func(c *Config) { c.Server.RateLimit.Action = 7 }, `server.rate-limit.action: must be "drop" or "kod", got action 7`},
		{"deny action", func(c *Config) { c.Server.Access.DenyAction = 2 }, `server.access.deny-action: must be "drop" or "kod", got action 2`},
		{"level", func(c *Config) { c.Log.Level = slog.LevelWarn + 1 }, `log.level: must be "debug", "info", "warn" or "error", got level 5`},
		{"upstream without host and port", func(c *Config) { c.Mirror.Upstream = "127.0.0.1:11123" },
			`mirror.upstream: Host "" and Port 0 do not match "127.0.0.1:11123"`},
		{"upstream syntax", func(c *Config) { c.Mirror.Upstream = "nonsense" },
			`mirror.upstream: "nonsense" is not host:port, like 127.0.0.1:11123, [::1]:11123 or ntp.example.net:123`},
		{"upstream not canonical", func(c *Config) { c.Mirror.Upstream, c.Mirror.Host, c.Mirror.Port = "[127.0.0.1]:123", "127.0.0.1", 123 },
			`mirror.upstream: "[127.0.0.1]:123": square brackets are only for IPv6 addresses`},
		{"host without upstream", func(c *Config) { c.Mirror.Port = 123 },
			`mirror.upstream: is empty, but Host is "" and Port 123`},
		{"upstream port 0", func(c *Config) { c.Mirror.Upstream, c.Mirror.Host = "127.0.0.1:0", "127.0.0.1" },
			`mirror.upstream: "127.0.0.1:0": port must be between 1 and 65535, got 0`},
		{"huge durations", func(c *Config) { c.Mirror.Poll, c.Mirror.UnsyncAfter = time.Duration(1<<63-1), -1 },
			"mirror.poll: must be between 1s and 16s, got 2562047h47m16.854775807s\n" +
				"mirror.unsync-after: must be between 2s (2 × mirror.poll) and 24h, got -1ns"},
	}
	for _, tt := range tests {
		c := Default()
		tt.modify(c)
		err := c.Validate()
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: Validate() = %v; want %s", tt.name, err, tt.want)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "/etc/m.toml", Line: 12, Key: "server.workers", Msg: "bad"}, "/etc/m.toml:12: server.workers: bad"},
		{Error{File: "/etc/m.toml", Key: "server.workers", Msg: "bad"}, "/etc/m.toml: server.workers: bad"},
		{Error{File: "/etc/m.toml", Line: 3, Msg: "bad"}, "/etc/m.toml:3: bad"},
		{Error{Line: 3, Key: "k", Msg: "bad"}, "line 3: k: bad"},
		{Error{Key: "k", Msg: "bad"}, "k: bad"},
		{Error{Msg: "bad"}, "bad"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%+v.Error() = %q; want %q", tt.e, got, tt.want)
		}
	}
}

func TestErrorsAreCollectedAndSorted(t *testing.T) {
	doc := "[mirror]\nunsync-after = \"1s\"\n[server]\nworkers = -1\nbogus = 1\n"
	_, err := Parse("m.toml", []byte(doc))
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse = %v; want *Errors", err)
	}
	var got []string
	for _, e := range errs.List {
		got = append(got, fmt.Sprintf("%s:%d:%s", e.File, e.Line, e.Key))
	}
	want := []string{"m.toml:2:mirror.unsync-after", "m.toml:4:server.workers", "m.toml:5:server.bogus"}
	if diff := cmp.Diff(want, got); diff != "" || errs.Truncated {
		t.Errorf("problems (-want +got):\n%s\ntruncated %v", diff, errs.Truncated)
	}
}

func TestTooManyErrors(t *testing.T) {
	doc := strings.Repeat("x = 1\n", 1000)
	_, err := Parse("m.toml", []byte(doc))
	var errs *Errors
	if !errors.As(err, &errs) || len(errs.List) != maxErrors || !errs.Truncated {
		t.Fatalf("Parse = %v; want %d problems and Truncated", err, maxErrors)
	}
	if errs.List[maxErrors-1].Line != maxErrors {
		t.Errorf("last problem on line %d; want %d", errs.List[maxErrors-1].Line, maxErrors)
	}
	if !strings.HasSuffix(err.Error(), "\nm.toml: too many errors") {
		t.Errorf("Error() does not end with too many errors:\n%s", err)
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[Action]string{Drop: "drop", KoD: "kod", 9: "invalid"} {
		if got := a.String(); got != want {
			t.Errorf("Action(%d).String() = %q; want %q", a, got, want)
		}
	}
}

func TestParseInteger(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"0", 0, true}, {"+0", 0, true}, {"-0", 0, true}, {"7", 7, true}, {"-7", -7, true},
		{"1_000", 1000, true}, {"0xdead_BEEF", 0xdeadbeef, true}, {"0o755", 0o755, true}, {"0b1010", 10, true},
		{"9223372036854775807", 1<<63 - 1, true}, {"-9223372036854775808", -1 << 63, true},
		{"9223372036854775808", 0, false}, {"01", 0, false}, {"1__0", 0, false}, {"_1", 0, false}, {"1_", 0, false},
		{"", 0, false}, {"+", 0, false}, {"0x", 0, false}, {"0xg", 0, false}, {"0o8", 0, false}, {"0b2", 0, false},
		{"+-1", 0, false}, {"1-2", 0, false}, {"-0x1", 0, false}, {"0X1", 0, false}, {"++1", 0, false},
	}
	for _, tt := range tests {
		got, msg := parseInteger(tt.in)
		if (msg == "") != tt.ok || got != tt.want {
			t.Errorf("parseInteger(%q) = %d, %q; want %d, ok %v", tt.in, got, msg, tt.want, tt.ok)
		}
	}
}

func TestValidHostname(t *testing.T) {
	for h, want := range map[string]bool{
		"localhost": true, "ntp.example.net": true, "ntp.example.net.": true, "a-b.c_d.example": true,
		"": false, ".": false, "a..b": false, "-a.example": false, "a-.example": false, "a b": false,
		"1.2.3": false, "10.0.0.256": false, "1.example": true, strings.Repeat("a", 64): false,
		strings.Repeat("a.", 127) + "a": false, strings.Repeat("a.", 126) + "a": true,
	} {
		if got := validHostname(h); got != want {
			t.Errorf("validHostname(%q) = %v; want %v", h, got, want)
		}
	}
}

func TestLevenshtein(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"burst", "burst", 0}, {"brust", "burst", 2}, {"bursts", "burst", 1},
		{"table_size", "table-size", 1}, {"lisen", "listen", 1}, {"Burst", "burst", 1},
		{"x", "burst", 3}, {"évent", "event", 1},
	}
	for _, tt := range tests {
		if got := levenshtein(tt.a, tt.b); got != tt.want {
			t.Errorf("levenshtein(%q, %q) = %d; want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestParseClient(t *testing.T) {
	doc := `
[client]
servers = ["192.0.2.1", "[2001:db8::1]:1123 iburst", "ntp.example.net iburst", "127.0.0.1:11123", "2001:db8::2 prefer minpoll 4 maxpoll 0x8 noselect"]
pools = ["pool.ntp.org iburst maxsources 6", "[2001:db8::9]:1123"]
clock = "none"
min-sources = 2
makestep = "1s"
makestep-limit = 0
panic = "0s"
step-budget = "0s"
step-file = "/var/lib/meridian/steps"
drift-file = "/var/lib/meridian/drift"
leap-file = "/usr/share/zoneinfo/leap-seconds.list"
`
	got, err := Parse("x.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := Client{
		Servers: []ServerSpec{{Host: "192.0.2.1", Port: 123}, {Host: "2001:db8::1", Port: 1123, IBurst: true},
			{Host: "ntp.example.net", Port: 123, IBurst: true}, {Host: "127.0.0.1", Port: 11123},
			{Host: "2001:db8::2", Port: 123, Prefer: true, NoSelect: true, MinPoll: 4, MaxPoll: 8}},
		Pools: []ServerSpec{{Host: "pool.ntp.org", Port: 123, IBurst: true, MaxSources: 6}, {Host: "2001:db8::9", Port: 1123}},
		Clock: ClockNone, MinSources: 2, MakeStep: time.Second, MakeStepLimit: 0, Panic: 0, StepFile: "/var/lib/meridian/steps",
		DriftFile: "/var/lib/meridian/drift", LeapFile: "/usr/share/zoneinfo/leap-seconds.list",
	}
	if diff := cmp.Diff(want, got.Client); diff != "" {
		t.Errorf("client (-want +got):\n%s", diff)
	}
	for _, spec := range append(got.Client.Servers, got.Client.Pools...) {
		again, msg := parseSourceSpec(spec.String(), spec.MaxSources != 0)
		if msg != "" || again != spec {
			t.Errorf("%+v: String() = %q, which parses to %+v, %q", spec, spec.String(), again, msg)
		}
	}
	if s := got.Client.Servers[4].String(); s != "[2001:db8::2]:123 prefer noselect minpoll 4 maxpoll 8" {
		t.Errorf("String() = %q", s)
	}
}
