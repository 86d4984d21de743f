package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/errors.golden")

// goldenFile is the name the cases are parsed under, so that messages are
// the same on every machine.
const goldenFile = "meridian.toml"

type errorCase struct {
	name string
	toml string
}

// numericKeys are the integer keys with the table they belong to.
var numericKeys = []struct{ table, key string }{
	{"server", "workers"},
	{"server", "local-stratum"},
	{"server.rate-limit", "burst"},
	{"server.rate-limit", "leak"},
	{"server.rate-limit", "table-size"},
	{"server.rate-limit", "ipv4-prefix"},
	{"server.rate-limit", "ipv6-prefix"},
	{"client", "min-sources"},
	{"client", "makestep-limit"},
}

// durationKeys are the duration keys with the table they belong to.
var durationKeys = []struct{ table, key string }{
	{"server.rate-limit", "interval"},
	{"mirror", "poll"},
	{"mirror", "unsync-after"},
	{"client", "makestep"},
	{"client", "panic"},
	{"client", "step-budget"},
}

// numericCases tries every integer key with negative, zero, boundary,
// huge, overflowing, float, NaN, infinite and non-integer values
// (THREATS G1).
func numericCases() []errorCase {
	values := []string{
		"-1", "0", "1", "2", "1025", "9223372036854775807", "-9223372036854775808",
		"99999999999999999999", "0x7fffffffffffffff", "0xffffffffffffffff",
		"1.5", "1e3", "nan", "+inf", "-inf", `"16"`, "true", "[]", "{}", "1979-05-27",
		"1__0", "_1", "0b102", "0o18", "-0x1",
	}
	var cases []errorCase
	for _, k := range numericKeys {
		for _, v := range values {
			cases = append(cases, errorCase{
				name: fmt.Sprintf("%s.%s = %s", k.table, k.key, v),
				toml: fmt.Sprintf("[%s]\n%s = %s\n", k.table, k.key, v),
			})
		}
	}
	return cases
}

// durationCases tries every duration key with values out of range,
// negative, huge and malformed.
func durationCases() []errorCase {
	values := []string{
		`"-1s"`, `"0s"`, `"0"`, `"1ns"`, `"1ms"`, `"999ms"`, `"1s"`, `"16s"`, `"17s"`, `"1h"`, `"25h"`,
		`"1e400"`, `"1e400s"`, `"9999999999h"`, `"nan"`, `"inf"`, `"2 s"`, `""`, `"2"`,
		"2", "1.5", "nan", "inf", "true", `["2s"]`,
	}
	var cases []errorCase
	for _, k := range durationKeys {
		for _, v := range values {
			cases = append(cases, errorCase{
				name: fmt.Sprintf("%s.%s = %s", k.table, k.key, v),
				toml: fmt.Sprintf("[%s]\n%s = %s\n", k.table, k.key, v),
			})
		}
	}
	return cases
}

