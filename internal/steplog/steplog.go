// Package steplog reads and writes the step file: the steps the clock
// discipline made lately, so that its step budget (THREATS D5) survives a
// restart of the daemon.
//
// The file is text: a first line "meridian-steps 1", then one line per
// step, "TIME SIZE", TIME the clock's reading just after the step in RFC
// 3339 form with nanoseconds, in UTC, and SIZE the step in seconds with
// its sign (positive: forward), oldest first. It is written atomically
// (package statefile). A file that does not parse is refused as a whole.
package steplog

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-ntp/meridian/internal/discipline"
	"github.com/meridian-ntp/meridian/internal/statefile"
)

const magic = "meridian-steps 1"

// Limits of a valid step file.
const (
	// MaxStepSeconds bounds a step: 200 years.
	MaxStepSeconds = 200 * 36525 * 864
	// MaxSize is the largest file read: the magic line and
	// discipline.MaxSteps lines.
	MaxSize = 64 + discipline.MaxSteps*64
)

// ErrInvalid is wrapped by every error about a file's content.
var ErrInvalid = errors.New("steplog: invalid step file")

// Parse parses the content of a step file.
func Parse(b []byte) ([]discipline.Step, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalid, len(b), MaxSize)
	}
	text, ok := strings.CutSuffix(string(b), "\n")
	lines := strings.Split(text, "\n")
	if !ok || lines[0] != magic {
		return nil, fmt.Errorf("%w: want a first line %q and every line ended", ErrInvalid, magic)
	}
	lines = lines[1:]
	if len(lines) > discipline.MaxSteps {
		return nil, fmt.Errorf("%w: %d steps, more than %d", ErrInvalid, len(lines), discipline.MaxSteps)
	}
	steps := make([]discipline.Step, 0, len(lines))
	for i, l := range lines {
		s, err := parseLine(l)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrInvalid, i+2, err)
		}
		if len(steps) > 0 && s.At.Before(steps[len(steps)-1].At) {
			return nil, fmt.Errorf("%w: line %d: steps out of order", ErrInvalid, i+2)
		}
		steps = append(steps, s)
	}
	return steps, nil
}

func parseLine(l string) (discipline.Step, error) {
	at, size, ok := strings.Cut(l, " ")
	if !ok || strings.Contains(size, " ") {
		return discipline.Step{}, fmt.Errorf("want TIME SIZE, got %q", statefile.Clip(l))
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil || !strings.HasSuffix(at, "Z") {
		return discipline.Step{}, fmt.Errorf("time %q is not an RFC 3339 time in UTC", statefile.Clip(at))
	}
	d, ok := parseSeconds(size)
	if !ok {
		return discipline.Step{}, fmt.Errorf("size %q is not a signed number of seconds (at most 9 decimals) within 200 years", statefile.Clip(size))
	}
	return discipline.Step{At: t, Size: d}, nil
}

// parseSeconds parses "[+-]S[.F]", S at most 10 digits and F 1 to 9, as
// a duration within MaxStepSeconds, exactly.
func parseSeconds(s string) (time.Duration, bool) {
	if len(s) < 2 || (s[0] != '+' && s[0] != '-') {
		return 0, false
	}
	whole, frac, dot := strings.Cut(s[1:], ".")
	if len(whole) == 0 || len(whole) > 10 || dot && (len(frac) == 0 || len(frac) > 9) || !digits(whole) || !digits(frac) {
		return 0, false
	}
	sec, _ := strconv.ParseInt(whole, 10, 64) // digits only, at most 10
	ns, _ := strconv.ParseInt((frac + "000000000")[:9], 10, 64)
	// Checked before the product, which 10 digits of seconds would
	// overflow.
	if sec > MaxStepSeconds {
		return 0, false
	}
	d := time.Duration(sec)*time.Second + time.Duration(ns)
	if d > MaxStepSeconds*time.Second {
		return 0, false
	}
	if s[0] == '-' {
		d = -d
	}
	return d, true
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Format returns the content of a step file for steps, which must be
// oldest first, at most discipline.MaxSteps, each within 200 years.
func Format(steps []discipline.Step) ([]byte, error) {
	if len(steps) > discipline.MaxSteps {
		return nil, fmt.Errorf("%w: %d steps, more than %d", ErrInvalid, len(steps), discipline.MaxSteps)
	}
	b := []byte(magic + "\n")
	for i, s := range steps {
		if s.Size.Abs() > MaxStepSeconds*time.Second || i > 0 && s.At.Before(steps[i-1].At) {
			return nil, fmt.Errorf("%w: step %+v out of range or out of order", ErrInvalid, s)
		}
		sign := byte('+')
		if s.Size < 0 {
			sign = '-'
		}
		a := s.Size.Abs()
		b = fmt.Appendf(b, "%s %c%d.%09d\n", s.At.UTC().Format(time.RFC3339Nano), sign, a/time.Second, a%time.Second)
	}
	return b, nil
}

// Read reads and parses the step file at path. A missing file is
// os.ErrNotExist (errors.Is): no steps yet.
func Read(path string) ([]discipline.Step, error) {
	return statefile.ReadParsed(path, MaxSize, ErrInvalid, Parse)
}

// Write writes steps to path atomically.
func Write(path string, steps []discipline.Step) error {
	b, err := Format(steps)
	if err != nil {
		return err
	}
	if err := statefile.Write(path, b); err != nil {
		return fmt.Errorf("steplog: %w", err)
	}
	return nil
}
