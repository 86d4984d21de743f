//go:build !linux

package xdp

import (
	"errors"

	"github.com/meridian-ntp/meridian/internal/server"
)

// Mode is how the program is attached to an interface.
type Mode uint8

// Attach modes.
const (
	Auto Mode = iota
	Native
	Generic
)

// Program is the XDP program; only Linux has one.
type Program struct{}

var errNotLinux = errors.New("xdp: XDP needs Linux")

// Load fails: XDP needs Linux.
func Load(Config) (*Program, error) { return nil, errNotLinux }

// Publish fails: XDP needs Linux.
func (*Program) Publish(*server.State) error { return errNotLinux }

// Attach fails: XDP needs Linux.
func (*Program) Attach(string, Mode) error { return errNotLinux }

// Counters fails: XDP needs Linux.
func (*Program) Counters() (map[server.Verdict]uint64, error) { return nil, errNotLinux }

// Close does nothing.
func (*Program) Close() error { return nil }
