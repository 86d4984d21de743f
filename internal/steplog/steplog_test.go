package steplog

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/discipline"
	"github.com/meridian-ntp/meridian/internal/statefile"
)

var t0 = time.Date(2026, 12, 2, 3, 4, 5, 123456789, time.UTC)

func TestParse(t *testing.T) {
	good := "meridian-steps 1\n2026-12-02T03:04:05.123456789Z +0.512\n2026-12-02T04:00:00Z -1000\n"
	want := []discipline.Step{{At: t0, Size: 512 * time.Millisecond}, {At: time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC), Size: -1000 * time.Second}}
	got, err := Parse([]byte(good))
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Parse(%q) = %+v, %v; want %+v", good, got, err, want)
	}
	if got, err := Parse([]byte("meridian-steps 1\n")); err != nil || len(got) != 0 {
		t.Errorf("no steps: %+v, %v", got, err)
	}
	for _, bad := range []string{
		"",
		"meridian-steps 1",
		"meridian-steps 2\n",
		"meridian-steps 1\n2026-12-02T03:04:05Z +1\n\n",
		"meridian-steps 1\n2026-12-02T03:04:05Z 1\n",
		"meridian-steps 1\n2026-12-02T03:04:05Z +NaN\n",
		"meridian-steps 1\n2026-12-02T03:04:05Z +Inf\n",
		"meridian-steps 1\n2026-12-02T03:04:05Z +1e10\n",
		"meridian-steps 1\n2026-12-02T03:04:05Z +99999999999\n",
		"meridian-steps 1\n2026-12-02T03:04:05Z -9999999999.5\n", // overflows a duration
		"meridian-steps 1\n2026-12-02T03:04:05Z +1.\n",
		"meridian-steps 1\n2026-12-02T03:04:05Z +.5\n",
		"meridian-steps 1\n2026-12-02T03:04:05Z +1.0000000001\n",
		"meridian-steps 1\n2026-12-02T03:04:05Z +0x10\n",
		"meridian-steps 1\n2026-12-02T03:04:05+01:00 +1\n",
		"meridian-steps 1\n2026-12-02 03:04:05Z +1\n",
		"meridian-steps 1\n2026-12-02T03:04:05Z  +1\n",
		"meridian-steps 1\n2026-12-02T03:04:05Z +1 +2\n",
		"meridian-steps 1\n2026-12-02T03:04:05Z +1\n2026-12-01T03:04:05Z +1\n",
		"meridian-steps 1\n" + strings.Repeat("2026-12-02T03:04:05Z +1\n", discipline.MaxSteps+1),
		"meridian-steps 1\n" + strings.Repeat(" ", MaxSize),
	} {
		if got, err := Parse([]byte(bad)); err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %+v, %v; want ErrInvalid", statefile.Clip(bad), got, err)
		}
	}
}

func TestWriteRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "steps")
	if _, err := Read(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Read of a missing file: %v; want ErrNotExist", err)
	}
	steps := []discipline.Step{{At: t0, Size: -3 * time.Second}, {At: t0.Add(time.Hour), Size: 999999999 * time.Nanosecond}}
	if err := Write(path, steps); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil || !slices.Equal(got, steps) {
		t.Errorf("Read after Write(%+v) = %+v, %v", steps, got, err)
	}
	if err := Write(path, []discipline.Step{steps[1], steps[0]}); err == nil {
		t.Error("Write of steps out of order succeeded")
	}
}

// FuzzParse: no panic; whatever parses is within the limits, formats, and
// parses back to the same steps.
func FuzzParse(f *testing.F) {
	f.Add([]byte("meridian-steps 1\n2026-12-02T03:04:05.123456789Z +0.512000000\n"))
	f.Add([]byte("meridian-steps 1\n"))
	f.Add([]byte("meridian-steps 1\n2026-12-02T04:00:00Z -1000\n2026-12-02T04:00:00Z +6311520000.999999999\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		steps, err := Parse(b)
		if err != nil {
			return
		}
		if len(steps) > discipline.MaxSteps {
			t.Fatalf("Parse(%q): %d steps", b, len(steps))
		}
		out, err := Format(steps)
		if err != nil {
			t.Fatalf("Format(%+v): %v", steps, err)
		}
		back, err := Parse(out)
		if err != nil || len(back) != len(steps) {
			t.Fatalf("round trip of %+v: %+v, %v", steps, back, err)
		}
		for i := range back {
			if !back[i].At.Equal(steps[i].At) || back[i].Size != steps[i].Size {
				t.Fatalf("round trip of %+v: %+v", steps[i], back[i])
			}
		}
	})
}
