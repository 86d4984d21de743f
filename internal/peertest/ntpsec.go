package peertest

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// NTPsecConfig configures the ntpd that StartNTPsec starts. The zero value
// serves stratum 1 with reference ID "LOCL".
type NTPsecConfig struct {
	// Stratum is the stratum ntpd serves, 1 to 15; 0 means 1. ntpd serves
	// one more than the stratum of its local clock driver, so the driver is
	// given Stratum-1.
	Stratum int
	// RefID is the local clock driver's reference ID: 1 to 4 ASCII letters
	// or digits; "" means "LOCL". ntpd serves it only at stratum 1; at a
	// higher stratum it serves the driver's address, 127.127.1.0.
	RefID string
	// Extra holds more ntp.conf directives, one a line. Clients on
	// loopback are served without restrictions unless Extra adds some to
	// "restrict 127.0.0.1", such as "restrict 127.0.0.1 limited kod".
	Extra string
}

// StartNTPsec starts NTPsec's ntpd in a new network namespace, serving NTP on
// 127.0.0.1:123 there from its local clock driver, and returns once it has
// bound that port. Reach it with p.Command. It is stopped when t ends.
//
// ntpd first answers unsynchronized (leap 3, stratum 0, reference ID "INIT",
// which a client may take for a kiss code) and reports the configured
// stratum about a second after start. Its root dispersion starts near 8 s
// and halves every 2 s (below 1 s after about 7 s, 10 ms at last), so a
// client that checks the root distance needs a few seconds more. Loopback
// clients are not rate-limited.
//
// It needs root, for the namespace; without root the test is skipped (or
// fails in CI).
func StartNTPsec(t testing.TB, c NTPsecConfig) *Peer {
	t.Helper()
	if !isRoot() {
		unavailable(t, "ntpsec needs root: ntpd listens on port 123 only, so it runs in a network namespace of its own")
	}
	if c.Stratum == 0 {
		c.Stratum = 1
	}
	checkStratum(t, c.Stratum)
	if c.RefID == "" {
		c.RefID = "LOCL"
	}
	if !validRefID(c.RefID) {
		t.Fatalf("peertest: reference ID %q is not 1 to 4 ASCII letters or digits", c.RefID)
	}
	ntpd, err := ntpdPath()
	if err != nil {
		unavailable(t, "%v; %s", err, installHint)
	}
	tools := needTools(t, "setpriv")
	version, err := versionOf(ntpd, "ntpsec-", "--version")
	if err != nil {
		t.Fatalf("peertest: %v", err)
	}

	dir := t.TempDir()
	p := &Peer{
		Name:    "ntpsec",
		Version: version,
		Addr:    netip.MustParseAddrPort("127.0.0.1:123"),
		logPath: filepath.Join(dir, "ntpd.log"),
	}
	conf := filepath.Join(dir, "ntp.conf")
	if err := os.WriteFile(conf, ntpsecConf(c, dir), 0o644); err != nil {
		t.Fatalf("peertest: %v", err)
	}
	// -n: stay in the foreground. -l: log to the file Log reads (without
	// it, part of the log goes to a buffered stdout).
	argv := dropSysTime(tools[0], ntpd, "-n", "-c", conf, "-l", p.logPath)
	startInNetns(t, p, argv)
	return p
}

// ntpsecConf returns the configuration of an ntpd with its files in dir.
func ntpsecConf(c NTPsecConfig, dir string) []byte {
	// prefer: ntpd ignores a local clock driver that is not preferred for
	// its first 300 s ("orphanwait"). minpoll 0: the driver is read every
	// 2 s instead of 64 s, which is what makes the root dispersion fall
	// fast. No driftfile and no leapfile; statistics (off) would go to dir.
	// "disable kernel" only keeps ntpd off the kernel PLL: it still calls
	// ntp_adjtime at start, and what stops it is the missing CAP_SYS_TIME.
	// The built-in "restrict default" has "limited", which silently drops a
	// client that polls faster than about once a second after a burst of
	// 20, and "noquery"; the loopback entries lift both.
	return fmt.Appendf(nil, `# ntpd for a test: serves its local clock driver, has no sources.
server 127.127.1.0 minpoll 0 maxpoll 0 prefer
fudge 127.127.1.0 stratum %d refid %s
tos minclock 1 minsane 1
interface ignore wildcard
interface listen 127.0.0.1
restrict 127.0.0.1
restrict ::1
disable kernel
statsdir %s/
%s
`, c.Stratum-1, c.RefID, dir, c.Extra)
}

// ntpdPath returns the path of NTPsec's ntpd in the unpacked tree:
// $MERIDIAN_NTPSEC_ROOT, or .peers/ntpsec at the repository root.
func ntpdPath() (string, error) {
	root := os.Getenv("MERIDIAN_NTPSEC_ROOT")
	if root == "" {
		repo, err := repoRoot()
		if err != nil {
			return "", fmt.Errorf("find ntpsec: %w", err)
		}
		root = filepath.Join(repo, ".peers", "ntpsec")
	}
	path := filepath.Join(root, "usr", "sbin", "ntpd")
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("ntpsec's ntpd: %w", err)
	}
	return path, nil
}

// validRefID reports whether s can serve as a reference ID in ntp.conf.
func validRefID(s string) bool {
	if len(s) < 1 || len(s) > 4 {
		return false
	}
	for _, r := range s {
		if !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}
