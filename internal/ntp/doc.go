// Package ntp implements the NTP wire format: the 48-byte packet header and
// its fields (RFC 5905 §7.3), the 64-bit timestamp and 32-bit short formats
// with era resolution (RFC 5905 §6), and NTPv4 extension fields with their
// disambiguation from a legacy MAC (RFC 7822).
//
// The package performs no I/O: it never reads a clock, opens a socket, logs
// or draws randomness. Decoding and encoding allocate nothing; decoded
// slices alias the caller's buffer. Malformed input yields an [Error] and
// never a panic.
package ntp
