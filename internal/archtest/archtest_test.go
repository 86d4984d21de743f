package archtest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// coreDirs are the core packages, relative to the module root. Those whose
// directories hold no Go files yet are skipped.
var coreDirs = [...]string{
	"internal/ntp",
	"internal/nts",
	"internal/source",
	"internal/discipline",
	"internal/server",
	"internal/engine",
	"internal/leapfile",
}

// TestCore checks the repository's core packages with one go list call.
func TestCore(t *testing.T) {
	root := moduleRoot(t)
	var patterns []string
	for _, dir := range coreDirs {
		if hasGoFiles(t, filepath.Join(root, dir)) {
			patterns = append(patterns, "./"+dir)
		}
	}
	if len(patterns) == 0 {
		t.Fatalf("no core package has Go files under %s; looked in %v", root, coreDirs)
	}
	pkgs, err := List(root, patterns...)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range CheckImports(pkgs) {
		t.Error(v)
	}
	found, err := CheckSource(pkgs)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range found {
		t.Error(v)
	}
	if t.Failed() {
		t.Log("core packages must not do I/O, read the clock, sleep or use global randomness; see STYLE.md, Layout")
	}
}

// moduleRoot returns the nearest directory at or above the working
// directory that holds a go.mod file.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod found above the working directory")
		}
		dir = parent
	}
}

// hasGoFiles reports whether dir exists and holds a non-test Go file.
func hasGoFiles(t *testing.T, dir string) bool {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return false
	} else if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() && strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			return true
		}
	}
	return false
}

// TestFixtures runs both checks on the packages under testdata/fixture, a
// module of its own that requires the module in testdata/thirdparty.
func TestFixtures(t *testing.T) {
	// The fixture module must resolve on its own, offline.
	t.Setenv("GOWORK", "off")
	t.Setenv("GOPROXY", "off")
	dir := filepath.Join("testdata", "fixture")
	tests := []struct {
		pkg  string
		want []string
	}{
		{"clean", nil},
		{"importsos", []string{
			"example.com/fixture/importsos imports os",
		}},
		{"indirect", []string{
			"example.com/fixture/indirect imports os via example.com/fixture/wrap",
		}},
		{"viathirdparty", []string{
			"example.com/fixture/viathirdparty imports os via example.com/thirdparty/files",
		}},
		{"renamedtime", []string{
			"renamedtime/renamedtime.go:8: calls time.Now (core packages take time as an argument)",
		}},
		{"randintn", []string{
			"randintn/randintn.go:8: calls math/rand/v2.IntN (core packages take a seeded *rand.Rand argument)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			pkgs, err := List(dir, "./"+tt.pkg)
			if err != nil {
				t.Fatal(err)
			}
			got := CheckImports(pkgs)
			found, err := CheckSource(pkgs)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, found...)
			if !slices.Equal(got, tt.want) {
				t.Errorf("violations of %s:\n%s\nwant:\n%s", tt.pkg, lines(got), lines(tt.want))
			}
		})
	}
}

func TestForbidden(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"net", true},
		{"net/http", true},
		{"net/netip", false},
		{"io/ioutil", true},
		{"path/filepath", true},
		{"crypto/tls", true},
		{"runtime/pprof", true},
		{"io", false},
		{"path", false},
		{"crypto/sha256", false},
		{"netip", false},
		{"network/x", false},
		{"os", true},
		{"os/exec", true},
		{"osutil", false},
		{"syscall", true},
		{"golang.org/x/sys/unix", true},
		{"golang.org/x/sync/errgroup", false},
		{"log", true},
		{"log/slog", true},
		{"math/rand", true},
		{"math/rand/v2", false},
		{"unsafe", true},
		{"time", false},
		{"crypto/rand", false},
		{"encoding/binary", false},
	}
	for _, tt := range tests {
		if got := Forbidden(tt.path); got != tt.want {
			t.Errorf("Forbidden(%q) = %v; want %v", tt.path, got, tt.want)
		}
	}
}

func TestCheckImports(t *testing.T) {
	// Module m has core packages m/a and m/b. a imports b; b imports
	// m/helper, which imports os and x.org/lib; x.org/lib imports log/slog.
	// time imports syscall, which must not count.
	std := func(path string, imports ...string) *Package {
		return &Package{ImportPath: path, Standard: true, DepOnly: true, Imports: imports}
	}
	dep := func(path string, imports ...string) *Package {
		return &Package{ImportPath: path, DepOnly: true, Imports: imports}
	}
	pkgs := []*Package{
		std("syscall"),
		std("os", "syscall"),
		std("log/slog", "os"),
		std("time", "syscall"),
		std("net/netip"),
		dep("x.org/lib", "log/slog", "time"),
		dep("m/helper", "os", "x.org/lib"),
		{ImportPath: "m/b", Imports: []string{"m/helper", "net/netip", "time"}},
		{ImportPath: "m/a", Imports: []string{"m/b", "time"}},
	}
	got := CheckImports(pkgs)
	want := []string{
		"m/b imports os via m/helper",
		"m/b imports log/slog via m/helper -> x.org/lib",
		"m/a imports os via m/b -> m/helper",
		"m/a imports log/slog via m/b -> m/helper -> x.org/lib",
	}
	if !slices.Equal(got, want) {
		t.Errorf("CheckImports =\n%s\nwant:\n%s", lines(got), lines(want))
	}
}

