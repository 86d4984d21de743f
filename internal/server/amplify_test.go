package server

import (
	"net/netip"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/mono"
	"github.com/meridian-ntp/meridian/internal/ntp"
)

// TestAmplification covers THREATS B1, B2 and B8 at the responder: for every
// request shape, under every policy, the bytes sent back never exceed the
// bytes received. It logs the largest ratio seen per shape.
func TestAmplification(t *testing.T) {
	field := func(typ uint16, n int) []byte {
		b := make([]byte, ntp.ExtLen(n))
		if _, err := ntp.PutExt(b, typ, make([]byte, n)); err != nil {
			t.Fatal(err)
		}
		return b
	}
	join := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	uid, cookie, placeholder := field(0x0104, 32), field(0x0204, 100), field(0x0304, 100)
	mac := append([]byte{0, 0, 0, 1}, make([]byte, 20)...)
	shapes := map[string][]byte{
		"v1":                       request(1, ntp.ModeClient),
		"v2":                       request(2, ntp.ModeClient),
		"v3":                       request(3, ntp.ModeClient),
		"v4":                       request(4, ntp.ModeClient),
		"v4 unknown field":         request(4, ntp.ModeClient, field(0xABCD, 24)...),
		"v4 MAC":                   request(4, ntp.ModeClient, mac...),
		"v4 field and MAC":         request(4, ntp.ModeClient, join(field(0xABCD, 24), mac)...),
		"NTS-like, 0 placeholder":  request(4, ntp.ModeClient, join(uid, cookie, field(0x0404, 40))...),
		"NTS-like, 3 placeholders": request(4, ntp.ModeClient, join(uid, cookie, placeholder, placeholder, placeholder, field(0x0404, 40))...),
		"64 KiB of fields":         request(4, ntp.ModeClient, field(0xABCD, 65000)...),
		"malformed fields":         request(4, ntp.ModeClient, 0, 1, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12),
		"short":                    request(4, ntp.ModeClient)[:40],
		"mode 6":                   request(2, ntp.ModeControl),
		"mode 7 monlist":           request(2, ntp.ModePrivate, make([]byte, 144)...),
		"version 5":                request(5, ntp.ModeClient),
	}
	deny := NewACL(nil, prefixes("0.0.0.0/0", "::/0"))
	policies := map[string]func() Config{
		"open": func() Config { return Config{} },
		"rate kod": func() Config {
			return Config{Limiter: newLimiter(LimitConfig{Interval: time.Hour, Burst: 1, KoD: true})}
		},
		"rate drop": func() Config { return Config{Limiter: newLimiter(LimitConfig{Interval: time.Hour, Burst: 1})} },
		"deny kod":  func() Config { return Config{ACL: deny, DenyKoD: true} },
		"deny kod+rate": func() Config {
			return Config{ACL: deny, DenyKoD: true, Limiter: newLimiter(LimitConfig{Interval: time.Hour, Burst: 1, KoD: true})}
		},
	}
	from := netip.MustParseAddr("203.0.113.5")
	dst := make([]byte, 70000)
	for pname, policy := range policies {
		for sname, req := range shapes {
			r := NewResponder(policy())
			in, out := 0, 0
			for i := range 50 {
				n, _ := r.Respond(mono.Instant(i)*mono.Instant(time.Millisecond), synced, from, rxTime, req, dst)
				in += len(req)
				out += n
				if n > len(req) {
					t.Fatalf("%s, %s: %d-byte response to a %d-byte request", pname, sname, n, len(req))
				}
			}
			ratio := float64(out) / float64(in)
			t.Logf("%-14s %-26s in %7d out %6d ratio %.3f", pname, sname, in, out, ratio)
			if ratio > 1 {
				t.Errorf("%s, %s: amplification %.3f", pname, sname, ratio)
			}
		}
	}
}
