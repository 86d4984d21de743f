//go:build !linux

package query

import (
	"errors"
	"net"
	"time"
)

// MsgTrunc is 0: truncated datagrams are not detected on this platform and
// fail validation instead.
const MsgTrunc = 0

// EnableRxTimestamps reports that kernel receive timestamps are not
// available on this platform; replies are stamped when the read returns.
func EnableRxTimestamps(*net.UDPConn) error {
	return errors.New("kernel receive timestamps are not supported on this platform")
}

// RxTimestamp always reports false on this platform.
func RxTimestamp([]byte) (time.Time, bool) { return time.Time{}, false }
