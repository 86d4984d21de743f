package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
)

// Package is the part of one "go list -json" record that the checks use.
type Package struct {
	ImportPath     string
	Name           string
	Dir            string
	Standard       bool     // part of the standard library
	DepOnly        bool     // listed only as a dependency of the requested packages
	GoFiles        []string // names relative to Dir
	CgoFiles       []string
	IgnoredGoFiles []string // excluded by build constraints on this platform
	Imports        []string // resolved import paths, sorted
	Module         *Module  // nil for the standard library
}

// Module is the module that contains a Package.
type Module struct {
	Path string
	Dir  string
	Main bool // the module go list was run in
}

// listFields names the Package fields that List asks go list to print.
const listFields = "ImportPath,Name,Dir,Standard,DepOnly,GoFiles,CgoFiles,IgnoredGoFiles,Imports,Module"

// List runs "go list -deps -json" on patterns with dir as the working
// directory and returns the packages named by patterns together with all of
// their dependencies, dependencies first. The packages that patterns named are
// those with DepOnly unset.
//
// The go command is looked up in PATH; "go test" puts the running toolchain's
// bin directory first in PATH, so tests find the go command that built them.
func List(dir string, patterns ...string) ([]*Package, error) {
	if len(patterns) == 0 {
		return nil, errors.New("archtest: no packages to list")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("archtest: %w", err)
	}
	args := append([]string{"list", "-deps", "-json=" + listFields}, patterns...)
	cmd := exec.Command(goCmd, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("archtest: go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, stderr.Bytes())
	}
	var pkgs []*Package
	dec := json.NewDecoder(&stdout)
	for {
		p := new(Package)
		if err := dec.Decode(p); err == io.EOF {
			return pkgs, nil
		} else if err != nil {
			return nil, fmt.Errorf("archtest: decode go list output: %w", err)
		}
		pkgs = append(pkgs, p)
	}
}

// Forbidden reports whether a core package may not depend on the package with
// import path path, directly or through other non-standard packages. The
// forbidden packages are those that perform I/O or read ambient state (net
// except net/netip, os, syscall, golang.org/x/sys, log and their
// subpackages), math/rand with its global source, and unsafe.
func Forbidden(path string) bool {
	switch path {
	case "net/netip":
		return false
	case "math/rand", "unsafe",
		// Standard packages whose purpose is I/O, or that read files or
		// the network behind an innocent-looking call.
		"io/ioutil", "path/filepath", "plugin", "crypto/tls", "crypto/x509",
		"runtime/pprof", "runtime/trace", "runtime/debug":
		return true
	}
	for _, root := range [...]string{"net", "os", "syscall", "log", "golang.org/x/sys"} {
		if path == root || strings.HasPrefix(path, root+"/") {
			return true
		}
	}
	return false
}

// CheckImports reports, for each root package in pkgs (one with DepOnly
// unset), every forbidden package it can reach, as
//
//	example.com/m/core imports os via example.com/m/a -> example.com/m/b
//
// where the packages after "via" form a shortest chain from the root to the
// package that imports os directly ("via" is omitted when that is the root).
// Each importing package is reported once per root and forbidden import.
//
// The walk follows the imports of module and third-party packages only. A
// standard-library package counts as a leaf: importing os is a violation, but
// importing time, whose implementation uses syscall, is not. pkgs must be
// closed under imports, as List returns them.
func CheckImports(pkgs []*Package) []string {
	byPath := make(map[string]*Package, len(pkgs))
	for _, p := range pkgs {
		byPath[p.ImportPath] = p
	}
	var out []string
	for _, p := range pkgs {
		if !p.DepOnly {
			out = append(out, checkImportsFrom(p, byPath)...)
		}
	}
	return out
}

// checkImportsFrom walks the import graph breadth-first from root, so that
// the chain reported for each violation is a shortest one.
func checkImportsFrom(root *Package, byPath map[string]*Package) []string {
	// importer maps each visited package to the package that imports it on a
	// shortest chain from root; root maps to "".
	importer := map[string]string{root.ImportPath: ""}
	queue := []*Package{root}
	var out []string
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, path := range p.Imports {
			if Forbidden(path) {
				out = append(out, describeChain(root.ImportPath, p.ImportPath, path, importer))
				continue
			}
			q := byPath[path]
			if q == nil || q.Standard {
				continue
			}
			if _, seen := importer[path]; !seen {
				importer[path] = p.ImportPath
				queue = append(queue, q)
			}
		}
	}
	return out
}

// describeChain formats the violation of root reaching bad through last.
func describeChain(root, last, bad string, importer map[string]string) string {
	var chain []string
	for p := last; p != root; p = importer[p] {
		chain = append(chain, p)
	}
	if len(chain) == 0 {
		return fmt.Sprintf("%s imports %s", root, bad)
	}
	slices.Reverse(chain)
	return fmt.Sprintf("%s imports %s via %s", root, bad, strings.Join(chain, " -> "))
}
