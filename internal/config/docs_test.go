package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const docsPath = "../../docs/config.md"

// tagKeys walks the toml tags of t and returns the dotted keys of its
// leaves, in field order. Structs are tables, except the types that are
// values (durations, addresses, prefixes).
func tagKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for f := range t.Fields() {
		tag := f.Tag.Get("toml")
		if tag == "" || tag == "-" {
			continue
		}
		key := prefix + tag
		if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == t.PkgPath() {
			keys = append(keys, tagKeys(f.Type, key+".")...)
			continue
		}
		keys = append(keys, key)
	}
	return keys
}

func TestTagKeysSeeEveryField(t *testing.T) {
	keys := tagKeys(reflect.TypeFor[Config](), "")
	if len(keys) < 18 || !slices.Contains(keys, "server.rate-limit.ipv6-prefix") || !slices.Contains(keys, "log.level") {
		t.Fatalf("tagKeys found %v", keys)
	}
}

// TestSchemaMatchesTags keeps the decoder's key list and the struct tags
// in step: same keys, same order.
func TestSchemaMatchesTags(t *testing.T) {
	var schemaKeys []string
	for _, f := range schema(Default()) {
		schemaKeys = append(schemaKeys, f.key)
	}
	if diff := cmp.Diff(tagKeys(reflect.TypeFor[Config](), ""), schemaKeys); diff != "" {
		t.Errorf("schema keys differ from the toml tags of Config (-tags +schema):\n%s", diff)
	}
}

// docRow is one row of a key table in docs/config.md.
type docRow struct {
	key, typ, def, rng string
}

var docRowRE = regexp.MustCompile("^\\| `([a-z0-9.-]+)` \\|([^|]*)\\| `([^`]*)` \\|([^|]*)\\|")

func docRows(t *testing.T) []docRow {
	t.Helper()
	b, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	var rows []docRow
	for line := range strings.Lines(string(b)) {
		if m := docRowRE.FindStringSubmatch(line); m != nil {
			rows = append(rows, docRow{key: m[1], typ: strings.TrimSpace(m[2]), def: m[3], rng: strings.TrimSpace(m[4])})
		} else if strings.HasPrefix(line, "| `") {
			t.Errorf("docs/config.md: row not in the form | `key` | type | `default` | range | meaning |: %s", line)
		}
	}
	return rows
}

// TestDocsListEveryKey fails when a key of Config is missing from
// docs/config.md, or the page documents a key that does not exist.
func TestDocsListEveryKey(t *testing.T) {
	var documented []string
	for _, r := range docRows(t) {
		documented = append(documented, r.key)
	}
	if diff := cmp.Diff(tagKeys(reflect.TypeFor[Config](), ""), documented); diff != "" {
		t.Errorf("docs/config.md key tables differ from Config (-code +docs):\n%s", diff)
	}
}

// TestDocsDefaults parses the default column of every row, so that the
// page cannot claim a default the code does not have.
func TestDocsDefaults(t *testing.T) {
	for _, r := range docRows(t) {
		got, err := Parse(docsPath, []byte(docValue(r.key, r.def)))
		if err != nil {
			t.Errorf("default of %s: %v", r.key, err)
			continue
		}
		if diff := cmp.Diff(Default(), got, netipComparable); diff != "" {
			t.Errorf("docs/config.md says %s defaults to %s, but (-Default() +docs):\n%s", r.key, r.def, diff)
		}
	}
}

// TestDocsExamples parses every TOML block of docs/config.md; the first,
// the full example, is the defaults with mirror mode on.
func TestDocsExamples(t *testing.T) {
	b, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllSubmatch(b, -1)
	if len(blocks) < 2 {
		t.Fatalf("docs/config.md has %d TOML examples; want at least 2", len(blocks))
	}
	for i, m := range blocks {
		c, err := Parse(filepath.Base(docsPath), m[1])
		if err != nil {
			t.Errorf("example %d: %v", i+1, err)
			continue
		}
		if i == 0 {
			want := Default()
			want.Mirror.Upstream, want.Mirror.Host, want.Mirror.Port = "127.0.0.1:11123", "127.0.0.1", 11123
			if diff := cmp.Diff(want, c, netipComparable); diff != "" {
				t.Errorf("full example is not the defaults (-want +got):\n%s", diff)
			}
			for _, k := range tagKeys(reflect.TypeFor[Config](), "") {
				_, name := splitKey(k)
				if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` = `).Match(m[1]) {
					t.Errorf("full example does not set %s", k)
				}
			}
		}
	}
}

