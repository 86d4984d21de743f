package udp

import "golang.org/x/sys/unix"

// skfNetOff is the kernel's SKF_NET_OFF. Added to the offset of a classic
// BPF absolute load, it makes the offset count from the start of the IP
// header rather than from the data the program is given (for a reuseport
// program, the data after the UDP header).
const skfNetOff = -0x100000

// Offsets of the source address in the IPv4 and IPv6 headers.
const (
	ipv4SrcOff = 12
	ipv6SrcOff = 8
)

// hashMul is an odd constant with well-spread bits (2^32 divided by the
// golden ratio) for multiplicative hashing.
const hashMul = 0x9e3779b1

// steering describes the program steeringProgram builds for a group.
type steering struct {
	n            int    // sockets in the group, at least 1
	v4, v6       bool   // families the group receives: one or both
	bits4, bits6 int    // prefix lengths, 1 to 32 and 1 to 128
	seed         uint32 // of the hash
}

// steeringProgram returns a classic BPF program for SO_ATTACH_REUSEPORT_CBPF
// that picks the socket of a group of s.n for a datagram from its source
// address alone: the first s.bits4 bits of an IPv4 address, the first
// s.bits6 bits of an IPv6 address. The source port is ignored, so a client
// cannot spread itself over the group by varying it, and all addresses of
// one prefix count as one client. A dual-stack group tells the families
// apart by the version field of the IP header.
//
// The program mixes the address words with s.seed and a multiplicative
// hash before reducing them modulo s.n, so that clients whose addresses
// share low bits still spread evenly, and so that, with a secret seed, no
// one can choose addresses that all land on one socket. The index is the
// position of a socket in the group, which is the order in which the
// sockets were bound.
func steeringProgram(s steering) []unix.SockFilter {
	v4 := append(hashAddr(ipv4SrcOff, s.bits4, s.seed), reduce(s.n)...)
	v6 := append(hashAddr(ipv6SrcOff, s.bits6, s.seed), reduce(s.n)...)
	switch {
	case !s.v6:
		return v4
	case !s.v4:
		return v6
	}
	p := []unix.SockFilter{
		stmt(unix.BPF_LD|unix.BPF_B|unix.BPF_ABS, netOff(0)), // A = first byte of the IP header
		stmt(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, 0xf0),     // A = version << 4
		// IPv4: go on with v4; otherwise skip it.
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: 0x40, Jf: uint8(len(v4))},
	}
	p = append(p, v4...)
	return append(p, v6...)
}

// hashAddr returns the instructions that hash the first bits bits of the
// address at offset off of the IP header into X (and A), one 32-bit word at
// a time.
func hashAddr(off, bits int, seed uint32) []unix.SockFilter {
	var p []unix.SockFilter
	for w := 0; bits > 0; w, bits = w+1, bits-32 {
		// A = the next word of the address, in network byte order
		p = append(p, stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, netOff(off+4*w)))
		if bits < 32 {
			p = append(p, stmt(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, ^uint32(0)<<(32-bits))) // A &= mask
		}
		if w == 0 {
			p = append(p, stmt(unix.BPF_ALU|unix.BPF_XOR|unix.BPF_K, seed)) // A ^= seed
		} else {
			p = append(p, stmt(unix.BPF_ALU|unix.BPF_XOR|unix.BPF_X, 0)) // A ^= X
		}
		p = append(p,
			stmt(unix.BPF_ALU|unix.BPF_MUL|unix.BPF_K, hashMul), // A *= hashMul
			stmt(unix.BPF_MISC|unix.BPF_TAX, 0),                 // X = A
		)
	}
	return p
}

// reduce returns the instructions that fold the hash in A and X and return
// it modulo n.
func reduce(n int) []unix.SockFilter {
	return []unix.SockFilter{
		stmt(unix.BPF_ALU|unix.BPF_RSH|unix.BPF_K, 16),        // A >>= 16
		stmt(unix.BPF_ALU|unix.BPF_XOR|unix.BPF_X, 0),         // A ^= X: fold the high bits down
		stmt(unix.BPF_ALU|unix.BPF_MOD|unix.BPF_K, uint32(n)), // A %= n
		stmt(unix.BPF_RET|unix.BPF_A, 0),                      // socket index A
	}
}

// netOff is the operand of an absolute load from offset off of the IP
// header.
func netOff(off int) uint32 { return uint32(int32(skfNetOff + off)) }

// stmt is a classic BPF instruction without jumps.
func stmt(code uint16, k uint32) unix.SockFilter {
	return unix.SockFilter{Code: code, K: k}
}

// attachSteering attaches steeringProgram(s) to the reuseport group of the
// socket fd, creating the group if fd is not bound yet.
func attachSteering(fd int, s steering) error {
	p := steeringProgram(s)
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF,
		&unix.SockFprog{Len: uint16(len(p)), Filter: &p[0]})
}
