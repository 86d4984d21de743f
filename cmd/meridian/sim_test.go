package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSimList(t *testing.T) {
	code, out, errs := runArgs(t, "sim", "--list")
	if code != exitOK || !strings.Contains(out, "chrony-test1-10us ") || !strings.Contains(out, "chrony-test2-10ms ") {
		t.Errorf("meridian sim --list = %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
}

func TestSimRuns(t *testing.T) {
	code, out, errs := runArgs(t, "sim", "--seeds", "2", "--json", "chrony-test2-1ms")
	if code != exitOK {
		t.Fatalf("meridian sim = %d\nstderr: %s", code, errs)
	}
	var j simJSON
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &j); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if j.Scenario != "chrony-test2-1ms" || j.Seeds != 2 || j.RMSOffset.Mean <= 0 || j.ChronyRMS == nil ||
		j.RMSOffset.Mean >= *j.ChronyRMS || j.NotConverged != 0 {
		t.Errorf("result %+v; want 2 seeds of chrony-test2-1ms, converged, below chrony's RMS", j)
	}
	if !strings.Contains(errs, "[1/1] chrony-test2-1ms: 2 runs in") {
		t.Errorf("no progress line on stderr: %q", errs)
	}
	code, out, _ = runArgs(t, "sim", "--seeds", "1", "chrony-test2-10us")
	if code != exitOK || !strings.Contains(out, "RMS offset µs") || !strings.Contains(out, "chrony-test2-10us") {
		t.Errorf("table output = %d: %s", code, out)
	}
}

func TestSimCommandLine(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--seeds", "0"}, "--seeds must be between 1 and 10000"},
		{[]string{"--seeds", "10001"}, "--seeds must be between 1 and 10000"},
		{[]string{"--workers", "0"}, "--workers must be between 1 and 1024"},
		{[]string{"no-such-scenario"}, `no scenario is called "no-such-scenario"`},
	} {
		code, out, errs := runArgs(t, append([]string{"sim"}, tt.args...)...)
		if code != exitUsage || out != "" || !strings.Contains(errs, tt.want) || !strings.Contains(errs, "Usage: meridian sim") {
			t.Errorf("meridian sim %q = %d\nstdout: %s\nstderr: %s\nwant %d and %q with the usage", tt.args, code, out, errs, exitUsage, tt.want)
		}
	}
}