// errorCases are hand-written mistakes, one small document each.
var errorCases = []errorCase{
	{"empty file", ""},
	{"only comments", "# nothing here\n\n   # at all\n"},
	{"unknown top-level key", "listen = [\"127.0.0.1:123\"]\n"},
	{"unknown table typo", "[sever]\nworkers = 2\n"},
	{"unknown key typo", "[server.rate-limit]\nbrust = 4\n"},
	{"snake case", "[server.rate-limit]\ntable_size = 1024\n"},
	{"key in the wrong table", "[server]\nlevel = \"debug\"\n"},
	{"unknown key no suggestion", "[server]\nfrobnicate = 1\n"},
	{"unknown nested table", "[server.ratelimit]\nburst = 4\n"},
	{"unknown dotted key", "[server]\nrate-limit.brust = 4\n"},
	{"unknown dotted table", "[server]\nratelimit.burst = 4\n"},
	{"quoted key with a dot", "[server]\n\"rate-limit.burst\" = 4\n"},
	{"control characters in key", "[server]\n\"\\u001b[31mred\" = 4\n"},
	{"many unknown keys", "[server]\na = 1\nb = 2\nc = 3\n[log]\nlevl = \"debug\"\n"},
	{"duplicate key", "[server]\nworkers = 1\nworkers = 2\n"},
	{"duplicate table", "[server]\nworkers = 1\n\n[server]\nlocal-stratum = 3\n"},
	{"duplicate nested table", "[server.rate-limit]\nburst = 4\n[server.rate-limit]\nburst = 5\n"},
	{"header after dotted keys", "server.workers = 1\n[server]\nlocal-stratum = 2\n"},
	{"dotted keys into a header table", "[server.rate-limit]\nburst = 4\n[server]\nrate-limit.leak = 2\n"},
	{"header for an inline table", "[server]\nrate-limit = { burst = 4 }\n[server.rate-limit]\nleak = 2\n"},
	{"dotted key into an inline table", "[server]\naccess = { deny = [] }\naccess.allow = []\n"},
	{"duplicate key in inline table", "[server]\nrate-limit = { burst = 4, burst = 5 }\n"},
	{"array of tables", "[[server]]\nworkers = 1\n"},
	{"table used as a value", "server = 5\n"},
	{"value used as a table", "[server.workers]\nx = 1\n"},
	{"dotted value used as a table", "[server]\nworkers.x = 1\n"},
	{"implicit table then header", "[server.rate-limit]\nburst = 4\n[server]\nworkers = 2\n"},
	{"inline tables", "server = { workers = 2, rate-limit = { burst = 8 }, access = { allow = [\"192.0.2.0/24\"] } }\nlog = { level = \"warn\" }\n"},
	{"dotted keys at top level", "server.rate-limit.burst = 8\nmirror.poll = \"4s\"\n[server.access]\nallow = [\"10.0.0.0/8\"]\n"},
	{"syntax error missing value", "[server]\nworkers =\n"},
	{"syntax error unterminated string", "[mirror]\nupstream = \"127.0.0.1:11123\n"},
	{"syntax error after problems", "[server]\nworkers = -1\nlocal-stratum = 16\n[log\n"},
	{"syntax error unterminated array", "[server]\nlisten = [\"127.0.0.1:123\",\n"},
	{"invalid integer leading zero", "[server]\nworkers = 012\n"},
	{"invalid integer dash", "[server]\nworkers = 1-2\n"},
	{"nul byte", "[server]\nworkers = 1\x00\n"},
	{"invalid utf-8", "[server]\n# caf\xe9\nworkers = 1\n"},
	{"invalid utf-8 in string", "[log]\nlevel = \"\xff\"\n"},
	{"long line", "# " + strings.Repeat("x", 4095) + "\n"},
	{"nesting too deep", "[server]\nlisten = " + strings.Repeat("[", maxDepth+1) + "\n"},
	{"brackets in strings and comments", "[server] # [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\nlisten = ['[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[', \"\"\"\n[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"\"\"]\n"},
	{"line at the limit", "# " + strings.Repeat("x", 4094) + "\n"},
	{"byte order mark", "\ufeff[server]\nworkers = 2\n"},
	{"crlf line endings", "[server]\r\nworkers = 2\r\nlocal-stratum = 99\r\n"},
	{"too many errors", strings.Repeat("[server]\nworkers = -1\n", 30)},
	{"too many validation errors", "[server.rate-limit]\n" + strings.Repeat("\n", 5) +
		"interval = \"0s\"\nburst = 0\nleak = 1\ntable-size = 1\nipv4-prefix = 0\nipv6-prefix = 0\n" +
		"[server]\nworkers = -1\nlocal-stratum = -1\n" +
		"listen = [\"0.0.0.0:0\", \"0.0.0.0:0\", \"127.0.0.1:1\", \"127.0.0.1:1\"]\n" +
		"[server.access]\nallow = [\"10.0.0.1/8\", \"10.0.0.2/8\", \"10.0.0.3/8\", \"10.0.0.4/8\", \"10.0.0.5/8\", \"10.0.0.6/8\", \"10.0.0.7/8\", \"10.0.0.8/8\", \"10.0.0.9/8\", \"10.0.0.10/8\", \"10.0.0.11/8\"]\n"},

	// server.listen
	{"listen empty", "[server]\nlisten = []\n"},
	{"listen host name", "[server]\nlisten = [\"localhost:123\"]\n"},
	{"listen no port", "[server]\nlisten = [\"127.0.0.1\", \"::1\"]\n"},
	{"listen unbracketed ipv6", "[server]\nlisten = [\"::1:123\"]\n"},
	{"listen bracketed ipv4", "[server]\nlisten = [\"[127.0.0.1]:123\"]\n"},
	{"listen port 0", "[server]\nlisten = [\"127.0.0.1:0\"]\n"},
	{"listen port too large", "[server]\nlisten = [\"127.0.0.1:65536\", \"[::1]:99999999999999999999\"]\n"},
	{"listen port negative", "[server]\nlisten = [\"127.0.0.1:-1\"]\n"},
	{"listen port name", "[server]\nlisten = [\"127.0.0.1:ntp\"]\n"},
	{"listen duplicates", "[server]\nlisten = [\n  \"127.0.0.1:123\",\n  \"[::1]:123\",\n  \"127.0.0.1:123\",\n  \"[::ffff:127.0.0.1]:123\",\n]\n"},
	{"listen not strings", "[server]\nlisten = [\"127.0.0.1:123\", 123, true]\n"},
	{"listen a string", "[server]\nlisten = \"127.0.0.1:123\"\n"},
	{"listen too many", "[server]\nlisten = [" + manyAddrs(65) + "]\n"},
	{"listen zone", "[server]\nlisten = [\"[fe80::1%eth0]:123\"]\n"},
	{"listen port leading zeros", "[server]\nlisten = [\"127.0.0.1:0123\", \"[::1]:00\", \"[::1]:0\"]\n"},

	// server.rate-limit
	{"rate-limit enabled string", "[server.rate-limit]\nenabled = \"yes\"\n"},
	{"rate-limit enabled integer", "[server.rate-limit]\nenabled = 1\n"},
	{"rate-limit action", "[server.rate-limit]\naction = \"ignore\"\n"},
	{"rate-limit action case", "[server.rate-limit]\naction = \"KoD\"\n"},
	{"rate-limit action integer", "[server.rate-limit]\naction = 1\n"},
	{"rate-limit disabled is still checked", "[server.rate-limit]\nenabled = false\nburst = 0\n"},

	// server.access
	{"access host bits", "[server.access]\nallow = [\"192.0.2.1/24\", \"2001:db8::1/32\"]\n"},
	{"access bad syntax", "[server.access]\ndeny = [\"192.0.2.0/33\", \"2001:db8::/129\", \"example.net/24\", \"192.0.2.0/024\", \"192.0.2.0/\", \"\", \"fe80::%eth0/64\"]\n"},
	{"access bare addresses", "[server.access]\nallow = [\"192.0.2.1\", \"2001:db8::1\"]\n"},
	{"access mapped", "[server.access]\nallow = [\"::ffff:192.0.2.0/120\"]\ndeny = [\"192.0.2.0/24\"]\n"},
	{"access duplicates", "[server.access]\ndeny = [\"10.0.0.0/8\", \"10.0.0.0/8\"]\n"},
	{"access both lists", "[server.access]\nallow = [\"10.0.0.0/8\", \"0.0.0.0/0\"]\ndeny = [\"10.0.0.0/8\", \"::/0\"]\n"},
	{"access deny-action", "[server.access]\ndeny-action = \"reject\"\n"},
	{"access not an array", "[server.access]\nallow = \"10.0.0.0/8\"\n"},

	// server.xdp
	{"xdp interface names", "[server.xdp]\ninterfaces = [\"\", \"eth0:1\", \"a/b\", \"..\", \"sixteen-bytes-xx\", \"tab\\tname\", \"\u00e9th0\"]\n"},
	{"xdp interface duplicates", "[server.xdp]\ninterfaces = [\"eth0\", \"lo\", \"eth0\"]\n"},
	{"xdp interfaces a string", "[server.xdp]\ninterfaces = \"eth0\"\n"},
	{"xdp mode", "[server.xdp]\nmode = \"skb\"\n"},

	// client
	{"client servers", "[client]\nservers = [\"\", \"bad host!\", \"192.0.2.1 prefer\", \"192.0.2.1:0\", \"[fe80::1%eth0]:123\", \"192.0.2.1\", \"192.0.2.1:123\"]\n"},
	{"client server options", "[client]\nservers = [\"192.0.2.1 minpoll\", \"192.0.2.2 minpoll 2\", \"192.0.2.3 maxpoll 18\", \"192.0.2.4 minpoll 9 maxpoll 8\", \"192.0.2.5 maxpoll x\", \"192.0.2.6 iburst iburst\", \"192.0.2.7 maxsources 4\", \"192.0.2.8 burst\"]\n"},
	{"client pools", "[client]\npools = [\"pool.ntp.org maxsources 0\", \"pool.ntp.org maxsources 17\", \"pool.ntp.org iburst\", \"pool.ntp.org:123\", \"bad pool!\", \"\"]\nservers = [\"pool.ntp.org\"]\n"},
	{"client duplicate sources", "[client]\npools = [\"pool.ntp.org\", \"pool.ntp.org:123 iburst\"]\nservers = [\"pool.ntp.org\", \"192.0.2.1 prefer noselect minpoll 4 maxpoll 4\"]\n"},
	{"privsep values", "[privsep]\nenabled = 1\nuser = \"Root\"\nfilter = \"trap\"\nrestart = \"yes\"\nkeeper-step-file = \"steps\"\n"},
	{"privsep user", "[privsep]\nuser = \"\"\n"},
	{"client pools many", "[client]\npools = [\"a.example\", \"b.example\", \"c.example\", \"d.example\", \"e.example\", \"f.example\", \"g.example\", \"h.example\", \"i.example\"]\n"},
	{"client pool and mirror", "[client]\npools = [\"pool.ntp.org\"]\n[mirror]\nupstream = \"127.0.0.1:11123\"\n"},
	{"client clock", "[client]\nclock = \"adjtimex\"\n"},
	{"client paths", "[client]\ndrift-file = \"relative/drift\"\nleap-file = 7\n"},
	{"client and mirror", "[client]\nservers = [\"192.0.2.1\"]\n[mirror]\nupstream = \"127.0.0.1:11123\"\n"},

	// mirror
	{"mirror upstream host name", "[mirror]\nupstream = \"ntp.example.net:123\"\n"},
	{"mirror upstream no port", "[mirror]\nupstream = \"127.0.0.1\"\n"},
	{"mirror upstream port 0", "[mirror]\nupstream = \"127.0.0.1:0\"\n"},
	{"mirror upstream port name", "[mirror]\nupstream = \"127.0.0.1:ntp\"\n"},
	{"mirror upstream port huge", "[mirror]\nupstream = \"[::1]:65536\"\n"},
	{"mirror upstream bad host", "[mirror]\nupstream = \"-bad-.example:123\"\n"},
	{"mirror upstream numeric host", "[mirror]\nupstream = \"127.0.0.256:123\"\n"},
	{"mirror upstream empty host", "[mirror]\nupstream = \":123\"\n"},
	{"mirror upstream integer", "[mirror]\nupstream = 11123\n"},
	{"mirror upstream port leading zeros", "[mirror] \nupstream=\"0A0:00001\""},
	{"mirror upstream bracketed ipv4", "[mirror]\nupstream = \"[127.0.0.1]:11123\"\n"},
	{"mirror upstream bracketed host name", "[mirror]\nupstream = \"[ntp.example.net]:123\"\n"},
	{"mirror upstream zone", "[mirror]\nupstream = \"[fe80::1%eth0]:123\"\n"},
	{"mirror unsync-after below 2 polls", "[mirror]\npoll = \"4s\"\nunsync-after = \"7s\"\n"},
	{"mirror unsync-after with bad poll", "[mirror]\npoll = \"1m\"\nunsync-after = \"1s\"\n"},

	// log
	{"log level", "[log]\nlevel = \"verbose\"\n"},
	{"log level case", "[log]\nlevel = \"INFO\"\n"},
	{"log level integer", "[log]\nlevel = 4\n"},
}

