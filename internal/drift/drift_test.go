package drift

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Drift
		ok   bool
	}{
		{"meridian-drift 1 12.345678 0.012000\n", Drift{12.345678, 0.012}, true},
		{"meridian-drift 1 -500 500", Drift{-500, 500}, true},
		{"meridian-drift 1 0 0\n\n", Drift{0, 0}, true},
		{"meridian-drift 1 500.1 0\n", Drift{}, false},
		{"meridian-drift 1 NaN 0\n", Drift{}, false},
		{"meridian-drift 1 Inf 0\n", Drift{}, false},
		{"meridian-drift 1 1 -0.1\n", Drift{}, false},
		{"meridian-drift 1 1 NaN\n", Drift{}, false},
		{"meridian-drift 2 1 1\n", Drift{}, false},
		{"meridian-drift 1 1\n", Drift{}, false},
		{"meridian-drift 1 1 1 1\n", Drift{}, false},
		{"meridian-drift 1 1 1\nmeridian-drift 1 2 2\n", Drift{}, false},
		{"12.5\n", Drift{}, false}, // chrony's format is not ours
		{"", Drift{}, false},
		{strings.Repeat(" ", MaxSize+1), Drift{}, false},
		{"meridian-drift 1 0x10 1\n", Drift{}, false},
	} {
		got, err := Parse([]byte(tt.in))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q): %v is not ErrInvalid", tt.in, err)
		}
	}
}

func TestFormatRoundTrip(t *testing.T) {
	for _, d := range []Drift{{0, 0}, {-123.456789, 0.5}, {500, 500}, {-500, 0.000001}} {
		b, err := Format(d)
		if err != nil {
			t.Fatalf("Format(%+v): %v", d, err)
		}
		got, err := Parse(b)
		if err != nil || math.Abs(got.FreqPPM-d.FreqPPM) > 1e-6 || math.Abs(got.SDPPM-d.SDPPM) > 1e-6 {
			t.Errorf("Parse(Format(%+v)) = %+v, %v", d, got, err)
		}
	}
	for _, d := range []Drift{{math.NaN(), 0}, {501, 0}, {0, -1}, {0, math.Inf(1)}} {
		if _, err := Format(d); err == nil {
			t.Errorf("Format(%+v) succeeded", d)
		}
	}
}

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "drift")
	if _, err := Read(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Read of a missing file: %v; want ErrNotExist", err)
	}
	for _, d := range []Drift{{10.5, 0.1}, {-3.25, 0.01}} {
		if err := Write(path, d); err != nil {
			t.Fatal(err)
		}
		got, err := Read(path)
		if err != nil || got != d {
			t.Errorf("Read after Write(%+v) = %+v, %v", d, got, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Errorf("directory holds %v, %v; want only the drift file (no temporary left)", entries, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v; want 0644", fi.Mode(), err)
	}
	// THREATS G5: a symbolic link planted at the path is replaced, not
	// followed: the file it points to is untouched.
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, Drift{1, 1}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "precious\n" {
		t.Errorf("the link's target now holds %q, %v; want it untouched", b, err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSymlink != 0 {
		t.Errorf("%s is still a link: %v", path, err)
	}
	// A directory, or garbage, at the path is refused on reading.
	if err := os.WriteFile(path+"2", []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(path + "2"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), path+"2") {
		t.Errorf("Read of garbage: %v; want ErrInvalid naming the file", err)
	}
	if _, err := Read(dir); !errors.Is(err, ErrInvalid) {
		t.Errorf("Read of a directory: %v; want ErrInvalid", err)
	}
}

// FuzzParse: no panic, and whatever parses formats and parses back to
// (about) the same values, within the limits.
func FuzzParse(f *testing.F) {
	f.Add([]byte("meridian-drift 1 12.345678 0.012000\n"))
	f.Add([]byte("meridian-drift 1 -500 500"))
	f.Add([]byte("12.5\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err != nil {
			return
		}
		if math.Abs(d.FreqPPM) > MaxFreqPPM || d.SDPPM < 0 || d.SDPPM > MaxSDPPM {
			t.Fatalf("Parse(%q) = %+v: out of range", b, d)
		}
		out, err := Format(d)
		if err != nil {
			t.Fatalf("Format(%+v): %v", d, err)
		}
		back, err := Parse(out)
		if err != nil || math.Abs(back.FreqPPM-d.FreqPPM) > 1e-6 || math.Abs(back.SDPPM-d.SDPPM) > 1e-6 {
			t.Fatalf("round trip of %+v: %+v, %v", d, back, err)
		}
	})
}