func TestCheckFile(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // "package p" is line 1
	}{
		{
			name: "clock",
			src: `import "time"
				func f() time.Duration { return time.Since(time.Now()) }`,
			want: []string{
				"x.go:3: calls time.Since (core packages take time as an argument)",
				"x.go:3: calls time.Now (core packages take time as an argument)",
			},
		},
		{
			name: "wait",
			src: `import "time"
				func f() { time.Sleep(time.Second); <-time.After(1) }
				var tick = time.NewTicker`,
			want: []string{
				"x.go:3: calls time.Sleep (core packages return a deadline instead of waiting)",
				"x.go:3: calls time.After (core packages return a deadline instead of waiting)",
				"x.go:4: uses time.NewTicker (core packages return a deadline instead of waiting)",
			},
		},
		{
			name: "time values",
			src: `import "time"
				func f(now time.Time) time.Time { return now.Add(time.Second).Truncate(time.Unix(0, 0).Sub(now)) }`,
		},
		{
			name: "crypto rand",
			src: `import crand "crypto/rand"
				import "io"
				func f(b []byte, r io.Reader) { crand.Read(b); var _ io.Reader = crand.Reader; crand.Int(r, nil) }`,
			want: []string{
				"x.go:4: calls crypto/rand.Read (core packages take entropy as an io.Reader argument)",
				"x.go:4: uses crypto/rand.Reader (core packages take entropy as an io.Reader argument)",
			},
		},
		{
			name: "rand globals",
			src: `import "math/rand/v2"
				func f(s []int) { rand.Shuffle(len(s), nil); _ = rand.N[int64](5); _ = (rand.Uint64)() }`,
			want: []string{
				"x.go:3: calls math/rand/v2.Shuffle (core packages take a seeded *rand.Rand argument)",
				"x.go:3: calls math/rand/v2.N (core packages take a seeded *rand.Rand argument)",
				"x.go:3: calls math/rand/v2.Uint64 (core packages take a seeded *rand.Rand argument)",
			},
		},
		{
			name: "seeded rand",
			src: `import "math/rand/v2"
				var r *rand.Rand = rand.New(rand.NewPCG(1, 2))
				var z = rand.NewZipf(r, 2, 1, 10)
				func f() int { return r.IntN(10) }`,
		},
		{
			name: "shadowed import",
			src: `import "math/rand/v2"
				import "time"
				type clock struct{}
				func (clock) Now() int { return 0 }
				func f(rand *rand.Rand) int { time := clock{}; return rand.IntN(time.Now()) }`,
		},
		{
			name: "fmt",
			src: `import "fmt"
				import "io"
				func f(w io.Writer) { fmt.Println(); fmt.Fprintln(w); _ = fmt.Sprint(); var x int; fmt.Sscan("1", &x); fmt.Scanf("%d", &x) }`,
			want: []string{
				"x.go:4: calls fmt.Println (core packages do no I/O)",
				"x.go:4: calls fmt.Scanf (core packages do no I/O)",
			},
		},
		{
			name: "dot import",
			src: `import . "time"
				func f() Time { return Now() }`,
			want: []string{
				"x.go:2: dot-imports time (uses of its names cannot be checked)",
			},
		},
		{
			name: "value use",
			src:  "import \"time\"\nvar _ = time.Now",
			want: []string{"x.go:3: uses time.Now (core packages take time as an argument)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkFile("x.go", []byte("package p\n"+tt.src), "p", nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("checkFile(%q) =\n%s\nwant:\n%s", tt.src, lines(got), lines(tt.want))
			}
		})
	}
}

func TestCheckFileSkipsOtherPackages(t *testing.T) {
	src := "//go:build ignore\n\npackage main\n\nimport \"time\"\n\nvar _ = time.Now()\n"
	got, err := checkFile("gen.go", []byte(src), "p", nil)
	if err != nil || got != nil {
		t.Errorf("checkFile(package main, want p) = %q, %v; want nil, nil", got, err)
	}
}

func TestDefaultName(t *testing.T) {
	tests := []struct{ path, want string }{
		{"time", "time"},
		{"crypto/rand", "rand"},
		{"math/rand/v2", "rand"},
		{"example.com/m/v3", "m"},
		{"example.com/v1", "v1"},
		{"v2", "v2"},
	}
	for _, tt := range tests {
		if got := defaultName(tt.path); got != tt.want {
			t.Errorf("defaultName(%q) = %q; want %q", tt.path, got, tt.want)
		}
	}
}

// lines formats violations one per line for failure messages.
func lines(s []string) string {
	if len(s) == 0 {
		return "\t(none)"
	}
	return "\t" + strings.Join(s, "\n\t")
}
