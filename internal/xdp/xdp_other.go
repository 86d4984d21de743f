//go:build !linux

package xdp

import (
	"errors"
	"os"

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
type Program struct{ Maps }

// Maps are the program's maps a server needs; only Linux has them.
type Maps struct{}

var errNotLinux = errors.New("xdp: XDP needs Linux")

// Load fails: XDP needs Linux.
func Load(Config) (*Program, error) { return nil, errNotLinux }

// OpenMaps fails: XDP needs Linux.
func OpenMaps([]*os.File, Config) (*Maps, error) { return nil, errNotLinux }

// Publish fails: XDP needs Linux.
func (*Maps) Publish(*server.State) error { return errNotLinux }

// Off fails: XDP needs Linux.
func (*Maps) Off() error { return errNotLinux }

// Counters fails: XDP needs Linux.
func (*Maps) Counters() (map[server.Verdict]uint64, error) { return nil, errNotLinux }

// Close does nothing.
func (*Maps) Close() error { return nil }

// Attach fails: XDP needs Linux.
func (*Program) Attach(string, Mode) error { return errNotLinux }

// MapFiles fails: XDP needs Linux.
func (*Program) MapFiles() ([]*os.File, error) { return nil, errNotLinux }

// Close does nothing.
func (*Program) Close() error { return nil }
