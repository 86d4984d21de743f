//go:build !linux

package udp

import (
	"errors"
	"net"
	"net/netip"
	"os"
)

// errUnsupported is what Listen returns on platforms other than Linux.
var errUnsupported = errors.New("udp: batched UDP sockets are implemented only on Linux")

// Conn is a UDP socket of a SO_REUSEPORT group. On this platform none can
// be opened: Listen always fails.
type Conn struct{}

// Listen returns an error on this platform.
func (lc ListenConfig) Listen(addr netip.AddrPort) ([]*Conn, error) { return nil, errUnsupported }

// LocalAddr returns the zero AddrPort.
func (c *Conn) LocalAddr() netip.AddrPort { return netip.AddrPort{} }

// Steered reports false.
func (c *Conn) Steered() bool { return false }

// Close returns net.ErrClosed.
func (c *Conn) Close() error { return net.ErrClosed }

// ReadBatch returns net.ErrClosed.
func (c *Conn) ReadBatch(msgs []Msg) (int, error) { return 0, net.ErrClosed }

// WriteBatch returns net.ErrClosed.
func (c *Conn) WriteBatch(msgs []Msg) (int, error) { return 0, net.ErrClosed }

// RxTime reports false: kernel receive timestamps are not read on this
// platform.
func RxTime([]byte) (int64, bool) { return 0, false }

// File is not supported on this platform.
func (c *Conn) File() (*os.File, error) { return nil, errUnsupported }

// FromFile is not supported on this platform.
func FromFile(f *os.File) (*Conn, error) { return nil, errUnsupported }

// Release is not supported on this platform.
func (c *Conn) Release() error { return net.ErrClosed }
