package ntp

import "time"

// Time is a 64-bit NTP timestamp (RFC 5905 §6): seconds since the start of
// an NTP era in the upper 32 bits and the fraction of a second in the lower
// 32 bits. Era 0 began on 1900-01-01 00:00:00 UTC, era 1 begins on
// 2036-02-07 06:28:16 UTC. A Time does not record its era; Resolve recovers
// it from a reference time.
//
// Differences between Times use wrap-around arithmetic and are correct
// whenever the true difference is within ±68 years, across era boundaries.
type Time uint64

// Short is the 32-bit NTP short format (RFC 5905 §6): 16 bits of seconds and
// 16 bits of fraction, used for root delay and root dispersion.
type Short uint32

const (
	// ntpUnixOffset is the number of seconds from 1900-01-01 to 1970-01-01.
	ntpUnixOffset = 2208988800
	nsPerSecond   = 1_000_000_000
)

// MaxShort is the largest Short, 65535.99998 s.
const MaxShort Short = 0xFFFFFFFF

// TimeFrom returns the NTP timestamp of t, rounded to the nearest 2^-32 s
// (about 233 ps). The era of t is dropped; any t from 1900 to 2184 and
// beyond maps onto its era's seconds.
func TimeFrom(t time.Time) Time {
	secs := uint32(t.Unix() + ntpUnixOffset) // modulo 2^32: the era is dropped
	frac := (uint64(t.Nanosecond())<<32 + nsPerSecond/2) / nsPerSecond
	return Time(uint64(secs)<<32 | frac)
}

// Seconds returns the seconds within the era.
func (t Time) Seconds() uint32 { return uint32(t >> 32) }

// Fraction returns the fraction of a second in units of 2^-32 s.
func (t Time) Fraction() uint32 { return uint32(t) }

// IsZero reports whether t is the zero timestamp, which RFC 5905 uses to
// mean "unknown" or "not set".
func (t Time) IsZero() bool { return t == 0 }

// Resolve returns the time.Time that t denotes in the era that puts it
// closest to ref, which must be within 68 years of the true time. Fractions
// are rounded to the nearest nanosecond, so TimeFrom followed by Resolve
// returns the original time at nanosecond precision.
func (t Time) Resolve(ref time.Time) time.Time {
	refSecs := ref.Unix() + ntpUnixOffset
	delta := int64(int32(t.Seconds() - uint32(refSecs)))
	ns := (uint64(t.Fraction())*nsPerSecond + 1<<31) >> 32
	// time.Unix normalises ns == 1e9 into the next second.
	return time.Unix(refSecs+delta-ntpUnixOffset, int64(ns)).UTC()
}

// Sub returns t-u. The result is correct when the true difference is
// within ±68 years, whatever the eras of t and u.
func (t Time) Sub(u Time) time.Duration {
	return fixedToDuration(int64(t - u))
}

// Add returns t+d, rounded to the nearest 2^-32 s.
func (t Time) Add(d time.Duration) Time {
	return t + Time(durationToFixed(d))
}

// fixedToDuration converts a signed 32.32 fixed-point number of seconds to
// a Duration, rounding to the nearest nanosecond.
func fixedToDuration(f int64) time.Duration {
	secs := f >> 32 // arithmetic shift: floor
	frac := uint64(f) & 0xFFFFFFFF
	ns := int64((frac*nsPerSecond + 1<<31) >> 32)
	return time.Duration(secs*nsPerSecond + ns)
}

// durationToFixed converts d to signed 32.32 fixed-point seconds, rounding to
// the nearest 2^-32 s.
func durationToFixed(d time.Duration) int64 {
	secs := int64(d / nsPerSecond)
	rem := int64(d % nsPerSecond) // same sign as d
	neg := rem < 0
	if neg {
		rem = -rem
	}
	frac := (rem<<32 + nsPerSecond/2) / nsPerSecond
	if neg {
		frac = -frac
	}
	return secs<<32 + frac
}

// ShortFrom returns d in the short format, rounded to the nearest 2^-16 s.
// Negative durations give 0 and durations above MaxShort give MaxShort.
func ShortFrom(d time.Duration) Short {
	if d <= 0 {
		return 0
	}
	if d >= 65536*time.Second {
		return MaxShort
	}
	v := (int64(d)<<16 + nsPerSecond/2) / nsPerSecond
	if v > int64(MaxShort) {
		return MaxShort
	}
	return Short(v)
}

// ShortCeil returns d in the short format, rounded up to a whole 2^-16 s:
// the form for error bounds such as root dispersion, which must not be
// understated. Negative durations give 0 and durations above MaxShort give
// MaxShort.
func ShortCeil(d time.Duration) Short {
	if d <= 0 {
		return 0
	}
	if d >= 65536*time.Second {
		return MaxShort
	}
	v := (int64(d)<<16 + nsPerSecond - 1) / nsPerSecond
	return Short(min(v, int64(MaxShort)))
}

// AddSat returns s + t, saturated at MaxShort.
func (s Short) AddSat(t Short) Short {
	if sum := uint64(s) + uint64(t); sum < uint64(MaxShort) {
		return Short(sum)
	}
	return MaxShort
}

// Duration returns s as a Duration, rounded to the nearest nanosecond.
func (s Short) Duration() time.Duration {
	secs := int64(s >> 16)
	frac := uint64(s & 0xFFFF)
	return time.Duration(secs*nsPerSecond + int64((frac*nsPerSecond+1<<15)>>16))
}

// Log2Duration returns 2^exp seconds, rounded to the nearest nanosecond:
// the meaning of the header's poll and precision fields. Any int8 is
// accepted: results saturate at 2^33 s (about 272 years) and are 0 below
// half a nanosecond.
func Log2Duration(exp int8) time.Duration {
	switch {
	case exp >= 33:
		return (1 << 33) * time.Second
	case exp >= 0:
		return time.Duration(1<<exp) * time.Second
	case exp > -32:
		// Round half up: add half of the last unit before shifting.
		return (time.Second + 1<<(-exp-1)) >> -exp
	default:
		return 0
	}
}
