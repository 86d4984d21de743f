package ntp

// Error is the type of every error returned by this package. Its values are
// constants, so returning one never allocates; compare with errors.Is.
type Error string

// Error returns the message.
func (e Error) Error() string { return string(e) }

// Errors returned by Decode, Encode and the extension field functions.
const (
	// ErrShort means a packet is shorter than the 48-byte header.
	ErrShort Error = "ntp: packet shorter than 48 bytes"
	// ErrTrailing means bytes after the header (or after the last extension
	// field) are too few to be an extension field (RFC 7822 §7.5: fewer
	// than 28) and are not a MAC of a valid length.
	ErrTrailing Error = "ntp: trailing bytes are neither an extension field nor a MAC"
	// ErrExtLength means an extension field declares a length below 16 bytes.
	ErrExtLength Error = "ntp: extension field shorter than 16 bytes"
	// ErrExtAlign means an extension field length is not a multiple of 4.
	ErrExtAlign Error = "ntp: extension field length not a multiple of 4"
	// ErrExtOverrun means an extension field extends past the end of the packet.
	ErrExtOverrun Error = "ntp: extension field longer than the packet"
	// ErrExtTooLong means an extension field value does not fit the 16-bit length.
	ErrExtTooLong Error = "ntp: extension field value too long"
	// ErrBuffer means the destination buffer is too small.
	ErrBuffer Error = "ntp: destination buffer too small"
	// ErrField means a packet cannot be encoded: a header field is out of
	// range (leap > 3, version or mode > 7) or the MAC has an invalid length.
	ErrField Error = "ntp: header field out of range"
)
