// Package statefile reads and writes the small files a daemon keeps
// across restarts (the drift file, the step file): bounded reads of
// regular files, and atomic writes that a crash cannot leave half done.
package statefile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrNotRegular: the path names something other than a regular file.
var ErrNotRegular = errors.New("statefile: not a regular file")

// ErrTooLarge: the file holds more than the caller's limit.
var ErrTooLarge = errors.New("statefile: file too large")

// Read returns the content of the file at path, at most max bytes. A
// missing file is os.ErrNotExist (errors.Is). A file that is not a
// regular file (a symbolic link to one is followed, as for the
// configuration) is refused, and so is one longer than max.
func Read(path string, max int) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s", ErrNotRegular, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, max+1)
	n := 0
	for n < len(b) {
		m, err := f.Read(b[n:])
		n += m
		if err != nil {
			break // io.EOF, or an error that a short read reports as well
		}
	}
	if n > max {
		return nil, fmt.Errorf("%w: %s is longer than %d bytes", ErrTooLarge, path, max)
	}
	return b[:n], nil
}

// ReadParsed reads the file at path as Read does and parses it with
// parse. A file Read refuses (not a regular file, too long) is an error
// wrapping invalid, which parse's errors wrap too; those name path.
func ReadParsed[T any](path string, max int, invalid error, parse func([]byte) (T, error)) (T, error) {
	var zero T
	b, err := Read(path, max)
	if errors.Is(err, ErrNotRegular) || errors.Is(err, ErrTooLarge) {
		return zero, fmt.Errorf("%w: %v", invalid, err)
	}
	if err != nil {
		return zero, err
	}
	v, err := parse(b)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// Clip shortens text to quote in a message.
func Clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// Write writes b to path atomically: into a new temporary file in the
// same directory (never following a link an attacker may have left
// there), synced to disk, renamed over path, with the directory synced
// too. The file gets mode 0644.
func Write(path string, b []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// Removing the temporary file is best effort: the write
			// failed either way.
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(b); err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if dh, derr := os.Open(dir); derr == nil {
		// Syncing the directory makes the rename durable; a file system
		// that cannot sync directories still renamed atomically.
		_ = dh.Sync()
		_ = dh.Close()
	}
	return nil
}
