// Package source implements the client side of one NTP association: the
// request a client sends and the checks a reply must pass before it
// becomes a measurement (RFC 5905 §8, §9 and §10, with the data
// minimisation of RFC 9109 and draft-ietf-ntp-data-minimization).
//
// The package performs no I/O: it reads no clock, opens no socket and draws
// no randomness. Local timestamps and the random transmit value are passed
// in by the caller.
package source
