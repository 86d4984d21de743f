package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pelletier/go-toml/v2"
)

// fuzzSeeds are added to both fuzz targets, besides testdata/fuzz.
var fuzzSeeds = []string{
	"",
	"[server]\nlisten = [\"127.0.0.1:1123\"]\nlocal-stratum = 10\n",
	"server = { rate-limit = { burst = 8 } }\nmirror.upstream = \"[::1]:11123\"\n",
	"[server.access]\nallow = [\"::ffff:10.0.0.0/104\", \"192.0.2.1\"]\n[log]\nlevel = \"warn\"\n",
}

// FuzzParse checks that Parse never panics, that an error is always a
// non-empty *Errors with at most maxErrors problems, and that a
// configuration it accepts is within the documented ranges — checked here
// independently of validate (THREATS A10, G1). It also checks that the
// nesting that precheck lets through is all the TOML scanner descends.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if depthProblem(data) == 0 && scannerDepth(data) > maxDepth {
			t.Fatalf("the TOML scanner nests %d deep where depthProblem counts at most %d", scannerDepth(data), maxDepth)
		}
		c, err := Parse("fuzz.toml", data)
		if err != nil {
			var errs *Errors
			if !errors.As(err, &errs) || len(errs.List) == 0 || len(errs.List) > maxErrors {
				t.Fatalf("Parse error %T %v is not an *Errors with 1 to %d problems", err, err, maxErrors)
			}
			if c != nil {
				t.Fatal("Parse returned a configuration and an error")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a configuration that Validate rejects: %v", err)
		}
		if msg := outOfRange(c); msg != "" {
			t.Fatalf("Parse accepted %s", msg)
		}
	})
}

// outOfRange restates the limits of docs/config.md without sharing code
// with validate, and describes the first one c breaks.
func outOfRange(c *Config) string {
	s, r, m := &c.Server, &c.Server.RateLimit, &c.Mirror
	switch {
	case len(s.Listen) < 1 || len(s.Listen) > 64:
		return "a listen list of the wrong length"
	case s.Workers < 0 || s.Workers > 1024 || s.LocalStratum < 0 || s.LocalStratum > 15:
		return "workers or local-stratum out of range"
	case r.Interval < time.Millisecond || r.Interval > time.Hour || r.Burst < 1 || r.Burst > 1024:
		return "interval or burst out of range"
	case r.Leak < 0 || r.Leak == 1 || r.Leak > 1000000 || r.TableSize < 64 || r.TableSize > 1<<24:
		return "leak or table-size out of range"
	case r.IPv4Prefix < 8 || r.IPv4Prefix > 32 || r.IPv6Prefix < 32 || r.IPv6Prefix > 128:
		return "a client prefix length out of range"
	case r.Action > KoD || s.Access.DenyAction > KoD:
		return "an invalid action"
	case m.Poll < time.Second || m.Poll > 16*time.Second || m.UnsyncAfter < 2*m.Poll || m.UnsyncAfter > 24*time.Hour:
		return "mirror durations out of range"
	case m.Upstream != "" && (m.Host == "" || m.Port == 0):
		return "upstream " + strconv.Quote(m.Upstream) + " without host or port"
	case m.Upstream != "" && m.Upstream != net.JoinHostPort(m.Host, strconv.Itoa(int(m.Port))):
		// The documented form: brackets only around IPv6, a decimal port
		// without leading zeros.
		return "upstream " + strconv.Quote(m.Upstream) + " not written as host:port"
	case m.Upstream == "" && (m.Host != "" || m.Port != 0):
		return "a host or port without an upstream"
	}
	for _, ap := range s.Listen {
		if !ap.Addr().IsValid() || ap.Port() == 0 || ap.Addr().Is4In6() {
			return "listen address " + ap.String()
		}
	}
	for _, p := range append(append([]netip.Prefix(nil), s.Access.Allow...), s.Access.Deny...) {
		if !p.IsValid() || p != p.Masked() || (p.Addr().Is4In6() && p.Bits() >= 96) {
			return "access prefix " + p.String()
		}
	}
	return ""
}