// rangeRE finds the interval "lo–hi" at the end of a range column ("1–1024",
// "0, or 2–1000000", "1s–16s").
var rangeRE = regexp.MustCompile(`(?:^|, or )([0-9a-z]+)–([0-9a-z]+)$`)

// TestDocsRanges checks the documented range of every integer and
// duration key against Parse: both ends are accepted, the values just
// outside them are not.
func TestDocsRanges(t *testing.T) {
	checked := 0
	for _, r := range docRows(t) {
		if r.typ != "integer" && r.typ != "duration" {
			continue
		}
		m := rangeRE.FindStringSubmatch(r.rng)
		if m == nil {
			if r.key != "mirror.unsync-after" { // relative to mirror.poll; see below
				t.Errorf("docs/config.md: %s: no range like 1–1024 in %q", r.key, r.rng)
			}
			continue
		}
		for _, v := range rangeValues(t, r.typ, m[1], m[2]) {
			if _, err := Parse(docsPath, []byte(docValue(r.key, v.text))); (err == nil) != v.ok {
				t.Errorf("docs/config.md gives %s the range %s, but %s = %s: %v", r.key, r.rng, r.key, v.text, err)
			}
		}
		checked++
	}
	if want := len(numericKeys) + len(durationKeys) - 1; checked != want {
		t.Errorf("checked the ranges of %d keys; want %d (every integer and duration key but mirror.unsync-after)", checked, want)
	}
	if !strings.Contains(docsText(t), "| 2 × `mirror.poll` to "+fmtDuration(maxUnsync)+" |") {
		t.Errorf("docs/config.md does not give mirror.unsync-after the range 2 × mirror.poll to %s", fmtDuration(maxUnsync))
	}
}

type rangeValue struct {
	text string // as written in TOML
	ok   bool   // whether it is in range
}

// rangeValues returns the ends of the range lo–hi of a key of type typ
// and the values just outside it.
func rangeValues(t *testing.T, typ, lo, hi string) []rangeValue {
	if typ == "integer" {
		l, errL := strconv.Atoi(lo)
		h, errH := strconv.Atoi(hi)
		if errL != nil || errH != nil {
			t.Fatalf("bad integer range %s–%s", lo, hi)
		}
		return []rangeValue{{lo, true}, {hi, true}, {strconv.Itoa(l - 1), false}, {strconv.Itoa(h + 1), false}}
	}
	l, errL := time.ParseDuration(lo)
	h, errH := time.ParseDuration(hi)
	if errL != nil || errH != nil {
		t.Fatalf("bad duration range %s–%s", lo, hi)
	}
	return []rangeValue{{`"` + lo + `"`, true}, {`"` + hi + `"`, true},
		{`"` + (l - 1).String() + `"`, false}, {`"` + (h + 1).String() + `"`, false}}
}

// docValue is a document that sets the dotted key to value.
func docValue(key, value string) string {
	table, name := splitKey(key)
	return "[" + table + "]\n" + name + " = " + value + "\n"
}

func docsText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDocsChrony checks the chrony.conf lines of docs/config.md against
// examples/mirror.toml: chronyd serves on the address and port that the
// example mirrors, serves that address only, and has no other directive —
// in particular no ratelimit.
func TestDocsChrony(t *testing.T) {
	blocks := regexp.MustCompile("(?s)```\n(.*?)```").FindAllStringSubmatch(docsText(t), -1)
	var conf string
	for _, b := range blocks {
		if regexp.MustCompile(`(?m)^bindaddress `).MatchString(b[1]) {
			conf = b[1]
		}
	}
	directives := make(map[string][]string)
	for line := range strings.Lines(conf) {
		if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(f[0], "#") {
			directives[f[0]] = append(directives[f[0]], strings.Join(f[1:], " "))
		}
	}
	c := loadExample(t, "mirror.toml")
	m := c.Mirror
	want := map[string][]string{"port": {strconv.Itoa(int(m.Port))}, "bindaddress": {m.Host}, "allow": {m.Host}}
	if diff := cmp.Diff(want, directives); diff != "" {
		t.Errorf("chrony.conf lines in docs/config.md do not serve only %s (-want +got):\n%s", m.Upstream, diff)
	}
	for _, ap := range c.Server.Listen {
		if ap.Port() == m.Port {
			t.Errorf("examples/mirror.toml listens on %s, the port chronyd serves on", ap)
		}
	}
}
