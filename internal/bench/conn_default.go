//go:build !linux

package bench

import (
	"errors"
	"net/netip"
	"time"
)

var errUnsupported = errors.New("bench: only supported on Linux")

type sysBatch struct{}

func (*sysBatch) init([][]byte) {}

type conn struct{}

func dial(netip.AddrPort, int, func(int) netip.Addr) (*conn, error) { return nil, errUnsupported }
func (*conn) close()                                                {}
func (*conn) wait(time.Duration) (int, error)                       { return 0, errUnsupported }
func (*conn) sleep(time.Duration)                                   {}
func (*conn) ready(int) int                                         { return 0 }
func (*conn) send(int, *batch, int) (int, error)                    { return 0, errUnsupported }
func (*conn) recv(int, *batch) (int, error)                         { return 0, errUnsupported }
func isAgain(error) bool                                            { return false }
func rxTimestamp([]byte) int64                                      { return 0 }
