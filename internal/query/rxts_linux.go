package query

import (
	"encoding/binary"
	"net"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MsgTrunc is the receive flag of a datagram cut short by the buffer.
const MsgTrunc = unix.MSG_TRUNC

// EnableRxTimestamps asks the kernel to stamp each received datagram with
// the time it arrived (SO_TIMESTAMPNS), which is closer to the true arrival
// than any reading taken after the read returns.
func EnableRxTimestamps(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// RxTimestamp extracts the SCM_TIMESTAMPNS receive time from the control
// messages of one datagram. It reports false if there is none or the
// control data is malformed; it never panics.
func RxTimestamp(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS {
			return timespec(m.Data)
		}
	}
	return time.Time{}, false
}

// timespec decodes a struct timespec in the kernel's native layout.
func timespec(b []byte) (time.Time, bool) {
	var sec, nsec int64
	switch size := unsafe.Sizeof(unix.Timespec{}); {
	case size == 16 && len(b) >= 16:
		sec = int64(binary.NativeEndian.Uint64(b[0:]))
		nsec = int64(binary.NativeEndian.Uint64(b[8:]))
	case size == 8 && len(b) >= 8:
		sec = int64(int32(binary.NativeEndian.Uint32(b[0:])))
		nsec = int64(int32(binary.NativeEndian.Uint32(b[4:])))
	default:
		return time.Time{}, false
	}
	if nsec < 0 || nsec >= 1e9 {
		return time.Time{}, false
	}
	return time.Unix(sec, nsec), true
}
