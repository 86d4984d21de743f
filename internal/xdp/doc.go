// Package xdp answers NTP client requests in the kernel's XDP hook, before
// the network stack: the fast path of Meridian's server.
//
// The eBPF program it loads answers the common request, a 48-byte NTP
// mode 3 packet of version 1 to 4 over IPv4 or IPv6 to one of the served
// addresses and ports, in place: it swaps the Ethernet, IP and UDP
// addresses, writes the NTP response (RFC 5905 §7.3, the served state
// published by the daemon, the receive and transmit timestamps read from
// the kernel's clock), recomputes the checksums and transmits the frame
// back out of the interface it came in on. The per-client rate limiter and
// the access list run in the program too, with the semantics of package
// server, so that no request skips them. Everything else (other modes and
// versions, extension fields, fragments, IP options, addresses that are
// not served, a leap second announced) is passed to the kernel, where the
// server's sockets handle it.
//
// The program is built from instructions in Go (program.go); nothing is
// compiled from C. Loading and attaching it needs CAP_BPF and
// CAP_NET_ADMIN (root); the attachment is a BPF link owned by the process,
// so the kernel detaches the program when the process exits.
package xdp
