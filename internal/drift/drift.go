// Package drift reads and writes the drift file: the local oscillator's
// frequency error as the clock discipline last estimated it, so that a
// restarted daemon starts from it instead of from nothing.
//
// The file is one line of text, "meridian-drift 1 FREQ SD", FREQ the
// frequency error and SD its standard deviation in parts per million
// (positive FREQ: the oscillator runs fast). It is written atomically: a
// temporary file in the same directory, synced, then renamed over the old
// one, so that a crash leaves the old file or the new one, never half of
// either. A file that does not parse, or whose values are out of range,
// is refused as a whole.
package drift

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/meridian-ntp/meridian/internal/statefile"
)

// Limits of a valid drift file.
const (
	// MaxFreqPPM is the largest frequency error accepted, in ppm: beyond
	// it, the kernel could not correct the oscillator by frequency alone.
	MaxFreqPPM = 500
	// MaxSDPPM bounds the standard deviation.
	MaxSDPPM = 500
	// MaxSize is the largest file read.
	MaxSize = 256
)

const magic = "meridian-drift 1"

// Drift is the content of a drift file.
type Drift struct {
	FreqPPM, SDPPM float64
}

// ErrInvalid is wrapped by every error about a file's content.
var ErrInvalid = errors.New("drift: invalid drift file")

// Parse parses the content of a drift file.
func Parse(b []byte) (Drift, error) {
	if len(b) > MaxSize {
		return Drift{}, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalid, len(b), MaxSize)
	}
	line, rest, _ := strings.Cut(string(b), "\n")
	if strings.TrimSpace(rest) != "" {
		return Drift{}, fmt.Errorf("%w: more than one line", ErrInvalid)
	}
	f := strings.Fields(line)
	if len(f) != 4 || f[0]+" "+f[1] != magic {
		return Drift{}, fmt.Errorf("%w: want %q and two numbers, got %q", ErrInvalid, magic, statefile.Clip(line))
	}
	var d Drift
	var err error
	if d.FreqPPM, err = strconv.ParseFloat(f[2], 64); err != nil || math.IsNaN(d.FreqPPM) || math.Abs(d.FreqPPM) > MaxFreqPPM {
		return Drift{}, fmt.Errorf("%w: frequency %q is not a number between -%d and %d ppm", ErrInvalid, statefile.Clip(f[2]), MaxFreqPPM, MaxFreqPPM)
	}
	if d.SDPPM, err = strconv.ParseFloat(f[3], 64); err != nil || math.IsNaN(d.SDPPM) || d.SDPPM < 0 || d.SDPPM > MaxSDPPM {
		return Drift{}, fmt.Errorf("%w: deviation %q is not a number between 0 and %d ppm", ErrInvalid, statefile.Clip(f[3]), MaxSDPPM)
	}
	return d, nil
}

// Format returns the content of a drift file for d. It fails for values
// Parse would refuse.
func Format(d Drift) ([]byte, error) {
	if math.IsNaN(d.FreqPPM) || math.Abs(d.FreqPPM) > MaxFreqPPM || math.IsNaN(d.SDPPM) || d.SDPPM < 0 || d.SDPPM > MaxSDPPM {
		return nil, fmt.Errorf("%w: %+v out of range", ErrInvalid, d)
	}
	return fmt.Appendf(nil, "%s %.6f %.6f\n", magic, d.FreqPPM, d.SDPPM), nil
}

// Read reads and parses the drift file at path. A missing file is
// os.ErrNotExist (errors.Is), for the caller to treat as "no drift yet".
// A file that is not a regular file (a symbolic link to one is followed,
// as for the configuration) is refused.
func Read(path string) (Drift, error) {
	return statefile.ReadParsed(path, MaxSize, ErrInvalid, Parse)
}

// Write writes d to path atomically (see statefile.Write).
func Write(path string, d Drift) error {
	b, err := Format(d)
	if err != nil {
		return err
	}
	if err := statefile.Write(path, b); err != nil {
		return fmt.Errorf("drift: %w", err)
	}
	return nil
}
