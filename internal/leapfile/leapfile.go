// Package leapfile parses leap-seconds.list, the table of leap seconds
// that the IERS publishes and that tzdata ships (on Debian,
// /usr/share/zoneinfo/leap-seconds.list).
//
// The file lists, one per line, an NTP timestamp (seconds since 1900)
// and the TAI−UTC offset in seconds from then on; "#$" gives the time of
// its last update, "#@" its expiry, and "#h" a SHA-1 hash, as five
// hexadecimal words, of the digits of the update time, the expiry and
// every line's two numbers, in order. A file whose hash does not match,
// whose entries do not go forward one second at a time, or that does not
// parse is refused as a whole; one past its expiry says nothing about
// leap seconds still to come (Expired).
//
// The package performs no I/O: the caller reads the file.
package leapfile

import (
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-ntp/meridian/internal/ntp"
)

// MaxSize is the largest file parsed.
const MaxSize = 1 << 16

// ntpEpoch is the NTP timestamps' zero.
var ntpEpoch = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)

// Entry is one line of the table: from At on, TAI−UTC is Offset seconds.
type Entry struct {
	At     time.Time
	Offset int
}

// File is a parsed leap-seconds.list.
type File struct {
	Updated, Expires time.Time
	Entries          []Entry
}

// ErrInvalid is wrapped by every error Parse returns.
var ErrInvalid = errors.New("leapfile: invalid leap-seconds.list")

func invalid(line int, format string, args ...any) error {
	return fmt.Errorf("%w: line %d: %s", ErrInvalid, line, fmt.Sprintf(format, args...))
}

// Parse parses the content of a leap-seconds.list file.
func Parse(b []byte) (*File, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalid, len(b), MaxSize)
	}
	f := &File{}
	var digits strings.Builder
	var hash []uint32
	var updated, expires bool
	for i, line := range strings.Split(string(b), "\n") {
		n := i + 1
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, "#$"), strings.HasPrefix(line, "#@"):
			t, s, err := ntpSeconds(strings.TrimSpace(line[2:]))
			if err != nil {
				return nil, invalid(n, "%v", err)
			}
			digits.WriteString(s)
			if line[1] == '$' {
				f.Updated, updated = t, true
			} else {
				f.Expires, expires = t, true
			}
		case strings.HasPrefix(line, "#h"):
			for _, w := range strings.Fields(line[2:]) {
				v, err := strconv.ParseUint(w, 16, 32)
				if err != nil {
					return nil, invalid(n, "hash word %q is not hexadecimal", w)
				}
				hash = append(hash, uint32(v))
			}
		case strings.HasPrefix(line, "#"), strings.TrimSpace(line) == "":
		default:
			e, s, err := entry(line)
			if err != nil {
				return nil, invalid(n, "%v", err)
			}
			if k := len(f.Entries); k > 0 {
				prev := f.Entries[k-1]
				if !e.At.After(prev.At) || (e.Offset-prev.Offset)*(e.Offset-prev.Offset) != 1 {
					return nil, invalid(n, "entry %v %d does not follow %v %d by a later time and one second", e.At, e.Offset, prev.At, prev.Offset)
				}
			}
			f.Entries = append(f.Entries, e)
			digits.WriteString(s)
		}
	}
	switch {
	case !updated || !expires:
		return nil, fmt.Errorf("%w: no update time (#$) or expiry (#@)", ErrInvalid)
	case len(f.Entries) == 0:
		return nil, fmt.Errorf("%w: no entries", ErrInvalid)
	case len(hash) != 5:
		return nil, fmt.Errorf("%w: no hash (#h) of five words", ErrInvalid)
	}
	sum := sha1.Sum([]byte(digits.String()))
	for i, w := range hash {
		if binary.BigEndian.Uint32(sum[4*i:]) != w {
			return nil, fmt.Errorf("%w: the hash does not match the content", ErrInvalid)
		}
	}
	return f, nil
}

// ntpSeconds parses an NTP timestamp in whole seconds, returning it as a
// time and as the digits the hash covers.
func ntpSeconds(s string) (time.Time, string, error) {
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("%q is not an NTP timestamp in seconds", s)
	}
	return ntpEpoch.Add(time.Duration(v) * time.Second), strconv.FormatUint(v, 10), nil
}

// entry parses a data line: an NTP timestamp, the offset, a comment.
func entry(line string) (Entry, string, error) {
	data, _, _ := strings.Cut(line, "#")
	f := strings.Fields(data)
	if len(f) != 2 {
		return Entry{}, "", fmt.Errorf("%q is not a timestamp and an offset", clip(line))
	}
	t, ts, err := ntpSeconds(f[0])
	if err != nil {
		return Entry{}, "", err
	}
	off, err := strconv.Atoi(f[1])
	if err != nil || off < 0 || off > 1000 {
		return Entry{}, "", fmt.Errorf("offset %q is not a number of seconds", clip(f[1]))
	}
	return Entry{At: t, Offset: off}, ts + strconv.Itoa(off), nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// Expired reports whether the file has expired at now: it then says
// nothing about leap seconds after its expiry.
func (f *File) Expired(now time.Time) bool { return !now.Before(f.Expires) }

// LeapAt returns the leap second the file lists at the end of utc's UTC
// day: LeapInsert if TAI−UTC grows by one at the next midnight,
// LeapDelete if it shrinks, LeapNone otherwise.
func (f *File) LeapAt(utc time.Time) ntp.Leap {
	u := utc.UTC()
	midnight := time.Date(u.Year(), u.Month(), u.Day()+1, 0, 0, 0, 0, time.UTC)
	for i, e := range f.Entries {
		if !e.At.Equal(midnight) || i == 0 {
			continue
		}
		if e.Offset > f.Entries[i-1].Offset {
			return ntp.LeapInsert
		}
		return ntp.LeapDelete
	}
	return ntp.LeapNone
}
