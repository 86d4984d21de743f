package xdp

import (
	"encoding/binary"

	"github.com/cilium/ebpf/asm"

	"github.com/meridian-ntp/meridian/internal/server"
)

// XDP actions (include/uapi/linux/bpf.h).
const (
	xdpDrop = 1
	xdpPass = 2
	xdpTX   = 3
)

// Frame layouts handled by the program: Ethernet II, then IPv4 without
// options or IPv6 without extension headers, then UDP, then exactly one
// 48-byte NTP header.
const (
	ethLen = 14
	ntpLen = 48
	udpLen = 8

	ip4Off    = ethLen
	ip4TTL    = ip4Off + 8
	ip4Csum   = ip4Off + 10
	ip4Src    = ip4Off + 12
	ip4Dst    = ip4Off + 16
	udp4Off   = ip4Off + 20
	ntp4Off   = udp4Off + udpLen
	frame4Len = ntp4Off + ntpLen // 90

	ip6Off    = ethLen
	ip6Hop    = ip6Off + 7
	ip6Src    = ip6Off + 8
	ip6Dst    = ip6Off + 24
	udp6Off   = ip6Off + 40
	ntp6Off   = udp6Off + udpLen
	frame6Len = ntp6Off + ntpLen // 110

	replyTTL = 64
)

// Layout of the state map's value (little-endian host order unless "raw",
// which is the wire's byte order). Written by encodeState.
const (
	offFlags     = 0  // u32 flag*
	offLeak      = 4  // u32: answer 1 in Leak limited requests; 0 never
	offLI        = 8  // u8: leap indicator << 6
	offStratum   = 9  // u8
	offPrecision = 10 // u8
	offRootDelay = 12 // u32 raw
	offRootDisp  = 16 // u32: root dispersion at Reference, ntp.Short
	offRefID     = 20 // [4]byte raw
	offRefRaw    = 24 // u64 raw: reference timestamp
	offRefHost   = 32 // u64: reference timestamp, 0 if none
	offTAI       = 40 // s64: CLOCK_TAI - CLOCK_REALTIME, ns
	offInterval  = 48 // u64: rate limit interval, ns
	offBurst     = 56 // u64: (burst-1) * interval, ns
	offMask4     = 64 // u32 raw: IPv4 grouping mask
	offMask6     = 72 // [16]byte raw: IPv6 grouping mask
	stateLen     = 88
)

// Flags of the state map's value.
const (
	flagEnabled      = 1 << iota // answer in the program at all
	flagACL                      // consult the access list
	flagFallbackDeny             // deny addresses no ACL prefix contains
	flagDenyKoD                  // answer denied clients with a DENY kiss
	flagLimit                    // rate limiting on
	flagRateKoD                  // answer limited clients with a RATE kiss
)

// Limiter decisions, as the program keeps them on its stack.
const (
	limPass = iota
	limLeak
	limKiss
	limDrop
)

// Stack slots of the program, as offsets from the frame pointer.
const (
	stReply   = -48  // [48]byte: the NTP response being built
	stACLKey  = -72  // LPM trie key: u32 prefix length, then the address
	stDest    = -96  // dests key: port raw, u16 0, IPv4-mapped address
	stLimKey  = -112 // [16]byte: the client's rate-limit group
	stIdx     = -120 // u32: a map key
	stFamily  = -128 // 4 or 6
	stVN      = -136 // the request's version
	stDenied  = -144 // 1 when the ACL denied the client
	stLimit   = -152 // lim*
	stNow     = -160 // CLOCK_MONOTONIC, ns
	stEntry   = -176 // [16]byte: a new limiter entry
	stVerdict = -184 // server.Verdict
	stReqTx   = -192 // u64 raw: the request's transmit timestamp
	stPoll    = -200 // the poll byte to answer with
)

// Limiter entries: tat (u64, theoretical arrival time, CLOCK_MONOTONIC ns)
// and kodAt (u64, no kiss-o'-death before this).
const (
	entryTAT   = 0
	entryKoDAt = 8
	entryLen   = 16
)

// mapFDs holds the file descriptors of the program's maps.
type mapFDs struct {
	ctl, state, dests, acl4, acl6, limit, stats int
}

// raw16 and raw32 return what a native load of the big-endian encoding of
// v reads: the constant to compare raw packet fields with.
func raw16(v uint16) int32 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return int32(binary.NativeEndian.Uint16(b[:]))
}

func raw32(v uint32) int64 {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return int64(binary.NativeEndian.Uint32(b[:]))
}

// program returns the instructions of the XDP program. Registers that live
// across helper calls: R6 the frame's start, R7 the NTP header, R8 the
// state map's value, R9 a limiter entry.
func program(m mapFDs) asm.Instructions {
	var p asm.Instructions
	p = append(p, parseFrame()...)
	p = append(p, checkNTP(m)...)
	p = append(p, accessAndLimit(m)...)
	p = append(p, buildReply()...)
	p = append(p, finishFrame()...)
	p = append(p, verdicts(m)...)
	return p
}

