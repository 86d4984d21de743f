package server

import (
	"hash/maphash"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/mono"
)

const sec = mono.Instant(time.Second)

func TestLimiterBurstAndInterval(t *testing.T) {
	l := newLimiter(LimitConfig{Interval: time.Second, Burst: 4, Leak: -1})
	a := netip.MustParseAddr("192.0.2.1")
	var got []Limit
	for range 6 {
		got = append(got, l.Check(0, a))
	}
	want := []Limit{LimitPass, LimitPass, LimitPass, LimitPass, LimitDrop, LimitDrop}
	if !equal(got, want) {
		t.Errorf("burst at t=0: %v; want %v", got, want)
	}
	if v := l.Check(sec, a); v != LimitPass {
		t.Errorf("after one interval: %v; want pass", v)
	}
	if v := l.Check(sec, a); v != LimitDrop {
		t.Errorf("second request in the same interval: %v; want drop", v)
	}
	// A client polling exactly at the interval is never limited.
	for i := range 100 {
		if v := l.Check(mono.Instant(i+2)*sec, a); v != LimitPass {
			t.Fatalf("steady request %d: %v", i, v)
		}
	}
	// After a long pause the full burst is back.
	for i := range 4 {
		if v := l.Check(1000*sec, a); v != LimitPass {
			t.Fatalf("burst request %d after a pause: %v", i, v)
		}
	}
}

func equal(a, b []Limit) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestLimiterFlood covers THREATS B3: a client sending 10 000 requests per
// second for 10 s gets about burst + 10 s / interval answers.
func TestLimiterFlood(t *testing.T) {
	l := newLimiter(LimitConfig{Interval: time.Second, Burst: 16, Leak: -1})
	a := netip.MustParseAddr("2001:db8::1")
	pass := 0
	for i := range 100_000 {
		if l.Check(mono.Instant(i)*mono.Instant(100*time.Microsecond), a) == LimitPass {
			pass++
		}
	}
	if pass < 16+9 || pass > 16+10 {
		t.Errorf("%d of 100000 requests passed in 10 s; want 16 + 10", pass)
	}
}

