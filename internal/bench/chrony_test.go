package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/peertest"
)

// TestChrony loads a real chronyd at 1000 requests/s for 2 s: every
// reply must be valid and answer its request, and chronyd's CPU time is
// measured. Its loss is only logged: a chronyd starved of CPU by a busy
// machine may overflow its socket's buffer.
func TestChrony(t *testing.T) {
	p := peertest.StartChrony(t, peertest.ChronyConfig{})
	pid, err := pidOfUDP(p.Addr)
	if err != nil {
		t.Fatalf("find chronyd's process: %v", err)
	}
	r := mustRun(t, context.Background(), Config{Server: p.Addr, Rate: 1000, Duration: 2 * time.Second,
		Warmup: 200 * time.Millisecond, Timeout: MaxTimeout, ServerPID: pid})
	scheduled(t, r, 2000)
	t.Logf("chronyd answered %d of %d requests (%d scheduled)", r.Answered, r.Sent, 2000)
	if r.Rejected() != 0 || r.Invalid() != 0 {
		t.Errorf("chronyd's replies: %d rejected, %d invalid; want none\n%s", r.Rejected(), r.Invalid(), p.Log())
	}
	if r.Answered+r.Lost != r.Sent {
		t.Errorf("answered %d + lost %d != sent %d", r.Answered, r.Lost, r.Sent)
	}
	if r.CPU == nil {
		t.Error("no CPU figures")
	}
	needSent(t, r, 1)
	if r.Answered == 0 {
		t.Errorf("chronyd answered none of %d requests\n%s", r.Sent, p.Log())
	}
}

// pidOfUDP returns the process that owns the UDP socket bound to the IPv4
// address ap, found through the socket's inode in /proc/net/udp and the
// processes' file descriptors.
func pidOfUDP(ap netip.AddrPort) (int, error) {
	table, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return 0, err
	}
	a := ap.Addr().As4()
	local := fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(a[:]), ap.Port())
	var inode string
	for _, line := range strings.Split(string(table), "\n") {
		if f := strings.Fields(line); len(f) > 9 && f[1] == local {
			inode = "socket:[" + f[9] + "]"
		}
	}
	if inode == "" {
		return 0, fmt.Errorf("no socket bound to %v", ap)
	}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		// Descriptors that close meanwhile fail Readlink; skip them.
		if target, err := os.Readlink(fd); err == nil && target == inode {
			return strconv.Atoi(strings.Split(fd, "/")[2])
		}
	}
	return 0, fmt.Errorf("no process holds %s", inode)
}