// parseFrame checks the frame's layers, leaves R6 at the frame, R7 at the
// NTP header, the family at stFamily and the dests key at stDest, and
// jumps to "pass" for anything that is not a candidate.
func parseFrame() asm.Instructions {
	p := asm.Instructions{
		asm.LoadMem(asm.R6, asm.R1, 0, asm.Word), // xdp_md.data
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word), // xdp_md.data_end
		asm.Mov.Reg(asm.R4, asm.R6),
		asm.Add.Imm(asm.R4, frame4Len),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		// Multicast and broadcast frames (the group bit of the destination
		// MAC) are never answered here.
		asm.LoadMem(asm.R5, asm.R6, 0, asm.Byte),
		asm.JSet.Imm(asm.R5, 1, "pass"),
		asm.LoadMem(asm.R5, asm.R6, 12, asm.Half),
		asm.JEq.Imm(asm.R5, raw16(0x0800), "ipv4"),
		asm.JEq.Imm(asm.R5, raw16(0x86DD), "ipv6"),
		asm.Ja.Label("pass"),

		// IPv4: exactly 90 bytes, no options, not a fragment, UDP of 56.
		asm.Mov.Reg(asm.R4, asm.R6).WithSymbol("ipv4"),
		asm.Add.Imm(asm.R4, frame4Len+1),
		asm.JLE.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R6, ip4Off, asm.Byte),
		asm.JNE.Imm(asm.R5, 0x45, "pass"),
		asm.LoadMem(asm.R5, asm.R6, ip4Off+2, asm.Half),
		asm.JNE.Imm(asm.R5, raw16(frame4Len-ethLen), "pass"),
		asm.LoadMem(asm.R5, asm.R6, ip4Off+6, asm.Half),
		asm.JSet.Imm(asm.R5, raw16(0x3FFF), "pass"), // MF or an offset
		asm.LoadMem(asm.R5, asm.R6, ip4Off+9, asm.Byte),
		asm.JNE.Imm(asm.R5, 17, "pass"),
		asm.LoadMem(asm.R5, asm.R6, udp4Off+4, asm.Half),
		asm.JNE.Imm(asm.R5, raw16(udpLen+ntpLen), "pass"),
		// Sources the stack would refuse: 0.0.0.0/8, multicast, class E
		// and broadcast.
		asm.LoadMem(asm.R5, asm.R6, ip4Src, asm.Byte),
		asm.JEq.Imm(asm.R5, 0, "pass"),
		asm.JGE.Imm(asm.R5, 224, "pass"),
		storeImm(asm.RFP, stFamily, 4, asm.DWord),
		asm.LoadMem(asm.R5, asm.R6, udp4Off+2, asm.Half),
		asm.StoreMem(asm.RFP, stDest, asm.R5, asm.Half),
		storeImm(asm.RFP, stDest+2, 0, asm.Half),
		storeImm(asm.RFP, stDest+4, 0, asm.Word),
		storeImm(asm.RFP, stDest+8, 0, asm.Word),
		storeImm(asm.RFP, stDest+12, int32(raw32(0xFFFF)), asm.Word), // ::ffff:
		asm.LoadMem(asm.R5, asm.R6, ip4Dst, asm.Word),
		asm.StoreMem(asm.RFP, stDest+16, asm.R5, asm.Word),
		asm.Mov.Reg(asm.R7, asm.R6),
		asm.Add.Imm(asm.R7, ntp4Off),
		asm.Ja.Label("dest"),

		// IPv6: exactly 110 bytes, UDP right after the fixed header.
		asm.Mov.Reg(asm.R4, asm.R6).WithSymbol("ipv6"),
		asm.Add.Imm(asm.R4, frame6Len),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.Add.Imm(asm.R4, 1),
		asm.JLE.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R6, ip6Off, asm.Byte),
		asm.RSh.Imm(asm.R5, 4),
		asm.JNE.Imm(asm.R5, 6, "pass"),
		asm.LoadMem(asm.R5, asm.R6, ip6Off+4, asm.Half),
		asm.JNE.Imm(asm.R5, raw16(udpLen+ntpLen), "pass"),
		asm.LoadMem(asm.R5, asm.R6, ip6Off+6, asm.Byte),
		asm.JNE.Imm(asm.R5, 17, "pass"),
		asm.LoadMem(asm.R5, asm.R6, udp6Off+4, asm.Half),
		asm.JNE.Imm(asm.R5, raw16(udpLen+ntpLen), "pass"),
		// A zero UDP checksum is invalid over IPv6.
		asm.LoadMem(asm.R5, asm.R6, udp6Off+6, asm.Half),
		asm.JEq.Imm(asm.R5, 0, "pass"),
		// Multicast sources, and IPv4-mapped and unspecified ones, which
		// the stack and package server treat as IPv4 or refuse.
		asm.LoadMem(asm.R5, asm.R6, ip6Src, asm.Byte),
		asm.JEq.Imm(asm.R5, 0xFF, "pass"),
		asm.LoadMem(asm.R5, asm.R6, ip6Src, asm.DWord),
		asm.JNE.Imm(asm.R5, 0, "v6src-ok"),
		asm.LoadMem(asm.R5, asm.R6, ip6Src+8, asm.DWord),
		asm.JEq.Imm(asm.R5, 0, "pass"), // unspecified
		asm.LoadMem(asm.R5, asm.R6, ip6Src+8, asm.Word),
		asm.JEq.Imm32(asm.R5, int32(raw32(0xFFFF)), "pass"),
		storeImm(asm.RFP, stFamily, 6, asm.DWord).WithSymbol("v6src-ok"),
		asm.LoadMem(asm.R5, asm.R6, udp6Off+2, asm.Half),
		asm.StoreMem(asm.RFP, stDest, asm.R5, asm.Half),
		storeImm(asm.RFP, stDest+2, 0, asm.Half),
	}
	p = append(p, copyWords(stDest+4, ip6Dst, 4)...)
	return append(p,
		asm.Mov.Reg(asm.R7, asm.R6),
		asm.Add.Imm(asm.R7, ntp6Off))
}