func manyAddrs(n int) string {
	var addrs []string
	for i := range n {
		addrs = append(addrs, fmt.Sprintf("%q", fmt.Sprintf("127.0.0.1:%d", 1000+i)))
	}
	return strings.Join(addrs, ", ")
}

// TestErrorsGolden parses each case and compares the messages with
// testdata/errors.golden; run with -update to rewrite it.
func TestErrorsGolden(t *testing.T) {
	cases := append(append(errorCases, numericCases()...), durationCases()...)
	var out bytes.Buffer
	for _, tc := range cases {
		_, err := Parse(goldenFile, []byte(tc.toml))
		fmt.Fprintf(&out, "### %s\n%s\n", tc.name, input(tc.toml))
		checkTyped(t, tc.name, err)
		out.WriteString(result(err))
	}
	loadGolden(t, &out)
	compareGolden(t, "errors.golden", out.Bytes())
}

// input renders a case's document for a golden file: quoted, so that
// control bytes and invalid UTF-8 stay visible, or only its size when long.
func input(doc string) string {
	if len(doc) > 200 {
		return fmt.Sprintf("input: %d bytes", len(doc))
	}
	return "input: " + strconv.Quote(doc)
}

// result renders the outcome of Parse or Load for a golden file.
func result(err error) string {
	if err == nil {
		return "ok\n\n"
	}
	return err.Error() + "\n\n"
}

