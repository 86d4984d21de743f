package ntp

import (
	"math"
	"testing"
	"time"
)

func date(y int, m time.Month, d, hh, mm, ss, ns int) time.Time {
	return time.Date(y, m, d, hh, mm, ss, ns, time.UTC)
}

func TestTimeFromKnownValues(t *testing.T) {
	tests := []struct {
		in   time.Time
		want Time
	}{
		{date(1900, 1, 1, 0, 0, 0, 0), 0},
		{date(1970, 1, 1, 0, 0, 0, 0), 2208988800 << 32},
		{date(1970, 1, 1, 0, 0, 0, 500_000_000), 2208988800<<32 | 1<<31},
		{date(2036, 2, 7, 6, 28, 15, 0), 0xFFFFFFFF << 32},
		{date(2036, 2, 7, 6, 28, 16, 0), 0}, // era 1 begins
		{date(2036, 2, 7, 6, 28, 17, 0), 1 << 32},
		{date(2106, 2, 7, 6, 28, 16, 0), 2208988800 << 32}, // 1970 + 2^32 s, era 1
		{date(1899, 12, 31, 23, 59, 59, 0), 0xFFFFFFFF << 32},
	}
	for _, tt := range tests {
		if got := TimeFrom(tt.in); got != tt.want {
			t.Errorf("TimeFrom(%v) = %#x; want %#x", tt.in, uint64(got), uint64(tt.want))
		}
	}
}

// TestResolveAcrossEras checks that every instant from 1900 to 2184 comes
// back exactly, to the nanosecond, from references anywhere within 68 years.
func TestResolveAcrossEras(t *testing.T) {
	start := date(1900, 1, 1, 0, 0, 0, 0)
	end := date(2184, 12, 31, 23, 59, 59, 999_999_999)
	span := end.Sub(start) // exceeds MaxInt64 ns? no: 285 years < 292
	const steps = 20011    // prime: lands on assorted fractions
	offsets := []time.Duration{0, time.Nanosecond, -time.Hour,
		68 * 365 * 24 * time.Hour, -68 * 365 * 24 * time.Hour, 40 * 365 * 24 * time.Hour}
	for i := 0; i <= steps; i++ {
		in := start.Add(time.Duration(float64(span) * float64(i) / steps)).Add(time.Duration(i%1000) * 999_983)
		if in.After(end) {
			in = end
		}
		ts := TimeFrom(in)
		for _, off := range offsets {
			ref := in.Add(off)
			if got := ts.Resolve(ref); !got.Equal(in) {
				t.Fatalf("TimeFrom(%v).Resolve(%v) = %v; want %v", in, ref, got, in)
			}
		}
	}
}

func TestResolveEraBoundaries(t *testing.T) {
	for _, in := range []time.Time{
		date(1900, 1, 1, 0, 0, 0, 0),
		date(1968, 1, 20, 3, 14, 8, 0),               // era 0 midpoint
		date(2036, 2, 7, 6, 28, 15, 999_999_999),     // last ns of era 0
		date(2036, 2, 7, 6, 28, 16, 0),               // first instant of era 1
		date(2038, 1, 19, 3, 14, 7, 0),               // 32-bit time_t limit
		date(2038, 1, 19, 3, 14, 8, 0),               // one second after it
		date(2106, 2, 7, 6, 28, 15, 0),               // 32-bit unsigned time_t limit
		date(2172, 3, 16, 9, 42, 24, 0),              // era 1 midpoint
		date(2184, 12, 31, 23, 59, 59, 999_999_999),  // end of the required range
		date(2036, 2, 7, 6, 28, 15, 999_999_999+0*1), // fraction all ones after rounding
	} {
		for _, off := range []time.Duration{-time.Second, 0, time.Second, 50 * 365 * 24 * time.Hour} {
			if got := TimeFrom(in).Resolve(in.Add(off)); !got.Equal(in) {
				t.Errorf("TimeFrom(%v).Resolve(+%v) = %v", in, off, got)
			}
		}
	}
}

func TestResolveAllOnesFraction(t *testing.T) {
	// The largest fraction rounds up into the next second.
	ts := Time(5<<32 | 0xFFFFFFFF)
	got := ts.Resolve(date(1900, 1, 1, 0, 0, 0, 0))
	if want := date(1900, 1, 1, 0, 0, 6, 0); !got.Equal(want) {
		t.Errorf("Resolve(%#x) = %v; want %v", uint64(ts), got, want)
	}
	// The all-ones timestamp (A8) resolves near either era boundary.
	all := Time(math.MaxUint64)
	if got := all.Resolve(date(2036, 2, 7, 6, 28, 16, 0)); !got.Equal(date(2036, 2, 7, 6, 28, 16, 0)) {
		t.Errorf("all-ones resolved to %v", got)
	}
}