// copyWords copies n 32-bit words from the frame at off to the stack at
// slot (stack accesses must be aligned to their size).
func copyWords(slot int16, off int16, n int) asm.Instructions {
	var p asm.Instructions
	for i := range int16(n) {
		p = append(p,
			asm.LoadMem(asm.R5, asm.R6, off+4*i, asm.Word),
			asm.StoreMem(asm.RFP, slot+4*i, asm.R5, asm.Word))
	}
	return p
}

// checkNTP looks the destination up among the served addresses, checks
// the NTP header (mode 3, version 1 to 4), saves what the response needs
// from it and loads the state into R8.
func checkNTP(m mapFDs) asm.Instructions {
	p := lookup(m.dests, stDest, "pass")
	p[0] = p[0].WithSymbol("dest")
	p = append(p, asm.Instructions{
		asm.LoadMem(asm.R5, asm.R7, 0, asm.Byte),
		asm.Mov.Reg(asm.R4, asm.R5),
		asm.And.Imm(asm.R4, 7),
		asm.JNE.Imm(asm.R4, 3, "pass"),
		asm.RSh.Imm(asm.R5, 3),
		asm.And.Imm(asm.R5, 7),
		asm.JEq.Imm(asm.R5, 0, "pass"),
		asm.JGT.Imm(asm.R5, 4, "pass"),
		asm.StoreMem(asm.RFP, stVN, asm.R5, asm.DWord),
		asm.LoadMem(asm.R5, asm.R7, 40, asm.DWord),
		asm.StoreMem(asm.RFP, stReqTx, asm.R5, asm.DWord),
		// The poll interval echoed, clamped to [-6, 17] as a signed byte.
		asm.LoadMem(asm.R5, asm.R7, 2, asm.Byte),
		asm.JLE.Imm(asm.R5, 17, "poll-ok"),
		asm.Mov.Imm(asm.R4, 17),
		asm.JLT.Imm(asm.R5, 0x80, "poll-set"), // 18..127
		asm.Mov.Imm(asm.R4, 0xFA),             // -6
		asm.JLT.Imm(asm.R5, 0xFA, "poll-set"), // -128..-7
		asm.Ja.Label("poll-ok"),
		asm.Mov.Reg(asm.R5, asm.R4).WithSymbol("poll-set"),
		asm.StoreMem(asm.RFP, stPoll, asm.R5, asm.DWord).WithSymbol("poll-ok"),

		// The state is double-buffered: ctl[0] names the slot to read.
		storeImm(asm.RFP, stIdx, 0, asm.Word),
	}...)
	p = append(p, lookup(m.ctl, stIdx, "pass")...)
	p = append(p,
		asm.LoadMem(asm.R5, asm.R0, 0, asm.Word),
		asm.And.Imm(asm.R5, 1),
		asm.StoreMem(asm.RFP, stIdx, asm.R5, asm.Word))
	p = append(p, lookup(m.state, stIdx, "pass")...)
	return append(p,
		asm.Mov.Reg(asm.R8, asm.R0),
		asm.LoadMem(asm.R5, asm.R8, offFlags, asm.Word),
		asm.JSet.Imm(asm.R5, flagEnabled, "enabled"),
		asm.Ja.Label("pass"),
		storeImm(asm.RFP, stDenied, 0, asm.DWord).WithSymbol("enabled"),
		storeImm(asm.RFP, stLimit, limPass, asm.DWord),
	)
}

// lookup emits R0 = bpf_map_lookup_elem(map fd, FP+slot), jumping to miss
// when the key is absent.
func lookup(fd int, slot int16, miss string) asm.Instructions {
	return asm.Instructions{
		asm.LoadMapPtr(asm.R1, fd),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, int32(slot)),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, miss),
	}
}

