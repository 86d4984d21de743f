package statefile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	if _, err := Read(path, 16); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Read of a missing file: %v; want ErrNotExist", err)
	}
	if err := Write(path, []byte("0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	if b, err := Read(path, 16); err != nil || string(b) != "0123456789abcdef" {
		t.Errorf("Read = %q, %v", b, err)
	}
	if _, err := Read(path, 15); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Read of 16 bytes with a limit of 15: %v; want ErrTooLarge", err)
	}
	if _, err := Read(dir, 16); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Read of a directory: %v; want ErrNotRegular", err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 1 {
		t.Errorf("directory holds %v, %v; want the file only (no temporary left)", entries, err)
	}
	// A symbolic link planted at the path is replaced, not followed
	// (THREATS G5).
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious" {
		t.Errorf("the link's target holds %q; want it untouched", b)
	}
	// A missing directory: an error.
	if err := Write(filepath.Join(dir, "missing", "state"), nil); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Write into a missing directory: %v; want an error naming it", err)
	}
}

// TestReadParsed: a file Read refuses and one parse refuses are errors
// wrapping the caller's invalid-file error (the latter naming the path);
// a missing file is os.ErrNotExist.
func TestReadParsed(t *testing.T) {
	errBad := errors.New("bad file")
	parse := func(b []byte) (string, error) {
		if string(b) != "ok" {
			return "", fmt.Errorf("%w: %q", errBad, b)
		}
		return string(b), nil
	}
	dir := t.TempDir()
	good, bad, long := filepath.Join(dir, "good"), filepath.Join(dir, "bad"), filepath.Join(dir, "long")
	for p, b := range map[string]string{good: "ok", bad: "no", long: "okokok"} {
		if err := os.WriteFile(p, []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := ReadParsed(good, 4, errBad, parse); v != "ok" || err != nil {
		t.Errorf("good file: %q, %v", v, err)
	}
	for _, p := range []string{bad, long, dir} {
		if _, err := ReadParsed(p, 4, errBad, parse); !errors.Is(err, errBad) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v; want the invalid-file error, naming the path", p, err)
		}
	}
	if _, err := ReadParsed(filepath.Join(dir, "missing"), 4, errBad, parse); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v; want os.ErrNotExist", err)
	}
}
