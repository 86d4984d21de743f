// Package server answers NTP client requests (RFC 5905 §8, §9.2 and
// §15): from the served time state, a request, its kernel receive
// timestamp and the client address, it writes the response into a
// caller's buffer and returns a Verdict that feeds counters. It also holds
// the per-client rate limiter (interval, burst and a random leak, as
// chrony's ratelimit) and the allow/deny access list.
//
// Guarantees, each pinned by tests: only mode-3 requests of versions 1 to 4
// are answered; modes 6 and 7 (control and private: ntpq, monlist) never
// are; a response is never longer than its request; nothing is allocated
// per request.
//
// The package performs no I/O: it reads no clock and draws no randomness of
// its own. Time comes in as arguments; the rate limiter's leak lottery
// uses a seeded *rand.Rand and its table a hash seed, both passed in. The
// transmit timestamp is left for the caller to stamp with StampTransmit
// just before the datagram leaves, as late as possible.
package server