// accessAndLimit runs the access list and the rate limiter, with package
// server's semantics (Responder.respond, Limiter.Check), and jumps to the
// response or to a drop.
func accessAndLimit(m mapFDs) asm.Instructions {
	var p asm.Instructions
	p = append(p, aclLookup(m)...)
	p = append(p, limiterKey()...)
	p = append(p, limiter(m)...)
	p = append(p,
		// Decide, as Responder.respond does.
		asm.LoadMem(asm.R4, asm.RFP, stLimit, asm.DWord).WithSymbol("decide"),
		asm.LoadMem(asm.R5, asm.RFP, stDenied, asm.DWord),
		asm.JEq.Imm(asm.R5, 0, "decide-allowed"),
		asm.JEq.Imm(asm.R4, limDrop, "drop-denied"),
		storeImm(asm.RFP, stVerdict, int32(server.KissDeny), asm.DWord),
		asm.Ja.Label("reply"),
		storeImm(asm.RFP, stVerdict, int32(server.Answered), asm.DWord).WithSymbol("decide-allowed"),
		asm.JEq.Imm(asm.R4, limPass, "reply"),
		storeImm(asm.RFP, stVerdict, int32(server.Leaked), asm.DWord),
		asm.JEq.Imm(asm.R4, limLeak, "reply"),
		storeImm(asm.RFP, stVerdict, int32(server.KissRate), asm.DWord),
		asm.JEq.Imm(asm.R4, limKiss, "reply"),
		asm.Ja.Label("drop-limited"),
	)
	return p
}

// aclLookup finds the most specific ACL prefix of the client's address and
// sets stDenied, or jumps to "drop-denied".
func aclLookup(m mapFDs) asm.Instructions {
	p := asm.Instructions{
		asm.LoadMem(asm.R5, asm.R8, offFlags, asm.Word),
		asm.JSet.Imm(asm.R5, flagACL, "acl"),
		asm.Ja.Label("limit"),
		asm.LoadMem(asm.R5, asm.RFP, stFamily, asm.DWord).WithSymbol("acl"),
		asm.JEq.Imm(asm.R5, 6, "acl6"),
		storeImm(asm.RFP, stACLKey, 32, asm.Word),
		asm.LoadMem(asm.R5, asm.R6, ip4Src, asm.Word),
		asm.StoreMem(asm.RFP, stACLKey+4, asm.R5, asm.Word),
		asm.LoadMapPtr(asm.R1, m.acl4),
		asm.Ja.Label("acl-lookup"),
		storeImm(asm.RFP, stACLKey, 128, asm.Word).WithSymbol("acl6"),
	}
	p = append(p, copyWords(stACLKey+4, ip6Src, 4)...)
	p = append(p,
		asm.LoadMapPtr(asm.R1, m.acl6),
		asm.Mov.Reg(asm.R2, asm.RFP).WithSymbol("acl-lookup"),
		asm.Add.Imm(asm.R2, stACLKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "acl-fallback"),
		asm.LoadMem(asm.R5, asm.R0, 0, asm.Byte),
		asm.JEq.Imm(asm.R5, int32(server.Allow), "limit"),
		asm.Ja.Label("acl-deny"),
		asm.LoadMem(asm.R5, asm.R8, offFlags, asm.Word).WithSymbol("acl-fallback"),
		asm.JSet.Imm(asm.R5, flagFallbackDeny, "acl-deny"),
		asm.Ja.Label("limit"),
		asm.LoadMem(asm.R5, asm.R8, offFlags, asm.Word).WithSymbol("acl-deny"),
		asm.JSet.Imm(asm.R5, flagDenyKoD, "acl-kod"),
		asm.Ja.Label("drop-denied"),
		storeImm(asm.RFP, stDenied, 1, asm.DWord).WithSymbol("acl-kod"),
	)
	return p
}

// limiterKey writes the client's rate-limit group to stLimKey: its address
// masked to the configured prefix, IPv4 in IPv4-mapped form (as
// Limiter.key does).
func limiterKey() asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R5, asm.R8, offFlags, asm.Word).WithSymbol("limit"),
		asm.JSet.Imm(asm.R5, flagLimit, "limit-on"),
		asm.Ja.Label("decide"),
		asm.LoadMem(asm.R5, asm.RFP, stFamily, asm.DWord).WithSymbol("limit-on"),
		asm.JEq.Imm(asm.R5, 6, "limkey6"),
		storeImm(asm.RFP, stLimKey, 0, asm.DWord),
		storeImm(asm.RFP, stLimKey+8, int32(raw32(0xFFFF)), asm.Word),
		asm.LoadMem(asm.R5, asm.R6, ip4Src, asm.Word),
		asm.LoadMem(asm.R4, asm.R8, offMask4, asm.Word),
		asm.And.Reg(asm.R5, asm.R4),
		asm.StoreMem(asm.RFP, stLimKey+12, asm.R5, asm.Word),
		asm.Ja.Label("limkey-done"),
		asm.LoadMem(asm.R5, asm.R6, ip6Src, asm.DWord).WithSymbol("limkey6"),
		asm.LoadMem(asm.R4, asm.R8, offMask6, asm.DWord),
		asm.And.Reg(asm.R5, asm.R4),
		asm.StoreMem(asm.RFP, stLimKey, asm.R5, asm.DWord),
		asm.LoadMem(asm.R5, asm.R6, ip6Src+8, asm.DWord),
		asm.LoadMem(asm.R4, asm.R8, offMask6+8, asm.DWord),
		asm.And.Reg(asm.R5, asm.R4),
		asm.StoreMem(asm.RFP, stLimKey+8, asm.R5, asm.DWord),
		asm.FnKtimeGetNs.Call().WithSymbol("limkey-done"),
		asm.StoreMem(asm.RFP, stNow, asm.R0, asm.DWord),
	}
}