func TestSubAndAdd(t *testing.T) {
	tests := []struct {
		a, b time.Time
	}{
		{date(2020, 1, 1, 0, 0, 0, 0), date(2020, 1, 1, 0, 0, 0, 1)},
		{date(2036, 2, 7, 6, 28, 16, 250), date(2036, 2, 7, 6, 28, 15, 999_999_000)}, // across the era
		{date(2000, 1, 1, 0, 0, 0, 0), date(2060, 1, 1, 0, 0, 0, 123_456_789)},
		{date(2100, 5, 5, 5, 5, 5, 5), date(2099, 5, 5, 5, 5, 5, 999_999_999)},
	}
	for _, tt := range tests {
		want := tt.a.Sub(tt.b)
		if got := TimeFrom(tt.a).Sub(TimeFrom(tt.b)); got != want {
			t.Errorf("TimeFrom(%v).Sub(%v) = %v; want %v", tt.a, tt.b, got, want)
		}
		if got := TimeFrom(tt.b).Add(want); got.Resolve(tt.a) != tt.a {
			t.Errorf("TimeFrom(%v).Add(%v) = %v; want %v", tt.b, want, got.Resolve(tt.a), tt.a)
		}
	}
}

func TestShort(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want Short
	}{
		{-time.Second, 0},
		{0, 0},
		{time.Second, 1 << 16},
		{1500 * time.Millisecond, 1<<16 | 1<<15},
		{15259 * time.Nanosecond, 1}, // 2^-16 s is 15258.79 ns
		{65535 * time.Second, 65535 << 16},
		{65536 * time.Second, MaxShort},
		{math.MaxInt64, MaxShort},
	}
	for _, tt := range tests {
		if got := ShortFrom(tt.d); got != tt.want {
			t.Errorf("ShortFrom(%v) = %#x; want %#x", tt.d, uint32(got), uint32(tt.want))
		}
	}
	if got, want := MaxShort.Duration(), 65535*time.Second+999984741*time.Nanosecond; got != want {
		t.Errorf("MaxShort.Duration() = %v; want %v", got, want)
	}
	for _, s := range []Short{0, 1, 0x8000, 0x10000, 0x12345678, MaxShort - 1} {
		if got := ShortFrom(s.Duration()); got != s {
			t.Errorf("ShortFrom(%#x.Duration()) = %#x", uint32(s), uint32(got))
		}
	}
}

func TestShortCeil(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want Short
	}{
		{-time.Second, 0},
		{0, 0},
		{1, 1},
		{15258 * time.Nanosecond, 1}, // 2^-16 s is 15258.79 ns
		{15259 * time.Nanosecond, 2},
		{time.Second, 1 << 16},
		{time.Second + 1, 1<<16 + 1},
		{65535*time.Second + 999984741*time.Nanosecond, MaxShort},
		{65536 * time.Second, MaxShort},
		{math.MaxInt64, MaxShort},
	}
	for _, tt := range tests {
		if got := ShortCeil(tt.d); got != tt.want {
			t.Errorf("ShortCeil(%v) = %#x; want %#x", tt.d, uint32(got), uint32(tt.want))
		}
	}
	for _, s := range []Short{0, 1, 0x8000, 0x10000, 0x12345678, MaxShort - 1} {
		if got := ShortCeil(s.Duration()); got < s || got > s+1 {
			t.Errorf("ShortCeil(%#x.Duration()) = %#x", uint32(s), uint32(got))
		}
	}
	if got := Short(5).AddSat(7); got != 12 {
		t.Errorf("AddSat = %#x", uint32(got))
	}
	if got := (MaxShort - 1).AddSat(7); got != MaxShort {
		t.Errorf("AddSat near the top = %#x", uint32(got))
	}
}

// TestLog2Duration covers every poll and precision value a packet can carry
// (A9): no panic, no overflow, monotonic.
func TestLog2Duration(t *testing.T) {
	prev := time.Duration(-1)
	for e := -128; e <= 127; e++ {
		d := Log2Duration(int8(e))
		if d < 0 || d < prev {
			t.Fatalf("Log2Duration(%d) = %v after %v", e, d, prev)
		}
		prev = d
	}
	for _, tt := range []struct {
		e    int8
		want time.Duration
	}{{-128, 0}, {-20, 954 * time.Nanosecond}, {-26, 15 * time.Nanosecond}, {-30, time.Nanosecond}, {-31, 0}, {0, time.Second}, {6, 64 * time.Second},
		{17, 131072 * time.Second}, {127, (1 << 33) * time.Second}} {
		if got := Log2Duration(tt.e); got != tt.want {
			t.Errorf("Log2Duration(%d) = %v; want %v", tt.e, got, tt.want)
		}
	}
}
