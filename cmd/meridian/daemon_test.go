package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/peertest"
)

func TestCheckConfigExamples(t *testing.T) {
	files := []string{"../../examples/local-server.toml", "../../examples/mirror.toml"}
	code, out, errs := runArgs(t, append([]string{"check-config"}, files...)...)
	if code != exitOK {
		t.Fatalf("check-config examples: exit %d\n%s", code, errs)
	}
	for _, f := range files {
		if !strings.Contains(out, f+": OK") {
			t.Errorf("output lacks %q:\n%s", f+": OK", out)
		}
	}
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "meridian.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckConfigErrors(t *testing.T) {
	good := writeConfig(t, "[server]\nlisten = [\"127.0.0.1:1123\"]\n")
	bad := writeConfig(t, "[server]\nlisten = [\"127.0.0.1:1123\"]\nlocal-stratum = 99\nworkerz = 2\n")
	code, out, errs := runArgs(t, "check-config", good, bad)
	if code != exitFailure {
		t.Errorf("exit %d; want %d", code, exitFailure)
	}
	if !strings.Contains(out, good+": OK") || strings.Contains(out, bad+": OK") {
		t.Errorf("stdout:\n%s", out)
	}
	for _, want := range []string{bad + ":3:", "local-stratum", bad + ":4:", "workerz"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if code, _, errs := runArgs(t, "check-config", filepath.Join(t.TempDir(), "missing.toml")); code != exitFailure ||
		!strings.Contains(errs, "missing.toml") {
		t.Errorf("missing file: exit %d, stderr %q", code, errs)
	}
}

func TestDaemonUsage(t *testing.T) {
	for _, args := range [][]string{{"daemon"}, {"daemon", "--config"}, {"daemon", "--config", "x", "extra"}, {"check-config"}} {
		if code, _, errs := runArgs(t, args...); code != exitUsage || !strings.Contains(errs, "Usage: meridian") {
			t.Errorf("%q: exit %d, stderr %q", args, code, errs)
		}
	}
	code, _, errs := runArgs(t, "daemon", "--config", filepath.Join(t.TempDir(), "missing.toml"))
	if code != exitFailure || !strings.Contains(errs, "missing.toml") {
		t.Errorf("missing config: exit %d, stderr %q", code, errs)
	}
}

// lockedBuffer is an io.Writer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDaemonServesAndStops runs "meridian daemon" in-process, queries it
// with "meridian query" and stops it as SIGTERM would.
func TestDaemonServesAndStops(t *testing.T) {
	port := peertest.FreeUDPPort(t)
	path := writeConfig(t, fmt.Sprintf("[server]\nlisten = [\"127.0.0.1:%d\"]\nworkers = 2\nlocal-stratum = 9\n", port))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"daemon", "--no-privsep", "--config", path}, env{stdout: logs, stderr: logs, rand: rand.Reader})
	}()

	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var out string
	for deadline := time.Now().Add(10 * time.Second); ; {
		var code int
		code, out, _ = runArgs(t, "query", "--json", "--timeout", "1s", addr)
		if code == exitOK || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(out, `"stratum": 9`) || !strings.Contains(out, `"127.127.1.1"`) {
		t.Errorf("query output:\n%s\ndaemon log:\n%s", out, logs)
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("daemon exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not stop within 10 s of its context ending")
	}
	if l := logs.String(); !strings.Contains(l, "serving NTP") || !strings.Contains(l, "msg=stopped") ||
		!strings.Contains(l, "answered=") {
		t.Errorf("daemon log lacks start, stop or counters:\n%s", l)
	}
}
