//go:build !linux

package query

import (
	"errors"
	"net"
	"time"
)

// msgTrunc is 0: truncated datagrams are not detected on this platform and
// fail validation instead.
const msgTrunc = 0

// enableRxTimestamps reports that kernel receive timestamps are not
// available on this platform; replies are stamped when the read returns.
func enableRxTimestamps(*net.UDPConn) error {
	return errors.New("kernel receive timestamps are not supported on this platform")
}

// RxTimestamp always reports false on this platform.
func RxTimestamp([]byte) (time.Time, bool) { return time.Time{}, false }
