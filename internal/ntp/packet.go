package ntp

// Legacy MAC lengths (RFC 5905 §7.3, RFC 7822 §7.5): a 4-byte key
// identifier alone (a crypto-NAK), or followed by a 16-byte (MD5, AES-CMAC)
// or 20-byte (SHA-1) digest. NTPv3 also allowed an 8-byte DES digest.
const (
	macNAKLen  = 4
	macDESLen  = 4 + 8
	macMD5Len  = 4 + 16
	macSHA1Len = 4 + 20
)

// Packet is a decoded NTP packet: the header, the extension field area and
// the legacy MAC. Ext and MAC alias the buffer given to Decode.
type Packet struct {
	Header
	// Ext holds the NTPv4 extension fields, back to back, each validated
	// by Decode; walk them with Fields. Nil when there are none.
	Ext []byte
	// MAC is the legacy message authentication code (key identifier and
	// digest) that may follow the extension fields. Nil when absent.
	MAC []byte
}

// Decode parses b into p. Ext and MAC alias b. It allocates nothing.
//
// For NTPv4 and later, the bytes after the header are read as a sequence of
// extension fields (RFC 7822) optionally followed by a legacy MAC: wherever
// 4, 20 or 24 bytes remain, they are the MAC (RFC 7822 §7.5 requires a last
// extension field without a MAC to be at least 28 bytes, which makes this
// unambiguous). For versions 1 to 3, trailing bytes can only be a MAC.
// Anything else is an error; a failed Decode leaves p's header set and
// Ext and MAC nil.
func (p *Packet) Decode(b []byte) error {
	p.Ext, p.MAC = nil, nil
	if err := p.Header.Decode(b); err != nil {
		return err
	}
	rest := b[HeaderLen:]
	if p.Version < 4 {
		switch len(rest) {
		case 0:
		case macNAKLen, macDESLen, macMD5Len, macSHA1Len:
			p.MAC = rest
		default:
			return ErrTrailing
		}
		return nil
	}
	off := 0
	for off < len(rest) {
		n := len(rest) - off
		if n == macNAKLen || n == macMD5Len || n == macSHA1Len {
			p.MAC = rest[off:]
			break
		}
		l, err := extLen(rest[off:])
		if err != nil {
			return err
		}
		off += l
	}
	if off > 0 {
		p.Ext = rest[:off]
	}
	return nil
}

// Len returns the encoded length of p.
func (p *Packet) Len() int { return HeaderLen + len(p.Ext) + len(p.MAC) }

// Encode writes p into dst and returns the number of bytes written. The
// extension fields and MAC are copied as they are, so encoding a decoded
// packet reproduces its input exactly. It allocates nothing.
func (p *Packet) Encode(dst []byte) (int, error) {
	if len(dst) < p.Len() {
		return 0, ErrBuffer
	}
	if _, err := p.Header.Encode(dst); err != nil {
		return 0, err
	}
	n := HeaderLen
	n += copy(dst[n:], p.Ext)
	n += copy(dst[n:], p.MAC)
	return n, nil
}

// Fields returns an iterator over p's extension fields.
func (p *Packet) Fields() ExtFields { return ExtFields{b: p.Ext} }