// FuzzParseMatchesTOML decodes every document that Parse accepts a second
// time, with go-toml's own decoder into a map: the same scanner, but its
// own rules for tables and keys and its own value conversions. Parse must
// accept only what that decoder accepts (no duplicate key or redefined
// table slips through), store exactly the values the map holds, and leave
// every key the document does not set at its default.
func FuzzParseMatchesTOML(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.toml", data)
		if err != nil {
			return
		}
		var doc map[string]any
		if err := toml.Unmarshal(bytes.TrimPrefix(data, []byte("\ufeff")), &doc); err != nil {
			t.Fatalf("Parse accepted a document that go-toml rejects: %v", err)
		}
		if msg := compareWithDoc(c, doc); msg != "" {
			t.Fatal(msg)
		}
	})
}

// compareWithDoc compares c with doc, a decoded TOML document, key by key,
// and describes the first difference.
func compareWithDoc(c *Config, doc map[string]any) string {
	leaves := make(map[string]any)
	flatten(doc, "", leaves)
	def := Default()
	for _, key := range tagKeys(reflect.TypeFor[Config](), "") {
		got := fieldByKey(c, key)
		v, set := leaves[key]
		delete(leaves, key)
		if !set && !cmp.Equal(got, fieldByKey(def, key), netipComparable) {
			return key + " is not set, but is " + fmtValue(got) + ", not its default"
		}
		if set && !sameValue(got, v) {
			return key + " = " + fmtValue(v) + " in the document, but Parse stored " + fmtValue(got)
		}
	}
	for key := range leaves {
		return "Parse accepted " + key + ", which is not a key of the schema"
	}
	return ""
}

// flatten stores the leaves of the table m under their dotted keys.
func flatten(m map[string]any, prefix string, leaves map[string]any) {
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			flatten(sub, prefix+k+".", leaves)
			continue
		}
		leaves[prefix+k] = v
	}
}

// fieldByKey returns the field of c whose toml tags spell the dotted key.
func fieldByKey(c *Config, key string) any {
	v := reflect.ValueOf(c).Elem()
	for seg := range strings.SplitSeq(key, ".") {
		for f, fv := range v.Fields() {
			if f.Tag.Get("toml") == seg {
				v = fv
				break
			}
		}
	}
	return v.Interface()
}

// sameValue reports whether the stored value got is what the document
// value v denotes, by the rules of docs/config.md.
func sameValue(got, v any) bool {
	s, _ := v.(string)
	switch g := got.(type) {
	case int:
		n, ok := v.(int64)
		return ok && n == int64(g)
	case bool:
		return v == g
	case string:
		return s == g
	case time.Duration:
		d, err := time.ParseDuration(s)
		return err == nil && d == g
	case Action:
		return s == g.String()
	case slog.Level:
		return strings.ToUpper(s) == g.String()
	case []netip.AddrPort:
		return sameElems(g, v, refAddrPort)
	case []netip.Prefix:
		return sameElems(g, v, refPrefix)
	}
	return false
}

// sameElems reports whether v is an array of strings that ref maps, one
// by one, to got.
func sameElems[T comparable](got []T, v any, ref func(string) (T, bool)) bool {
	arr, ok := v.([]any)
	if !ok || len(arr) != len(got) {
		return false
	}
	for i, e := range arr {
		s, _ := e.(string)
		if want, ok := ref(s); !ok || want != got[i] {
			return false
		}
	}
	return true
}

// refAddrPort is the documented meaning of a listen address.
func refAddrPort(s string) (netip.AddrPort, bool) {
	ap, err := netip.ParseAddrPort(s)
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), err == nil
}

// refPrefix is the documented meaning of an access list entry.
func refPrefix(s string) (netip.Prefix, bool) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), err == nil
	}
	p, err := netip.ParsePrefix(s)
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p, err == nil
}

func fmtValue(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}
