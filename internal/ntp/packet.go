package ntp

// Legacy MAC lengths (RFC 5905 §7.3, RFC 7822 §7.5): a 4-byte key
// identifier alone (a crypto-NAK), or followed by a 16-byte (MD5, AES-CMAC)
// or 20-byte (SHA-1) digest. NTPv3 also allowed an 8-byte DES digest.
const (
	macNAKLen  = 4 // key identifier 0 alone
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
// For NTPv4 and later, the bytes after the header are a sequence of
// extension fields (RFC 7822) optionally followed by a legacy MAC. RFC 7822
// §7.5 requires the last extension field of a packet without a MAC to be at
// least 28 bytes, so wherever fewer than 28 bytes remain they can only be
// the MAC: 4 bytes (a crypto-NAK), 20 or 24 bytes (key identifier and MD5
// or SHA-1 digest); anything else is an error. For versions 1 to 3 the
// bytes after the header can only be a MAC (of 4, 12, 20 or 24 bytes).
// A failed Decode leaves Ext and MAC nil and the header undefined.
func (p *Packet) Decode(b []byte) error {
	p.Ext, p.MAC = nil, nil
	if err := p.Header.Decode(b); err != nil {
		return err
	}
	rest := b[HeaderLen:]
	if p.Version < 4 {
		if len(rest) > 0 && !isMACLen(len(rest), p.Version) {
			return ErrTrailing
		}
		if len(rest) > 0 {
			p.MAC = rest
		}
		return nil
	}
	off, err := walkExt(rest)
	if err != nil {
		return err
	}
	if off > 0 {
		p.Ext = rest[:off]
	}
	if off < len(rest) {
		p.MAC = rest[off:]
	}
	return nil
}

// minLastExtLen is the least length of a last extension field that no MAC
// follows (RFC 7822 §7.5).
const minLastExtLen = 28

// walkExt validates the extension fields at the start of b and returns
// where they end; the bytes after that are a MAC of valid length.
func walkExt(b []byte) (int, error) {
	off := 0
	for off < len(b) {
		n := len(b) - off
		if n < minLastExtLen {
			if !isMACLen(n, 4) {
				return 0, ErrTrailing
			}
			return off, nil
		}
		l, err := extLen(b[off:])
		if err != nil {
			return 0, err
		}
		off += l
	}
	return off, nil
}

// isMACLen reports whether n bytes can be a legacy MAC in a packet of the
// given version.
func isMACLen(n int, version uint8) bool {
	switch n {
	case macNAKLen, macMD5Len, macSHA1Len:
		return true
	case macDESLen:
		return version < 4
	}
	return false
}

// Len returns the encoded length of p.
func (p *Packet) Len() int { return HeaderLen + len(p.Ext) + len(p.MAC) }

// Encode writes p into dst and returns the number of bytes written. The
// extension fields and MAC are copied as they are, so encoding a decoded
// packet reproduces its input exactly. It checks what Decode checks, so
// that it never produces a packet Decode would reject: ErrField for a MAC
// of invalid length, the extension field errors for Ext, and ErrTrailing
// for extension fields in a packet of version 1 to 3 or a last field
// shorter than 28 bytes without a MAC. It allocates nothing.
func (p *Packet) Encode(dst []byte) (int, error) {
	if len(dst) < p.Len() {
		return 0, ErrBuffer
	}
	if len(p.MAC) > 0 && !isMACLen(len(p.MAC), p.Version) {
		return 0, ErrField
	}
	if len(p.Ext) > 0 {
		if p.Version < 4 {
			return 0, ErrTrailing
		}
		it := NewExtFields(p.Ext)
		last := 0
		for f, ok := it.Next(); ok; f, ok = it.Next() {
			last = ExtHeaderLen + len(f.Value)
		}
		if err := it.Err(); err != nil {
			return 0, err
		}
		if len(p.MAC) == 0 && last < minLastExtLen {
			return 0, ErrTrailing
		}
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