// TestLimiterGroups covers THREATS B4 and B5: the budget belongs to the
// address (the API has no port), IPv6 addresses share it per /64, IPv4
// addresses per configured prefix, and IPv4-mapped addresses are IPv4.
func TestLimiterGroups(t *testing.T) {
	tests := []struct {
		name       string
		cfg        LimitConfig
		a, b       string
		sameBudget bool
	}{
		{"same /64", LimitConfig{}, "2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true},
		{"other /64", LimitConfig{}, "2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"/56 grouping", LimitConfig{IPv6Prefix: 56}, "2001:db8:1:2::1", "2001:db8:1:3::1", true},
		{"IPv4 /32", LimitConfig{}, "192.0.2.1", "192.0.2.2", false},
		{"IPv4 /24", LimitConfig{IPv4Prefix: 24}, "192.0.2.1", "192.0.2.200", true},
		{"mapped is IPv4", LimitConfig{}, "192.0.2.1", "::ffff:192.0.2.1", true},
		{"IPv4 vs IPv6 zeros", LimitConfig{IPv4Prefix: 8, IPv6Prefix: 8}, "0.0.0.1", "::1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Interval, tt.cfg.Burst, tt.cfg.Leak = time.Hour, 3, -1
			l := newLimiter(tt.cfg)
			a, b := netip.MustParseAddr(tt.a), netip.MustParseAddr(tt.b)
			for range 3 {
				l.Check(0, a)
			}
			got := l.Check(0, b) == LimitDrop
			if got != tt.sameBudget {
				t.Errorf("after 3 requests from %s, %s limited = %v; want %v", a, b, got, tt.sameBudget)
			}
		})
	}
}

// TestLimiterLeak covers THREATS B6: a victim whose address is spoofed in a
// flood still gets about 1 in Leak of its requests answered.
func TestLimiterLeak(t *testing.T) {
	l := newLimiter(LimitConfig{Interval: time.Second, Burst: 1, Leak: 4})
	a := netip.MustParseAddr("192.0.2.1")
	l.Check(0, a)
	leaked := 0
	const n = 100_000
	for range n {
		switch l.Check(0, a) {
		case LimitLeak:
			leaked++
		case LimitPass:
			t.Fatal("passed over the limit")
		}
	}
	if frac := float64(leaked) / n; frac < 0.24 || frac > 0.26 {
		t.Errorf("leaked %d of %d (%.3f); want about 1/4", leaked, n, frac)
	}
}

// TestLimiterKoD covers THREATS B8: with KoD on, a limited client gets at
// most one kiss per interval and otherwise silence.
func TestLimiterKoD(t *testing.T) {
	l := newLimiter(LimitConfig{Interval: time.Second, Burst: 1, Leak: -1, KoD: true})
	a := netip.MustParseAddr("192.0.2.1")
	kisses := 0
	for i := range 10_000 { // 10 s at 1000 requests/s
		if l.Check(mono.Instant(i)*mono.Instant(time.Millisecond), a) == LimitKiss {
			kisses++
		}
	}
	if kisses < 9 || kisses > 10 {
		t.Errorf("%d kisses in 10 s; want one per second", kisses)
	}
}

// TestLimiterBounded covers THREATS B7: a million distinct clients do not
// grow the table or allocate, and a flooding client stays limited while
// they churn through it.
func TestLimiterBounded(t *testing.T) {
	l := newLimiter(LimitConfig{Interval: time.Second, Burst: 4, Leak: -1, TableSize: 256})
	size := len(l.table)
	flooder := netip.MustParseAddr("198.51.100.1")
	rng := rand.New(rand.NewPCG(3, 4))
	pass := 0
	var now mono.Instant
	allocs := testing.AllocsPerRun(10, func() {
		for range 100_000 {
			now += mono.Instant(10 * time.Microsecond)
			var b [16]byte
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			l.Check(now, netip.AddrFrom16(b))
			if now%mono.Instant(time.Millisecond) == 0 && l.Check(now, flooder) == LimitPass {
				pass++
			}
		}
	})
	if allocs != 0 || len(l.table) != size {
		t.Errorf("allocs %.1f, table %d entries (was %d)", allocs, len(l.table), size)
	}
	// 11 runs of 1 s each (AllocsPerRun warms up once): the flooder sends
	// 1000 requests per second and should get about 4 + 11 through.
	if pass > 4+11+5 {
		t.Errorf("flooder got %d answers in 11 s; want about 15", pass)
	}
}

// TestLimiterSeeded checks that the table layout depends on the seed, so an
// attacker cannot precompute colliding addresses.
func TestLimiterSeeded(t *testing.T) {
	a := NewLimiter(LimitConfig{TableSize: 1 << 16}, maphash.MakeSeed(), rand.New(rand.NewPCG(1, 1)))
	b := NewLimiter(LimitConfig{TableSize: 1 << 16}, maphash.MakeSeed(), rand.New(rand.NewPCG(1, 1)))
	same := 0
	for i := range 1000 {
		k := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).As16()
		if maphash.Comparable(a.seed, k)&a.mask == maphash.Comparable(b.seed, k)&b.mask {
			same++
		}
	}
	if same > 10 {
		t.Errorf("%d of 1000 addresses in the same bucket under two seeds", same)
	}
}

func TestRespondRateLimited(t *testing.T) {
	for _, tt := range []struct {
		kod  bool
		want Verdict
	}{{false, DropLimited}, {true, KissRate}} {
		r := NewResponder(Config{Limiter: newLimiter(LimitConfig{Interval: time.Hour, Burst: 1, Leak: -1, KoD: tt.kod})})
		req := request(4, 3)
		if _, v := respondOnce(t, r, synced, req); v != Answered {
			t.Fatalf("first request: %v", v)
		}
		if _, v := respondOnce(t, r, synced, req); v != tt.want {
			t.Errorf("kod=%v: second request %v; want %v", tt.kod, v, tt.want)
		}
	}
}