// limiter is Limiter.Check on an LRU hash map: it sets stLimit.
func limiter(m mapFDs) asm.Instructions {
	return asm.Instructions{
		asm.LoadMapPtr(asm.R1, m.limit),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stLimKey),
		asm.FnMapLookupElem.Call(),
		asm.JNE.Imm(asm.R0, 0, "lim-found"),
		// A new client has its whole burst: this request passes.
		asm.LoadMem(asm.R5, asm.RFP, stNow, asm.DWord),
		asm.LoadMem(asm.R4, asm.R8, offInterval, asm.DWord),
		asm.Add.Reg(asm.R5, asm.R4),
		asm.StoreMem(asm.RFP, stEntry+entryTAT, asm.R5, asm.DWord),
		storeImm(asm.RFP, stEntry+entryKoDAt, 0, asm.DWord),
		asm.LoadMapPtr(asm.R1, m.limit),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stLimKey),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, stEntry),
		asm.Mov.Imm(asm.R4, 0), // BPF_ANY
		asm.FnMapUpdateElem.Call(),
		asm.Ja.Label("decide"),

		asm.Mov.Reg(asm.R9, asm.R0).WithSymbol("lim-found"),
		asm.LoadMem(asm.R2, asm.RFP, stNow, asm.DWord),
		asm.LoadMem(asm.R3, asm.R9, entryTAT, asm.DWord),
		asm.JGE.Reg(asm.R3, asm.R2, "tat-ok"),
		asm.Mov.Reg(asm.R3, asm.R2),
		asm.Mov.Reg(asm.R4, asm.R3).WithSymbol("tat-ok"),
		asm.Sub.Reg(asm.R4, asm.R2),
		asm.LoadMem(asm.R5, asm.R8, offBurst, asm.DWord),
		asm.JGT.Reg(asm.R4, asm.R5, "lim-over"),
		asm.LoadMem(asm.R5, asm.R8, offInterval, asm.DWord),
		asm.Add.Reg(asm.R3, asm.R5),
		asm.StoreMem(asm.R9, entryTAT, asm.R3, asm.DWord),
		asm.Ja.Label("decide"),

		asm.LoadMem(asm.R5, asm.R8, offLeak, asm.Word).WithSymbol("lim-over"),
		asm.JEq.Imm(asm.R5, 0, "lim-noleak"),
		asm.FnGetPrandomU32.Call(),
		asm.LoadMem(asm.R5, asm.R8, offLeak, asm.Word),
		asm.JEq.Imm(asm.R5, 0, "lim-noleak"),
		asm.Mod.Reg(asm.R0, asm.R5),
		asm.JNE.Imm(asm.R0, 0, "lim-noleak"),
		storeImm(asm.RFP, stLimit, limLeak, asm.DWord),
		asm.Ja.Label("decide"),
		storeImm(asm.RFP, stLimit, limDrop, asm.DWord).WithSymbol("lim-noleak"),
		asm.LoadMem(asm.R5, asm.R8, offFlags, asm.Word),
		asm.JSet.Imm(asm.R5, flagRateKoD, "lim-kod"),
		asm.Ja.Label("decide"),
		asm.LoadMem(asm.R2, asm.RFP, stNow, asm.DWord).WithSymbol("lim-kod"),
		asm.LoadMem(asm.R3, asm.R9, entryKoDAt, asm.DWord),
		asm.JLT.Reg(asm.R2, asm.R3, "decide"),
		asm.LoadMem(asm.R5, asm.R8, offInterval, asm.DWord),
		asm.Add.Reg(asm.R2, asm.R5),
		asm.StoreMem(asm.R9, entryKoDAt, asm.R2, asm.DWord),
		storeImm(asm.RFP, stLimit, limKiss, asm.DWord),
		asm.Ja.Label("decide"),
	}
}

