package peertest

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// ChronyConfig configures the chronyd that StartChrony starts. The zero value
// serves stratum 10.
type ChronyConfig struct {
	// Stratum is the stratum chronyd serves (its "local stratum"), 1 to
	// 15; 0 means 10, chrony's default.
	Stratum int
	// Extra holds more chrony.conf directives, one a line, such as
	// "ratelimit interval 1 burst 4".
	Extra string
}

// StartChrony starts chronyd serving NTP on a free UDP port of 127.0.0.1 from
// its local reference, with no sources, and returns once it has bound that
// port. chronyd answers as synchronized from its first reply on: leap 0, the
// configured stratum, reference ID 127.127.1.1, root delay and dispersion 0.
// It is stopped when t ends.
func StartChrony(t testing.TB, c ChronyConfig) *Peer {
	t.Helper()
	if c.Stratum == 0 {
		c.Stratum = 10
	}
	checkStratum(t, c.Stratum)
	p, tools, dir := newChronyd(t, "chrony")
	runChronyd(t, p, tools, chronyConf(c, p.Addr.Port(), dir), dir)
	return p
}

// newChronyd finds chronyd, the other tools named and, as root, setpriv
// (tools holds them in that order), reads chronyd's version, and makes the
// Peer of a chronyd on a free UDP port of 127.0.0.1 with its files in dir.
func newChronyd(t testing.TB, name string, others ...string) (p *Peer, tools []string, dir string) {
	t.Helper()
	names := append([]string{"chronyd"}, others...)
	if isRoot() {
		names = append(names, "setpriv")
	}
	tools = needTools(t, names...)
	version, err := versionOf(tools[0], "version ", "-v")
	if err != nil {
		t.Fatalf("peertest: %v", err)
	}
	port, err := freeUDPPort()
	if err != nil {
		t.Fatalf("peertest: %v", err)
	}
	dir = t.TempDir()
	p = &Peer{
		Name:    name,
		Version: version,
		Addr:    netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), port),
		logPath: filepath.Join(dir, "chronyd.log"),
	}
	return p, tools, dir
}

// runChronyd writes conf to dir and starts the chronyd of p with it, as
// newChronyd found it in tools.
func runChronyd(t testing.TB, p *Peer, tools []string, conf []byte, dir string) {
	t.Helper()
	path := filepath.Join(dir, "chrony.conf")
	if err := os.WriteFile(path, conf, 0o644); err != nil {
		t.Fatalf("peertest: %v", err)
	}
	// -x: never touch the clock. -d: stay in the foreground and log to
	// stderr. -4: IPv4 sockets only, so nothing listens on [::].
	argv := []string{tools[0], "-x", "-d", "-4", "-f", path}
	if isRoot() {
		// -u root: as root chronyd would switch to its own user, and
		// that switch clears the parent-death signal. It keeps no
		// CAP_SYS_TIME either way.
		argv = dropSysTime(tools[len(tools)-1], append(argv, "-u", "root")...)
	} else {
		// -U: start without root; serving on a high port needs nothing.
		argv = append(argv, "-U")
	}
	start(t, p, exec.Command(argv[0], argv[1:]...))
}

// chronyConf returns the configuration of a chronyd serving on port, with its
// files in dir.
func chronyConf(c ChronyConfig, port uint16, dir string) []byte {
	// No driftfile: with -x chronyd never steers, so there is no drift to
	// keep. cmdport 0 and bindcmdaddress / turn off the monitoring port and
	// the command socket, whose default path all instances would share.
	return fmt.Appendf(nil, `# chronyd for a test: serves its local reference, has no sources.
port %d
bindaddress 127.0.0.1
allow 127.0.0.0/8
local stratum %d
cmdport 0
bindcmdaddress /
pidfile %s
%s
`, port, c.Stratum, filepath.Join(dir, "chronyd.pid"), c.Extra)
}

// freeUDPPort returns a UDP port of 127.0.0.1 that was free a moment ago.
// Another process could take it before the daemon binds it; the kernel picks
// ephemeral ports at random, so that is rare, and waitBound then fails
// instead of mistaking the other socket for the daemon's.
func freeUDPPort() (uint16, error) {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free UDP port: %w", err)
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port), nil
}
