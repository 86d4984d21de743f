package peertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Busybox returns the path of a BusyBox that has the ntpd applet, and its
// version, such as "1.35.0". Debian's busybox packages leave ntpd out, so
// .ci/install-peers builds one from Debian's source package into
// .peers/busybox at the repository root; $MERIDIAN_BUSYBOX names another.
// Without one, the test is skipped (or fails in CI).
func Busybox(t testing.TB) (path, version string) {
	t.Helper()
	path, err := busyboxPath()
	if err != nil {
		unavailable(t, "%v; %s", err, installHint)
	}
	out, err := exec.Command(path, "--list").Output()
	if err != nil {
		t.Fatalf("peertest: %s --list: %v", path, err)
	}
	if !slices.Contains(strings.Fields(string(out)), "ntpd") {
		unavailable(t, "%s has no ntpd applet; %s", path, installHint)
	}
	version, err = versionOf(path, "BusyBox v", "--help")
	if err != nil {
		t.Fatalf("peertest: %v", err)
	}
	return path, version
}

// busyboxPath returns $MERIDIAN_BUSYBOX, or the BusyBox in .peers/busybox
// at the repository root.
func busyboxPath() (string, error) {
	path := os.Getenv("MERIDIAN_BUSYBOX")
	if path == "" {
		repo, err := repoRoot()
		if err != nil {
			return "", fmt.Errorf("find busybox: %w", err)
		}
		path = filepath.Join(repo, ".peers", "busybox", "bin", "busybox")
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("busybox with ntpd: %w", err)
	}
	return path, nil
}