// buildReply writes the NTP response to stReply, as Responder.respond and
// StampTransmit do, with the receive and transmit timestamps both read
// from CLOCK_TAI here, less the TAI offset.
func buildReply() asm.Instructions {
	return asm.Instructions{
		asm.FnKtimeGetTaiNs.Call().WithSymbol("reply"),
		asm.LoadMem(asm.R1, asm.R8, offTAI, asm.DWord),
		asm.Sub.Reg(asm.R0, asm.R1), // CLOCK_REALTIME, ns
		asm.Mov.Reg(asm.R1, asm.R0),
		asm.Div.Imm(asm.R1, 1e9), // seconds
		asm.Mov.Reg(asm.R2, asm.R1),
		asm.Mul.Imm(asm.R2, 1e9),
		asm.Sub.Reg(asm.R0, asm.R2), // nanoseconds
		asm.LSh.Imm(asm.R0, 32),
		asm.Add.Imm(asm.R0, 5e8),
		asm.Div.Imm(asm.R0, 1e9), // fraction, rounded as ntp.TimeFrom does
		asm.LoadImm(asm.R2, 2208988800, asm.DWord),
		asm.Add.Reg(asm.R1, asm.R2),
		asm.LSh.Imm(asm.R1, 32), // the era is dropped
		asm.Or.Reg(asm.R1, asm.R0),
		asm.Mov.Reg(asm.R0, asm.R1),
		asm.HostTo(asm.BE, asm.R0, asm.DWord),
		asm.StoreMem(asm.RFP, stReply+32, asm.R0, asm.DWord), // receive
		asm.StoreMem(asm.RFP, stReply+40, asm.R0, asm.DWord), // transmit
		asm.LoadMem(asm.R0, asm.RFP, stReqTx, asm.DWord),
		asm.StoreMem(asm.RFP, stReply+24, asm.R0, asm.DWord), // origin

		// Byte 0: leap, version echoed, mode 4 (server).
		asm.LoadMem(asm.R2, asm.RFP, stVN, asm.DWord),
		asm.LSh.Imm(asm.R2, 3),
		asm.Or.Imm(asm.R2, 4),
		asm.LoadMem(asm.R3, asm.R8, offPrecision, asm.Byte),
		asm.StoreMem(asm.RFP, stReply+3, asm.R3, asm.Byte),
		asm.LoadMem(asm.R3, asm.RFP, stPoll, asm.DWord),
		asm.StoreMem(asm.RFP, stReply+2, asm.R3, asm.Byte),
		asm.LoadMem(asm.R3, asm.RFP, stVerdict, asm.DWord),
		asm.JEq.Imm(asm.R3, int32(server.KissRate), "kiss-rate"),
		asm.JEq.Imm(asm.R3, int32(server.KissDeny), "kiss-deny"),

		asm.LoadMem(asm.R3, asm.R8, offLI, asm.Byte),
		asm.Or.Reg(asm.R2, asm.R3),
		asm.StoreMem(asm.RFP, stReply, asm.R2, asm.Byte),
		asm.LoadMem(asm.R3, asm.R8, offStratum, asm.Byte),
		asm.StoreMem(asm.RFP, stReply+1, asm.R3, asm.Byte),
		asm.LoadMem(asm.R3, asm.R8, offRootDelay, asm.Word),
		asm.StoreMem(asm.RFP, stReply+4, asm.R3, asm.Word),
		asm.LoadMem(asm.R3, asm.R8, offRefID, asm.Word),
		asm.StoreMem(asm.RFP, stReply+12, asm.R3, asm.Word),
		asm.LoadMem(asm.R3, asm.R8, offRefRaw, asm.DWord),
		asm.StoreMem(asm.RFP, stReply+16, asm.R3, asm.DWord),
		// Root dispersion: State.rootDisp, in the same integer steps.
		asm.LoadMem(asm.R4, asm.R8, offRootDisp, asm.Word),
		asm.LoadMem(asm.R2, asm.R8, offRefHost, asm.DWord),
		asm.JEq.Imm(asm.R2, 0, "disp-store"),
		asm.Sub.Reg(asm.R1, asm.R2), // age, 32.32 fixed point
		asm.JSLE.Imm(asm.R1, 0, "disp-store"),
		asm.Mov.Reg(asm.R3, asm.R1),
		asm.RSh.Imm(asm.R3, 32),
		asm.Mul.Imm(asm.R3, 1e9),
		asm.LSh.Imm(asm.R1, 32),
		asm.RSh.Imm(asm.R1, 32),
		asm.Mul.Imm(asm.R1, 1e9),
		asm.LoadImm(asm.R5, 1<<31, asm.DWord),
		asm.Add.Reg(asm.R1, asm.R5),
		asm.RSh.Imm(asm.R1, 32),
		asm.Add.Reg(asm.R1, asm.R3), // age, ns
		asm.Div.Imm(asm.R1, 1_000_000),
		asm.Mul.Imm(asm.R1, server.MaxDriftPPM), // growth, ns
		asm.LoadImm(asm.R3, 0xFFFFFFFF, asm.DWord),
		asm.LoadImm(asm.R5, 65536e9, asm.DWord),
		asm.JGE.Reg(asm.R1, asm.R5, "disp-sat"),
		asm.LSh.Imm(asm.R1, 16),
		asm.Add.Imm(asm.R1, 1e9-1),
		asm.Div.Imm(asm.R1, 1e9), // ntp.ShortCeil
		asm.Add.Reg(asm.R4, asm.R1),
		asm.JLT.Reg(asm.R4, asm.R3, "disp-store"),
		asm.Mov.Reg(asm.R4, asm.R3).WithSymbol("disp-sat"),
		asm.HostTo(asm.BE, asm.R4, asm.Word).WithSymbol("disp-store"),
		asm.StoreMem(asm.RFP, stReply+8, asm.R4, asm.Word),
		asm.Ja.Label("reply-built"),

		// Kisses (RFC 5905 §7.4): leap 3, stratum 0, the code as reference
		// ID, no reference time, root delay or dispersion.
		asm.Mov.Imm(asm.R3, int32(raw32(uint32('R')<<24|uint32('A')<<16|uint32('T')<<8|'E'))).WithSymbol("kiss-rate"),
		asm.Ja.Label("kiss"),
		asm.Mov.Imm(asm.R3, int32(raw32(uint32('D')<<24|uint32('E')<<16|uint32('N')<<8|'Y'))).WithSymbol("kiss-deny"),
		asm.StoreMem(asm.RFP, stReply+12, asm.R3, asm.Word).WithSymbol("kiss"),
		asm.Or.Imm(asm.R2, 3<<6),
		asm.StoreMem(asm.RFP, stReply, asm.R2, asm.Byte),
		storeImm(asm.RFP, stReply+1, 0, asm.Byte),
		storeImm(asm.RFP, stReply+4, 0, asm.Word),
		storeImm(asm.RFP, stReply+8, 0, asm.Word),
		storeImm(asm.RFP, stReply+16, 0, asm.DWord),
	}
}

