package udp

import (
	"errors"
	"net/netip"
)

// Msg is one datagram of a batch passed to ReadBatch or WriteBatch. Its
// buffer is owned by the caller: a Conn uses Buf only during the call and
// keeps no reference to it afterwards.
//
// ReadBatch reports the addresses of an IPv4 datagram as IPv4 addresses
// (Is4), also on a dual-stack IPv6 socket; WriteBatch accepts them in
// either form, plain or IPv4-mapped.
type Msg struct {
	// Buf holds the payload. ReadBatch stores at most len(Buf) bytes in
	// it; WriteBatch sends Buf[:N].
	Buf []byte

	// N is the payload length in bytes: received, or to be sent.
	N int

	// Addr is the remote address: the source of a received datagram, the
	// destination of one to send. ReadBatch never sets a zone, and
	// WriteBatch ignores it: for a link-local peer, IfIndex names the
	// link, and WriteBatch uses it as the scope of the destination.
	Addr netip.AddrPort

	// Local is the local address. ReadBatch sets it to the destination
	// address of the datagram's IP header (IP_PKTINFO, IPV6_PKTINFO); for a
	// datagram sent to a broadcast or multicast address that is the
	// broadcast or multicast address, from which no reply can be sent.
	// For WriteBatch it is the source address to send from, so that a
	// reply leaves from the address the request was sent to; the zero
	// Addr lets the kernel choose.
	Local netip.Addr

	// IfIndex is the index of the network interface a datagram arrived on.
	// For WriteBatch, a nonzero IfIndex makes the datagram leave through
	// that interface; zero lets routing choose.
	IfIndex int

	// RxTime is the kernel's receive timestamp (SO_TIMESTAMPNS) in
	// nanoseconds since the Unix epoch, or 0 if the kernel attached none.
	// WriteBatch ignores it.
	RxTime int64

	// Trunc reports that a received datagram was longer than Buf and was
	// cut to its first N = len(Buf) bytes (MSG_TRUNC). Such a datagram is
	// incomplete and should be dropped rather than parsed. WriteBatch
	// ignores it.
	Trunc bool
}

// ErrBadMsg is returned by WriteBatch for a Msg that cannot be sent on the
// Conn: N outside [0, len(Buf)], a negative IfIndex, an invalid Addr, an
// Addr of a family the socket cannot reach, or a Local of the other
// family than Addr.
var ErrBadMsg = errors.New("udp: invalid message for this socket")

// ListenConfig holds the choices of ListenConfig.Listen. The zero value
// opens one socket per CPU, steers clients by IPv4 address and IPv6 /64
// prefix, and makes IPv6 sockets IPv6-only.
type ListenConfig struct {
	// Sockets is the number of sockets of the group, one per worker;
	// 0 or less means runtime.NumCPU().
	Sockets int

	// IPv4Prefix and IPv6Prefix are the prefix lengths by which datagrams
	// are steered to sockets: all clients of one prefix reach the same
	// socket. 0 means 32 and 64. For per-socket state keyed by client
	// prefix, such as a rate limiter's table, to see all of a client's
	// traffic, these must be no longer than the prefixes that state uses
	// (shorter ones are sound too, only coarser).
	IPv4Prefix, IPv6Prefix int

	// DualStack makes the sockets of an IPv6 address also receive IPv4
	// datagrams, as IPv4-mapped addresses (IPV6_V6ONLY off): a group bound
	// to [::] then serves both families, and no IPv4 socket can be bound
	// to the same port. Without it, IPv6 sockets are IPv6-only.
	// DualStack has no effect for an IPv4 address.
	DualStack bool
}

// Listen opens n UDP sockets bound to addr, one for each worker, in one
// SO_REUSEPORT group; n <= 0 means runtime.NumCPU(). It is
// ListenConfig{Sockets: n}.Listen(addr).
func Listen(addr netip.AddrPort, n int) ([]*Conn, error) {
	lc := ListenConfig{Sockets: n}
	return lc.Listen(addr)
}

// batchConn is the method set of Conn on every platform; the assertion
// below keeps the platform files in step.
type batchConn interface {
	ReadBatch(msgs []Msg) (int, error)
	WriteBatch(msgs []Msg) (int, error)
	LocalAddr() netip.AddrPort
	Steered() bool
	Close() error
}

var _ batchConn = (*Conn)(nil)
