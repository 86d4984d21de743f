package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestSystemdUnit: the shipped unit runs the daemon as the docs say, and
// its hardening leaves the daemon what it needs: the clock (no
// ProtectClock, CAP_SYS_TIME and the @clock calls), its children (the
// capabilities and calls to start them as their user), and its state and
// runtime directories.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("../../dist/meridian.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	keys := map[string][]string{}
	for _, line := range strings.Split(unit, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			keys[k] = append(keys[k], v)
		}
	}
	get := func(k string) string { return strings.Join(keys[k], " ") }
	if !regexp.MustCompile(`^/usr/bin/meridian daemon --config /\S+\.toml$`).MatchString(get("ExecStart")) {
		t.Errorf("ExecStart=%s", get("ExecStart"))
	}
	if strings.Contains(get("ProtectClock"), "yes") {
		t.Error("ProtectClock=yes would keep the daemon from steering the clock")
	}
	for _, c := range []string{"CAP_SYS_TIME", "CAP_SETUID", "CAP_SETGID", "CAP_NET_BIND_SERVICE", "CAP_KILL"} {
		if !strings.Contains(get("CapabilityBoundingSet"), c) {
			t.Errorf("CapabilityBoundingSet lacks %s", c)
		}
	}
	for _, g := range []string{"@clock", "@setuid", "@process", "@system-service"} {
		if !strings.Contains(get("SystemCallFilter"), g) {
			t.Errorf("SystemCallFilter lacks %s", g)
		}
	}
	for k, want := range map[string]string{"ProtectSystem": "strict", "NoNewPrivileges": "yes",
		"StateDirectory": "meridian meridian-keeper", "RuntimeDirectory": "meridian"} {
		if get(k) != want {
			t.Errorf("%s=%s; want %s", k, get(k), want)
		}
	}
}