// finishFrame copies the response into the frame, turns the frame around
// and recomputes its checksums.
func finishFrame() asm.Instructions {
	var p asm.Instructions
	for i := int16(0); i < ntpLen; i += 8 {
		p = append(p,
			asm.LoadMem(asm.R0, asm.RFP, stReply+i, asm.DWord),
			asm.StoreMem(asm.R7, i, asm.R0, asm.DWord))
	}
	p[0] = p[0].WithSymbol("reply-built")
	p = append(p,
		// Ethernet: swap the MAC addresses.
		asm.LoadMem(asm.R1, asm.R6, 0, asm.Word),
		asm.LoadMem(asm.R2, asm.R6, 4, asm.Half),
		asm.LoadMem(asm.R3, asm.R6, 6, asm.Word),
		asm.LoadMem(asm.R4, asm.R6, 10, asm.Half),
		asm.StoreMem(asm.R6, 0, asm.R3, asm.Word),
		asm.StoreMem(asm.R6, 4, asm.R4, asm.Half),
		asm.StoreMem(asm.R6, 6, asm.R1, asm.Word),
		asm.StoreMem(asm.R6, 10, asm.R2, asm.Half),
		asm.LoadMem(asm.R5, asm.RFP, stFamily, asm.DWord),
		asm.JEq.Imm(asm.R5, 6, "finish6"),
	)
	p = append(p, finish4()...)
	p = append(p, finish6()...)
	return p
}

// csum appends csum_diff(NULL, 0, R6+off, n, seed in R5) to p, leaving the
// 32-bit partial sum in R0 and in R5.
func csum(off int32, n int32) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Imm(asm.R1, 0),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Reg(asm.R3, asm.R6),
		asm.Add.Imm(asm.R3, off),
		asm.Mov.Imm(asm.R4, n),
		asm.FnCsumDiff.Call(),
		asm.Mov.Reg(asm.R5, asm.R0),
	}
}

// fold turns the partial sum in R5 into a checksum in R5. With a label
// (UDP), a zero result is sent as all ones (RFC 768); the label must be
// unique in the program.
func fold(label string) asm.Instructions {
	p := asm.Instructions{
		asm.LSh.Imm(asm.R5, 32),
		asm.RSh.Imm(asm.R5, 32),
	}
	for range 3 {
		p = append(p,
			asm.Mov.Reg(asm.R4, asm.R5),
			asm.RSh.Imm(asm.R4, 16),
			asm.And.Imm(asm.R5, 0xFFFF),
			asm.Add.Reg(asm.R5, asm.R4))
	}
	p = append(p, asm.Xor.Imm(asm.R5, 0xFFFF))
	if label != "" {
		p = append(p,
			asm.JNE.Imm(asm.R5, 0, label),
			asm.Mov.Imm(asm.R5, 0xFFFF),
			asm.Mov.Reg(asm.R5, asm.R5).WithSymbol(label)) // no-op target
	}
	return p
}

// pseudo is the rest of the UDP pseudo-header (protocol and length) as a
// native load of its big-endian encoding, added to the sums.
var pseudo = raw16(17) + raw16(udpLen+ntpLen)

