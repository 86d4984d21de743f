package peertest

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
)

// netnsSeq numbers the namespaces a test binary creates.
var netnsSeq atomic.Int64

// VethPair creates two network namespaces joined by a veth pair, each
// end named veth0, up, with address a in the first namespace and b in
// the second, and the loopback interfaces up. It returns the namespaces'
// names (for "ip -n NAME" and IP); their paths are /run/netns/NAME.
// They are deleted when t ends. It needs root: without root the test is
// skipped (or fails in CI).
func VethPair(t testing.TB, a, b netip.Prefix) (nsA, nsB string) {
	t.Helper()
	if !isRoot() {
		unavailable(t, "network namespaces joined by veth need root")
	}
	ip := needTools(t, "ip")[0]
	n := netnsSeq.Add(1)
	nsA = fmt.Sprintf("meridian-test-%d-%d-a", os.Getpid(), n)
	nsB = fmt.Sprintf("meridian-test-%d-%d-b", os.Getpid(), n)
	for _, ns := range []string{nsA, nsB} {
		IP(t, "netns", "add", ns)
		t.Cleanup(func() {
			// Deleting the namespace removes its end of the veth pair,
			// and with it the other end.
			if out, err := exec.Command(ip, "netns", "del", ns).CombinedOutput(); err != nil {
				t.Logf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
	}
	IP(t, "link", "add", "veth0", "netns", nsA, "type", "veth", "peer", "name", "veth0", "netns", nsB)
	for _, x := range []struct {
		ns   string
		addr netip.Prefix
	}{{nsA, a}, {nsB, b}} {
		IP(t, "-n", x.ns, "link", "set", "lo", "up")
		IP(t, "-n", x.ns, "addr", "add", x.addr.String(), "dev", "veth0")
		IP(t, "-n", x.ns, "link", "set", "veth0", "up")
	}
	return nsA, nsB
}

// IP runs the ip command with args, failing t if it fails (or ending it
// as a missing tool does, if there is no ip).
func IP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command(needTools(t, "ip")[0], args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}
