package ntp

import "encoding/binary"

// Extension field layout (RFC 7822 §3):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Field Type           |            Length             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	.                                                               .
//	.                            Value                              .
//	.                                                               .
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Padding (as needed)                     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Length counts the whole field, header and padding included; it is a
// multiple of 4 and at least 16.

// Extension field size limits.
const (
	ExtHeaderLen = 4     // type and length
	MinExtLen    = 16    // smallest valid field, header included
	MaxExtLen    = 65532 // largest length that is a multiple of 4
)

// ExtField is one extension field. Value holds everything after the 4-byte
// field header, padding included, and aliases the packet.
type ExtField struct {
	Type  uint16
	Value []byte
}

// extLen validates the extension field at the start of b and returns its
// length.
func extLen(b []byte) (int, error) {
	if len(b) < MinExtLen {
		return 0, ErrTrailing
	}
	l := int(binary.BigEndian.Uint16(b[2:]))
	switch {
	case l < MinExtLen:
		return 0, ErrExtLength
	case l%4 != 0:
		return 0, ErrExtAlign
	case l > len(b):
		return 0, ErrExtOverrun
	}
	return l, nil
}

// ExtFields iterates over a run of extension fields without allocating:
//
//	it := p.Fields()
//	for f, ok := it.Next(); ok; f, ok = it.Next() {
//		...
//	}
//	if err := it.Err(); err != nil { ... }
//
// Fields of a packet that Decode accepted are always well formed; the
// iterator still checks every length, so it is safe on any bytes.
type ExtFields struct {
	b   []byte
	err error
}

// NewExtFields returns an iterator over the extension fields in b.
func NewExtFields(b []byte) ExtFields { return ExtFields{b: b} }

// Next returns the next field, or false at the end or on a malformed field.
func (it *ExtFields) Next() (ExtField, bool) {
	if len(it.b) == 0 || it.err != nil {
		return ExtField{}, false
	}
	l, err := extLen(it.b)
	if err != nil {
		it.err = err
		return ExtField{}, false
	}
	f := ExtField{Type: binary.BigEndian.Uint16(it.b), Value: it.b[ExtHeaderLen:l:l]}
	it.b = it.b[l:]
	return f, true
}

// Err returns the error that stopped the iteration, if any.
func (it *ExtFields) Err() error { return it.err }

// ExtLen returns the length of an extension field carrying a value of n
// bytes: the header, the value and zero padding up to a multiple of 4 and
// at least MinExtLen.
func ExtLen(n int) int {
	l := (ExtHeaderLen + n + 3) &^ 3
	return max(l, MinExtLen)
}

// PutExt writes an extension field of type typ with value v at the start of
// dst, padded with zeros, and returns its length (ExtLen(len(v))).
func PutExt(dst []byte, typ uint16, v []byte) (int, error) {
	l := ExtLen(len(v))
	if l > MaxExtLen {
		return 0, ErrExtTooLong
	}
	if len(dst) < l {
		return 0, ErrBuffer
	}
	binary.BigEndian.PutUint16(dst, typ)
	binary.BigEndian.PutUint16(dst[2:], uint16(l))
	n := ExtHeaderLen + copy(dst[ExtHeaderLen:], v)
	clear(dst[n:l])
	return l, nil
}
