package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"os"
	"strings"
	"testing"
)

func runArgs(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, env{stdout: &out, stderr: &errb, rand: rand.Reader})
	return code, out.String(), errb.String()
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{nil, exitUsage, "", "Commands:"},
		{[]string{"help"}, exitOK, "Commands:", ""},
		{[]string{"--help"}, exitOK, "Commands:", ""},
		{[]string{"help", "query"}, exitOK, "Usage: meridian query", ""},
		{[]string{"version"}, exitOK, "meridian ", ""},
		{[]string{"frobnicate"}, exitUsage, "", `unknown command "frobnicate"`},
		{[]string{"query"}, exitUsage, "", "no server given"},
		{[]string{"query", "-h"}, exitOK, "", "-timeout"},
		{[]string{"query", "--bogus", "x"}, exitUsage, "", "flag provided but not defined: -bogus"},
		{[]string{"query", "-4", "-6", "x"}, exitUsage, "", "-4 and -6 exclude each other"},
		{[]string{"query", "--count", "0", "x"}, exitUsage, "", "--count must be between 1 and 1000"},
		{[]string{"query", "--count", "1001", "x"}, exitUsage, "", "--count must be between 1 and 1000"},
		{[]string{"query", "--interval", "1ms", "x"}, exitUsage, "", "--interval must be at least 100ms"},
		{[]string{"query", "--timeout", "0s", "x"}, exitUsage, "", "--timeout must be above 0"},
		{[]string{"query", "--timeout", "2h", "x"}, exitUsage, "", "at most 1h"},
		{[]string{"query", "--timeout", "soon", "x"}, exitUsage, "", "invalid value"},
		// Flags after the server, and a resolution failure that needs no network.
		{[]string{"query", "bad:port:x", "--json"}, exitFailure, `"ok": false`, ""},
		{[]string{"query", "[::1]:0"}, exitFailure, "", "invalid port"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errs := runArgs(t, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.inStdout) || !strings.Contains(errs, tt.inStderr) {
				t.Errorf("meridian %q = %d\nstdout: %s\nstderr: %s\nwant %d, stdout containing %q, stderr containing %q",
					tt.args, code, out, errs, tt.code, tt.inStdout, tt.inStderr)
			}
		})
	}
}

func TestParseInterleaved(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	j := fs.Bool("json", false, "")
	n := fs.Int("count", 1, "")
	pos, err := parseInterleaved(fs, []string{"a", "--json", "b", "--count", "3", "c", "--", "--not-a-flag"})
	if err != nil || !*j || *n != 3 || strings.Join(pos, ",") != "a,b,c,--not-a-flag" {
		t.Errorf("parseInterleaved = %q, %v (json=%v count=%d)", pos, err, *j, *n)
	}
}

// TestDocsListEveryFlag keeps the README and the manual page true: every
// flag of every command must be documented in both.
func TestDocsListEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	man, err := os.ReadFile("../../docs/man/meridian.1")
	if err != nil {
		t.Fatal(err)
	}
	manText := strings.ReplaceAll(string(man), `\-`, "-")
	for _, cmd := range []string{"query", "daemon", "bench", "sim", "status"} {
		_, _, help := runArgs(t, cmd, "-h")
		for _, spelled := range helpFlags(help) {
			if !strings.Contains(string(readme), "`"+spelled+" ") && !strings.Contains(string(readme), "`"+spelled+"`") {
				t.Errorf("README.md does not document %s flag %s", cmd, spelled)
			}
			if !strings.Contains(manText, ".B "+spelled+"\n") && !strings.Contains(manText, ".BI "+spelled+" ") {
				t.Errorf("docs/man/meridian.1 does not document %s flag %s", cmd, spelled)
			}
		}
	}
	for _, cmd := range []string{"daemon", "check-config", "query", "bench", "sim", "status", "sources", "version", "help"} {
		manCmd := strings.ReplaceAll(cmd, "-", `\-`)
		if !strings.Contains(usage, "  "+cmd+" ") || !strings.Contains(string(man), ".SS "+manCmd+"\n") {
			t.Errorf("command %s missing from usage or manual page", cmd)
		}
	}
}

// helpFlags returns the flags listed in a command's -h output, spelled as
// a user types them.
func helpFlags(help string) []string {
	var flags []string
	for _, line := range strings.Split(help, "\n") {
		// The flag package lists each flag as "  -name ...".
		f, ok := strings.CutPrefix(line, "  -")
		if !ok || f == "" || f[0] == ' ' || f[0] == '-' {
			continue
		}
		name := strings.Fields(f)[0]
		if len(name) == 1 {
			flags = append(flags, "-"+name)
		} else {
			flags = append(flags, "--"+name)
		}
	}
	return flags
}
