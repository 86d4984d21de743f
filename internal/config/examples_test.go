package config

import (
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

const examplesDir = "../../examples"

// TestExamples loads every shipped example, as "meridian check-config"
// would in CI (THREATS G4).
func TestExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.toml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("examples: %v, %v; want at least 2 files", files, err)
	}
	for _, f := range files {
		_, warnings, err := Load(f)
		if err != nil {
			t.Errorf("Load(%s) = %v", f, err)
		}
		for _, w := range warnings {
			t.Logf("Load(%s): warning: %s", f, w) // a checkout's mode is not the example's fault
		}
	}
}

func TestExampleLocalServer(t *testing.T) {
	c := loadExample(t, "local-server.toml")
	if want := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1123")}; !slices.Equal(c.Server.Listen, want) {
		t.Errorf("Listen = %v; want %v", c.Server.Listen, want)
	}
	if c.Server.LocalStratum != 10 || c.Mirror.Enabled() {
		t.Errorf("LocalStratum = %d, mirror %v; want 10, off", c.Server.LocalStratum, c.Mirror.Enabled())
	}
	if c.Server.RateLimit != Default().Server.RateLimit {
		t.Errorf("RateLimit = %+v; want the defaults", c.Server.RateLimit)
	}
}

func TestExampleMirror(t *testing.T) {
	c := loadExample(t, "mirror.toml")
	if want := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1123")}; !slices.Equal(c.Server.Listen, want) {
		t.Errorf("Listen = %v; want %v", c.Server.Listen, want)
	}
	m := c.Mirror
	if m.Upstream != "127.0.0.1:11123" || m.Host != "127.0.0.1" || m.Port != 11123 || m.Poll != 2*time.Second {
		t.Errorf("Mirror = %+v; want upstream 127.0.0.1:11123 polled every 2s", m)
	}
	if !c.Server.RateLimit.Enabled || c.Server.LocalStratum != 0 {
		t.Errorf("rate limiting %v, local stratum %d; want on, 0", c.Server.RateLimit.Enabled, c.Server.LocalStratum)
	}
}

func loadExample(t *testing.T, name string) *Config {
	t.Helper()
	c, _, err := Load(filepath.Join(examplesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
