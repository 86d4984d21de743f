package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Load reads the configuration file at path and parses it with [Parse].
//
// path is used as given: there is no search path and no default, so the
// current directory is never consulted unless the caller names a relative
// path. Load refuses a path that is not a regular file and a file that
// anyone may write (whoever can change the configuration decides what time
// this daemon serves). It allows a symbolic link but warns, naming the
// final target, and warns about a group-writable file. Warnings are
// returned, one line each, even when there is an error.
//
// The error, if any, is an [*Errors] for problems with the file or its
// contents, or a wrapped *fs.PathError when it cannot be read at all.
func Load(path string) (*Config, []string, error) {
	c, _, warnings, err := LoadData(path)
	return c, warnings, err
}

// LoadData is Load, and also returns the file's contents as read.
func LoadData(path string) (*Config, []byte, []string, error) {
	if path == "" {
		return nil, nil, nil, errors.New("config: no configuration file given")
	}
	warnings, err := checkLink(path)
	if err != nil {
		return nil, nil, warnings, err
	}
	data, warning, err := readFile(path)
	if warning != "" {
		warnings = append(warnings, warning)
	}
	if err != nil {
		return nil, nil, warnings, err
	}
	c, err := Parse(path, data)
	return c, data, warnings, err
}

// checkLink returns a warning if path is a symbolic link, naming its final
// target (or, when that cannot be resolved, its immediate one: reading the
// file then fails with the reason).
func checkLink(path string) ([]string, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return nil, nil
	}
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		target, _ = os.Readlink(path) // best effort: only for the warning
	}
	return []string{fmt.Sprintf("%s: symbolic link to %s", path, target)}, nil
}

// readFile opens path, checks the type and mode of the file it actually
// opened (so that a file swapped in after a check cannot slip through), and
// reads at most MaxFileSize bytes of it. It returns a warning for a
// group-writable file.
func readFile(path string) (data []byte, warning string, err error) {
	// Stat first so that a named pipe is refused before open blocks on it.
	if fi, err := os.Stat(path); err != nil {
		return nil, "", fmt.Errorf("config: %w", err)
	} else if msg := fileProblem(fi.Mode()); msg != "" {
		return nil, "", fileError(path, msg)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("config: %w", err)
	}
	defer f.Close() // read-only: closing cannot lose data
	fi, err := f.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("config: %w", err)
	}
	if msg := fileProblem(fi.Mode()); msg != "" {
		return nil, "", fileError(path, msg)
	}
	if fi.Mode().Perm()&0o020 != 0 {
		warning = fmt.Sprintf("%s: group-writable (mode %#o): every member of its group could change what this daemon serves", path, fi.Mode().Perm())
	}
	data, err = io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, warning, fmt.Errorf("config: %w", err)
	}
	if len(data) > MaxFileSize {
		return nil, warning, fileError(path, "file is larger than 1 MiB")
	}
	return data, warning, nil
}

// fileProblem explains why a file of mode m must not be read as
// configuration, or returns "".
func fileProblem(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "is a directory, not a configuration file"
	case !m.IsRegular():
		return fmt.Sprintf("not a regular file (mode %s)", m)
	case m.Perm()&0o002 != 0:
		return fmt.Sprintf("world-writable configuration (mode %#o): anyone could change what this daemon serves; run chmod o-w on it", m.Perm())
	}
	return ""
}

func fileError(path, msg string) error {
	return &Errors{List: []*Error{{File: path, Msg: msg}}}
}
