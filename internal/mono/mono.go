// Package mono defines Instant, a reading of a monotonic clock, which the
// pure core packages take as their notion of "now". It reads no clock
// itself: adapters produce Instants (see the daemon's clock), tests and
// the simulator make them up.
package mono

import "time"

// Instant is a point on a monotonic clock, in nanoseconds since an origin
// chosen by whoever produces Instants. Instants from different origins must
// not be compared. The zero Instant is a valid point in time.
type Instant int64

// Add returns t+d.
func (t Instant) Add(d time.Duration) Instant { return t + Instant(d) }

// Sub returns t-u.
func (t Instant) Sub(u Instant) time.Duration { return time.Duration(t - u) }

// Before reports whether t is before u.
func (t Instant) Before(u Instant) bool { return t < u }

// After reports whether t is after u.
func (t Instant) After(u Instant) bool { return t > u }