func finish4() asm.Instructions {
	p := asm.Instructions{
		asm.LoadMem(asm.R1, asm.R6, ip4Src, asm.Word),
		asm.LoadMem(asm.R2, asm.R6, ip4Dst, asm.Word),
		asm.StoreMem(asm.R6, ip4Src, asm.R2, asm.Word),
		asm.StoreMem(asm.R6, ip4Dst, asm.R1, asm.Word),
		storeImm(asm.R6, ip4TTL, replyTTL, asm.Byte),
		storeImm(asm.R6, ip4Csum, 0, asm.Half),
		asm.LoadMem(asm.R1, asm.R6, udp4Off, asm.Half),
		asm.LoadMem(asm.R2, asm.R6, udp4Off+2, asm.Half),
		asm.StoreMem(asm.R6, udp4Off, asm.R2, asm.Half),
		asm.StoreMem(asm.R6, udp4Off+2, asm.R1, asm.Half),
		storeImm(asm.R6, udp4Off+6, 0, asm.Half),
		asm.Mov.Imm(asm.R5, 0),
	}
	p = append(p, csum(ip4Off, 20)...)
	p = append(p, fold("")...)
	p = append(p, asm.StoreMem(asm.R6, ip4Csum, asm.R5, asm.Half))
	p = append(p, asm.Mov.Imm(asm.R5, pseudo))
	p = append(p, csum(ip4Src, 8)...)
	p = append(p, csum(udp4Off, udpLen+ntpLen)...)
	p = append(p, fold("udp4-csum")...)
	p = append(p,
		asm.StoreMem(asm.R6, udp4Off+6, asm.R5, asm.Half),
		asm.Ja.Label("count"))
	return p
}

func finish6() asm.Instructions {
	p := asm.Instructions{
		asm.LoadMem(asm.R1, asm.R6, ip6Src, asm.DWord).WithSymbol("finish6"),
		asm.LoadMem(asm.R2, asm.R6, ip6Dst, asm.DWord),
		asm.StoreMem(asm.R6, ip6Src, asm.R2, asm.DWord),
		asm.StoreMem(asm.R6, ip6Dst, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R6, ip6Src+8, asm.DWord),
		asm.LoadMem(asm.R2, asm.R6, ip6Dst+8, asm.DWord),
		asm.StoreMem(asm.R6, ip6Src+8, asm.R2, asm.DWord),
		asm.StoreMem(asm.R6, ip6Dst+8, asm.R1, asm.DWord),
		storeImm(asm.R6, ip6Hop, replyTTL, asm.Byte),
		asm.LoadMem(asm.R1, asm.R6, udp6Off, asm.Half),
		asm.LoadMem(asm.R2, asm.R6, udp6Off+2, asm.Half),
		asm.StoreMem(asm.R6, udp6Off, asm.R2, asm.Half),
		asm.StoreMem(asm.R6, udp6Off+2, asm.R1, asm.Half),
		storeImm(asm.R6, udp6Off+6, 0, asm.Half),
		asm.Mov.Imm(asm.R5, pseudo),
	}
	p = append(p, csum(ip6Src, 32)...)
	p = append(p, csum(udp6Off, udpLen+ntpLen)...)
	p = append(p, fold("udp6-csum")...)
	p = append(p, asm.StoreMem(asm.R6, udp6Off+6, asm.R5, asm.Half))
	return p
}

// verdicts counts the verdict in the per-CPU stats map and returns the
// action.
func verdicts(m mapFDs) asm.Instructions {
	count := func(label string, verdict server.Verdict, action int32) asm.Instructions {
		return asm.Instructions{
			storeImm(asm.RFP, stVerdict, int32(verdict), asm.DWord).WithSymbol(label),
			asm.Mov.Imm(asm.R9, action),
			asm.Ja.Label("count-stack"),
		}
	}
	var p asm.Instructions
	p = append(p, asm.Mov.Imm(asm.R9, xdpTX).WithSymbol("count"))
	p = append(p, asm.Ja.Label("count-stack"))
	p = append(p, count("drop-denied", server.DropDenied, xdpDrop)...)
	p = append(p, count("drop-limited", server.DropLimited, xdpDrop)...)
	p = append(p,
		asm.LoadMem(asm.R5, asm.RFP, stVerdict, asm.DWord).WithSymbol("count-stack"),
		asm.StoreMem(asm.RFP, stIdx, asm.R5, asm.Word))
	p = append(p, lookup(m.stats, stIdx, "out")...)
	p = append(p,
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Mov.Reg(asm.R0, asm.R9).WithSymbol("out"),
		asm.Return(),
		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
		asm.Return(),
	)
	return p
}

// storeImm emits *(size *)(dst + off) = v, v sign-extended to the size.
// (asm.StoreImm refuses the 64-bit form, which the kernel accepts.)
func storeImm(dst asm.Register, off int16, v int32, size asm.Size) asm.Instruction {
	return asm.Instruction{OpCode: asm.StoreImmOp(size), Dst: dst, Offset: off, Constant: int64(v)}
}
