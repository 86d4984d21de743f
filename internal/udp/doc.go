// Package udp is the server's batched UDP socket adapter for Linux. It
// opens a group of SO_REUSEPORT sockets on one address, one per worker, and
// reads and writes each in batches with recvmmsg(2) and sendmmsg(2).
//
// Every received datagram carries the kernel's receive timestamp
// (SO_TIMESTAMPNS), the address it was sent to and the interface it
// arrived on (IP_PKTINFO, IPV6_RECVPKTINFO), so that a reply can be
// stamped accurately and leave from the address the client queried. A
// classic BPF program steers each client (by default an IPv4 address, or
// an IPv6 /64 prefix) to one socket of the group whatever its source port,
// so that a worker's per-client state, such as a rate-limit table, sees
// all of that client's traffic. IPv6 sockets are IPv6-only unless asked to
// be dual-stack; either way, IPv4 peers are reported as IPv4 addresses.
//
// Buffers belong to the caller and nothing is allocated per datagram.
// Control messages from the kernel are parsed defensively: a malformed one
// is skipped or ends the parse, never read out of bounds. The package
// holds no global state and never logs. On platforms other than Linux,
// Listen returns an error.
package udp
