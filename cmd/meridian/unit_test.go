package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	seccomp "github.com/elastic/go-seccomp-bpf"

	"github.com/meridian-ntp/meridian/internal/peertest"
	"github.com/meridian-ntp/meridian/internal/privsep"
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

// TestSystemdUnitFilter: the unit's own system call filter (systemd's,
// around the daemon's) lets through every call the daemon's filters allow
// any of its processes (the keeper's list holds them all, the XDP fast
// path's bpf included): a call systemd forbids would kill the daemon with
// SIGSYS. systemd-analyze expands the unit's groups.
func TestSystemdUnitFilter(t *testing.T) {
	analyze := peertest.Tool(t, "systemd-analyze")
	b, err := os.ReadFile("../../dist/meridian.service")
	if err != nil {
		t.Fatal(err)
	}
	var allow, deny []string
	for _, line := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "SystemCallFilter=")
		if !ok {
			continue
		}
		if rest, inverted := strings.CutPrefix(v, "~"); inverted {
			deny = append(deny, strings.Fields(rest)...)
		} else {
			allow = append(allow, strings.Fields(v)...)
		}
	}
	expanded := map[string][]string{} // a group's calls
	var expand func(names []string) map[string]bool
	expand = func(names []string) map[string]bool {
		calls := map[string]bool{}
		for _, n := range names {
			if !strings.HasPrefix(n, "@") {
				calls[n] = true
				continue
			}
			members, ok := expanded[n]
			if !ok {
				out, err := exec.Command(analyze, "syscall-filter", "--no-pager", n).Output()
				if err != nil {
					t.Fatalf("systemd-analyze syscall-filter %s: %v", n, err)
				}
				for _, l := range strings.Split(string(out), "\n")[1:] {
					if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
						members = append(members, l)
					}
				}
				expanded[n] = members
			}
			for c := range expand(members) {
				calls[c] = true
			}
		}
		return calls
	}
	allowed, denied := expand(allow), expand(deny)
	policy, err := privsep.SeccompPolicy(privsep.RoleKeeper, privsep.FilterKill, privsep.AllowXDPMaps)
	if err != nil {
		t.Fatal(err)
	}
	checked := map[string]bool{}
	for _, g := range policy.Syscalls {
		if g.Action != seccomp.ActionAllow {
			continue
		}
		names := append([]string(nil), g.Names...)
		for _, c := range g.NamesWithCondtions {
			names = append(names, c.Name)
		}
		for _, c := range names {
			if checked[c] {
				continue
			}
			checked[c] = true
			if !allowed[c] || denied[c] {
				t.Errorf("the daemon calls %s, which the unit's SystemCallFilter does not let through", c)
			}
		}
	}
	t.Logf("%d calls of the daemon's filters checked against the unit's %d", len(checked), len(allowed)-len(denied))
}
