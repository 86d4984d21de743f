// Package files stands in for a third-party package that does I/O.
package files

import "os"

// Exists reports whether name exists.
func Exists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}