// checkTyped checks that a Parse error is an *Errors whose problems carry
// the file name and a key or a line.
func checkTyped(t *testing.T, name string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var errs *Errors
	if !errors.As(err, &errs) || len(errs.List) == 0 {
		t.Errorf("%s: error %T is not a non-empty *Errors", name, err)
		return
	}
	for _, e := range errs.List {
		if e.File != goldenFile || (e.Line == 0 && e.Key == "" && !strings.Contains(e.Msg, "1 MiB")) {
			t.Errorf("%s: problem %+v lacks a file, line or key", name, e)
		}
	}
	var one *Error
	if !errors.As(err, &one) || one != errs.List[0] {
		t.Errorf("%s: errors.As(*Error) = %v; want the first problem", name, one)
	}
}

func compareGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got; go test -update rewrites it):\n%s", path, diff)
	}
}

// loadCase prepares a file in dir and returns the path to Load.
type loadCase struct {
	name  string
	setup func(t *testing.T, dir string) string
}

// loadCases cover the checks Load makes on the file itself (THREATS G2,
// G3): its type, its mode, symbolic links and its size.
var loadCases = []loadCase{
	{"load: mode 0600", func(t *testing.T, dir string) string {
		return writeFile(t, dir, "ok.toml", "[log]\nlevel = \"debug\"\n", 0o600)
	}},
	{"load: no path", func(t *testing.T, dir string) string { return "" }},
	{"load: missing file", func(t *testing.T, dir string) string { return filepath.Join(dir, "missing.toml") }},
	{"load: directory", func(t *testing.T, dir string) string { return dir }},
	{"load: device", func(t *testing.T, dir string) string { return os.DevNull }},
	{"load: world-writable", func(t *testing.T, dir string) string {
		return writeFile(t, dir, "open.toml", "", 0o666)
	}},
	{"load: world-writable with an error inside", func(t *testing.T, dir string) string {
		return writeFile(t, dir, "open.toml", "[server]\nworkers = -1\n", 0o646)
	}},
	{"load: group-writable", func(t *testing.T, dir string) string {
		return writeFile(t, dir, "group.toml", "", 0o664)
	}},
	{"load: symbolic link", func(t *testing.T, dir string) string {
		return symlink(t, writeFile(t, dir, "real.toml", "", 0o644), filepath.Join(dir, "link.toml"))
	}},
	{"load: symbolic link to a world-writable file", func(t *testing.T, dir string) string {
		return symlink(t, writeFile(t, dir, "real.toml", "", 0o666), filepath.Join(dir, "link.toml"))
	}},
	{"load: chain of symbolic links", func(t *testing.T, dir string) string {
		real := writeFile(t, dir, "real.toml", "", 0o644)
		return symlink(t, symlink(t, real, filepath.Join(dir, "a.toml")), filepath.Join(dir, "b.toml"))
	}},
	{"load: dangling symbolic link", func(t *testing.T, dir string) string {
		return symlink(t, filepath.Join(dir, "gone.toml"), filepath.Join(dir, "link.toml"))
	}},
	{"load: symbolic link loop", func(t *testing.T, dir string) string {
		symlink(t, filepath.Join(dir, "b.toml"), filepath.Join(dir, "a.toml"))
		return symlink(t, filepath.Join(dir, "a.toml"), filepath.Join(dir, "b.toml"))
	}},
	{"load: larger than 1 MiB", func(t *testing.T, dir string) string {
		line := "#" + strings.Repeat("x", 1022) + "\n"
		return writeFile(t, dir, "big.toml", strings.Repeat(line, 1024)+"\n", 0o644)
	}},
	{"load: exactly 1 MiB", func(t *testing.T, dir string) string {
		line := "#" + strings.Repeat("x", 1022) + "\n"
		return writeFile(t, dir, "big.toml", strings.Repeat(line, 1024), 0o644)
	}},
	{"load: errors name the path", func(t *testing.T, dir string) string {
		return writeFile(t, dir, "bad.toml", "[server.rate-limit]\nburst = 0\n", 0o644)
	}},
}

func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	// Chmod after writing: the umask applies to WriteFile's mode only.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func symlink(t *testing.T, target, link string) string {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	return link
}

// loadGolden runs the load cases, each in a new directory that the output
// calls $DIR.
func loadGolden(t *testing.T, out *bytes.Buffer) {
	for _, tc := range loadCases {
		dir := t.TempDir()
		path := tc.setup(t, dir)
		_, warnings, err := Load(path)
		var text strings.Builder
		for _, w := range warnings {
			fmt.Fprintf(&text, "warning: %s\n", w)
		}
		text.WriteString(result(err))
		// EvalSymlinks may resolve dir itself (a symlinked /tmp).
		real, _ := filepath.EvalSymlinks(dir)
		s := strings.ReplaceAll(text.String(), real, "$DIR")
		fmt.Fprintf(out, "### %s\n%s", tc.name, strings.ReplaceAll(s, dir, "$DIR"))
	}
}
