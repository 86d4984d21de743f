package archtest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CheckSource parses the non-test Go files of every main-module package in
// pkgs and reports each use of a banned function or variable, as
//
//	internal/ntp/foo.go:12: calls time.Now (core packages take time as an argument)
//
// with the file named relative to the main module's directory. Given the
// output of List, that covers the core packages and any module package they
// import. Files excluded by build constraints on this platform are checked
// too, except those that declare a different package (such as generators).
//
// The banned names are the clock and timer functions of time, the global
// source of crypto/rand, the top-level functions of math/rand/v2 other than
// its constructors, and fmt's Print and Scan functions, which use the
// process's standard streams. Dot-importing any of those packages is also
// reported, since uses of its names could not be attributed.
func CheckSource(pkgs []*Package) ([]string, error) {
	names := make(map[string]string, len(pkgs))
	for _, p := range pkgs {
		names[p.ImportPath] = p.Name
	}
	var out []string
	for _, p := range pkgs {
		if p.Standard || p.Module == nil || !p.Module.Main {
			continue
		}
		for _, name := range sourceFiles(p) {
			path := filepath.Join(p.Dir, name)
			src, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("archtest: %w", err)
			}
			display := path
			if rel, err := filepath.Rel(p.Module.Dir, path); err == nil {
				display = filepath.ToSlash(rel)
			}
			found, err := checkFile(display, src, p.Name, names)
			if err != nil {
				return nil, err
			}
			out = append(out, found...)
		}
	}
	return out, nil
}

// sourceFiles returns the names of p's non-test Go files for every platform.
func sourceFiles(p *Package) []string {
	var files []string
	for _, list := range [...][]string{p.GoFiles, p.CgoFiles, p.IgnoredGoFiles} {
		for _, name := range list {
			if strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
				files = append(files, name)
			}
		}
	}
	return files
}

// checkFile reports the banned uses in one Go source file, naming it filename
// in the results. It skips the file if its package clause is not pkgName.
// names maps import paths to package names; paths missing from it get the
// conventional name (the last element, ignoring a major-version suffix).
//
// Each identifier is resolved with go/types against empty stand-ins for the
// imported packages, so renamed imports are followed and a local variable
// that shadows an import is not mistaken for it. The stand-ins leave every
// imported name undefined; the resulting type errors are expected and
// ignored.
func checkFile(filename string, src []byte, pkgName string, names map[string]string) ([]string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filename, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("archtest: %w", err)
	}
	if f.Name.Name != pkgName {
		return nil, nil
	}
	var out []string
	report := func(pos token.Pos, format string, args ...any) {
		p := fset.Position(pos)
		out = append(out, fmt.Sprintf("%s:%d: ", p.Filename, p.Line)+fmt.Sprintf(format, args...))
	}
	for _, spec := range f.Imports {
		path, err := strconv.Unquote(spec.Path.Value)
		if err == nil && spec.Name != nil && spec.Name.Name == "." && watched(path) {
			report(spec.Pos(), "dot-imports %s (uses of its names cannot be checked)", path)
		}
	}

	info := &types.Info{Uses: make(map[*ast.Ident]types.Object)}
	conf := types.Config{
		Importer:    stubImporter(names),
		Error:       func(error) {}, // expected: see the doc comment
		FakeImportC: true,
	}
	_, _ = conf.Check(pkgName, fset, []*ast.File{f}, info) // errors are expected, as above

	called := make(map[*ast.SelectorExpr]bool)
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			// Visited before its Fun, so the selector is marked in time.
			if sel := callee(n.Fun); sel != nil {
				called[sel] = true
			}
		case *ast.SelectorExpr:
			x, ok := n.X.(*ast.Ident)
			if !ok {
				break
			}
			pkg, ok := info.Uses[x].(*types.PkgName)
			if !ok {
				break
			}
			path := pkg.Imported().Path()
			if why := banned(path, n.Sel.Name); why != "" {
				verb := "uses"
				if called[n] {
					verb = "calls"
				}
				report(n.Pos(), "%s %s.%s (%s)", verb, path, n.Sel.Name, why)
			}
		}
		return true
	})
	return out, nil
}

// callee returns the selector that fun names, looking through parentheses
// and type arguments, or nil if fun is not a selector.
func callee(fun ast.Expr) *ast.SelectorExpr {
	for {
		switch e := fun.(type) {
		case *ast.ParenExpr:
			fun = e.X
		case *ast.IndexExpr:
			fun = e.X
		case *ast.IndexListExpr:
			fun = e.X
		case *ast.SelectorExpr:
			return e
		default:
			return nil
		}
	}
}

// stubImporter returns an importer that gives each import path an empty,
// complete package named as names says.
func stubImporter(names map[string]string) types.Importer {
	return importerFunc(func(path string) (*types.Package, error) {
		name, ok := names[path]
		if !ok {
			name = defaultName(path)
		}
		pkg := types.NewPackage(path, name)
		pkg.MarkComplete()
		return pkg, nil
	})
}

// importerFunc adapts a function to types.Importer.
type importerFunc func(path string) (*types.Package, error)

// Import returns the package with import path path.
func (f importerFunc) Import(path string) (*types.Package, error) { return f(path) }

// defaultName returns the conventional name of the package at path: its
// last element, or the one before it if the last is a major version ("v2").
func defaultName(path string) string {
	elems := strings.Split(path, "/")
	name := elems[len(elems)-1]
	if len(elems) > 1 && isMajorVersion(name) {
		name = elems[len(elems)-2]
	}
	return name
}

// isMajorVersion reports whether s has the form vN with N ≥ 2.
func isMajorVersion(s string) bool {
	n, err := strconv.Atoi(strings.TrimPrefix(s, "v"))
	return strings.HasPrefix(s, "v") && err == nil && n >= 2
}

// watched reports whether banned can return a reason for any name in the
// package with import path path.
func watched(path string) bool {
	switch path {
	case "time", "crypto/rand", "math/rand/v2", "fmt":
		return true
	}
	return false
}

// banned returns why the core may not use the package-level name of the
// package with import path path, or "" if it may.
func banned(path, name string) string {
	switch path {
	case "time":
		switch name {
		case "Now", "Since", "Until":
			return "core packages take time as an argument"
		case "Sleep", "After", "AfterFunc", "Tick", "NewTicker", "NewTimer":
			return "core packages return a deadline instead of waiting"
		}
	case "crypto/rand":
		switch name {
		case "Read", "Reader", "Text":
			return "core packages take entropy as an io.Reader argument"
		}
	case "math/rand/v2":
		// Allow-list, so that functions added to the package later are
		// banned by default.
		switch name {
		case "New", "NewPCG", "NewChaCha8", "NewZipf", "Rand", "Source", "PCG", "ChaCha8", "Zipf":
			return ""
		}
		return "core packages take a seeded *rand.Rand argument"
	case "fmt":
		if strings.HasPrefix(name, "Print") || strings.HasPrefix(name, "Scan") {
			return "core packages do no I/O"
		}
	}
	return ""
}
