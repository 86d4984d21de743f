package peertest

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// queryEnv, when set to an address, turns the test binary into the query
// helper that Peer.Command runs inside a peer's network namespace.
const queryEnv = "PEERTEST_QUERY_ADDR"

// queryTimeout bounds how long the query helper waits for a synchronized
// reply. ntpsec needs about 1 s, chrony none.
const queryTimeout = 20 * time.Second

// replyTimeout is how long the query helper waits for each reply while it
// waits for the peer to synchronize; a reply that misses it is retried.
const replyTimeout = time.Second

// burst is how many requests the query helper sends burstGap apart once the
// peer is synchronized, to check that it does not rate-limit loopback
// clients: a peer that does drops replies or sends kiss-o'-death ones. The
// replies may come at any time until drainTimeout after the last request,
// far longer than a peer needs on loopback, so that a busy machine is not
// mistaken for a rate limit.
const (
	burst        = 40
	burstGap     = 10 * time.Millisecond
	drainTimeout = 10 * time.Second
)

// helperTimeout bounds a run of the query helper: the wait for a
// synchronized reply, the burst and the wait for its replies, and time to
// start.
const helperTimeout = queryTimeout + replyTimeout + burst*burstGap + drainTimeout + 10*time.Second

func TestMain(m *testing.M) {
	if addr := os.Getenv(queryEnv); addr != "" {
		os.Exit(queryMain(addr))
	}
	os.Exit(m.Run())
}

// reply holds the fields of an NTP reply that these tests check.
type reply struct {
	Len       int
	LI        int
	Version   int
	Mode      int
	Stratum   int
	Poll      int
	Precision int
	RootDisp  float64 // seconds
	RefID     string  // hex
	After     time.Duration
	Burst     int    // replies to the burst that followed, kisses excepted
	BurstErr  string // the first problem met during the burst
}

func (r reply) synchronized() bool { return r.LI != 3 && r.Stratum != 0 }

// queryMain sends mode-3 requests to addr until a synchronized reply comes
// back or queryTimeout passes, then a burst of requests, prints the last
// reply as JSON, and returns the exit status: 0 if the reply was
// synchronized.
func queryMain(addr string) int {
	c, err := net.Dial("udp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer c.Close()
	start := time.Now()
	var last reply
	for time.Since(start) < queryTimeout {
		// An error (a timeout, or ECONNREFUSED while nothing listens)
		// means no reply this round.
		if r, err := exchange(c, replyTimeout); err == nil {
			last = r
			last.After = time.Since(start)
			if last.synchronized() {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if last.synchronized() {
		var err error
		last.Burst, err = sendBurst(c)
		if err != nil {
			last.BurstErr = err.Error()
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(last); err != nil {
		return 2
	}
	if !last.synchronized() {
		return 1
	}
	return 0
}

// sendBurst sends burst requests burstGap apart on c, without waiting for
// replies, and returns how many were answered by a reply other than a
// kiss-o'-death within drainTimeout of the last, with the first problem met.
func sendBurst(c net.Conn) (int, error) {
	var first error
	note := func(err error) {
		if first == nil {
			first = err
		}
	}
	pending := make(map[uint64]bool)
	for range burst {
		if cookie, err := request(c); err != nil {
			note(err)
		} else {
			pending[cookie] = true
		}
		time.Sleep(burstGap)
	}
	answered := 0
	deadline := time.Now().Add(drainTimeout)
	for len(pending) > 0 {
		r, origin, err := receive(c, deadline, func(o uint64) bool { return pending[o] })
		if err != nil {
			note(fmt.Errorf("%d replies missing: %w", len(pending), err))
			break
		}
		delete(pending, origin)
		if r.Stratum == 0 {
			note(fmt.Errorf("kiss-o'-death %s", r.RefID))
			continue
		}
		answered++
	}
	return answered, first
}

// exchange sends one mode-3 request on c and waits up to timeout for the
// reply to it.
func exchange(c net.Conn, timeout time.Duration) (reply, error) {
	cookie, err := request(c)
	if err != nil {
		return reply{}, err
	}
	r, _, err := receive(c, time.Now().Add(timeout), func(o uint64) bool { return o == cookie })
	return r, err
}

// request sends a mode-3 request on c and returns its transmit timestamp, a
// random cookie that the reply echoes as its origin timestamp.
func request(c net.Conn) (uint64, error) {
	req := make([]byte, 48)
	req[0] = 4<<3 | 3 // LI 0, version 4, mode 3 (client)
	req[2] = 6        // poll 2^6 s
	cookie := rand.Uint64()
	binary.BigEndian.PutUint64(req[40:], cookie) // transmit timestamp
	_, err := c.Write(req)
	return cookie, err
}

// receive reads from c until deadline and returns the first reply whose
// origin timestamp want accepts, with that origin.
func receive(c net.Conn, deadline time.Time, want func(origin uint64) bool) (reply, uint64, error) {
	if err := c.SetReadDeadline(deadline); err != nil {
		return reply{}, 0, err
	}
	buf := make([]byte, 1024)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return reply{}, 0, err
		}
		if n < 48 {
			continue // not an NTP reply
		}
		origin := binary.BigEndian.Uint64(buf[24:])
		if !want(origin) {
			continue // a late reply to an earlier request
		}
		return reply{
			Len:       n,
			LI:        int(buf[0] >> 6),
			Version:   int(buf[0] >> 3 & 7),
			Mode:      int(buf[0] & 7),
			Stratum:   int(buf[1]),
			Poll:      int(int8(buf[2])),
			Precision: int(int8(buf[3])),
			RootDisp:  float64(binary.BigEndian.Uint32(buf[8:])) / 65536,
			RefID:     hex.EncodeToString(buf[12:16]),
		}, origin, nil
	}
}

// query runs the query helper where it reaches p and returns the first
// synchronized reply.
func query(t *testing.T, p *Peer) reply {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), helperTimeout)
	defer cancel()
	cmd := p.CommandContext(ctx, self)
	// The race detector otherwise sleeps 1 s before a process exits.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), queryEnv+"="+p.Addr.String(), "GORACE="+gorace)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var r reply
	if jerr := json.Unmarshal(out, &r); err != nil || jerr != nil {
		t.Fatalf("query %s at %v: %v (last reply %+v, %v)\n%s\n%s log:\n%s", p.Name, p.Addr, err, r, jerr, stderr.String(), p.Name, p.Log())
	}
	t.Logf("%s %s: synchronized reply after %v: %+v", p.Name, p.Version, r.After, r)
	return r
}

// checkReply fails t unless r is a 48-byte version-4 server reply with the
// given stratum and reference ID (hex), echoing the request's poll, and the
// peer answered the whole burst that followed, without a kiss-o'-death.
func checkReply(t *testing.T, r reply, stratum int, refID string) {
	t.Helper()
	if r.Burst != burst {
		t.Errorf("%d of a burst of %d requests answered; want all (first failure: %s)", r.Burst, burst, r.BurstErr)
	}
	if r.Len != 48 || r.Version != 4 || r.Mode != 4 || r.Poll != 6 {
		t.Errorf("reply length %d, version %d, mode %d, poll %d; want 48, 4, 4, 6", r.Len, r.Version, r.Mode, r.Poll)
	}
	if r.Stratum != stratum || r.RefID != refID {
		t.Errorf("reply stratum %d, reference ID %s; want %d, %s", r.Stratum, r.RefID, stratum, refID)
	}
}

// checkNoSysTime fails t if p's process could change the clock, now or
// after an exec: it must lack CAP_SYS_TIME, and when started by root also
// have it removed from its bounding set.
func checkNoSysTime(t *testing.T, p *Peer) {
	t.Helper()
	const capSysTime = 25
	sets := []string{"CapEff", "CapPrm"}
	if isRoot() {
		sets = append(sets, "CapBnd")
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, line := range strings.Split(string(status), "\n") {
		name, value, _ := strings.Cut(line, ":")
		if !slices.Contains(sets, name) {
			continue
		}
		checked++
		caps, err := strconv.ParseUint(strings.TrimSpace(value), 16, 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if caps&(1<<capSysTime) != 0 {
			t.Errorf("%s has CAP_SYS_TIME in %s", p.Name, name)
		}
	}
	if checked != len(sets) {
		t.Errorf("found %d of the capability sets %v in /proc/%d/status", checked, sets, p.cmd.Process.Pid)
	}
}

func TestChrony(t *testing.T) {
	t.Parallel()
	for _, stratum := range []int{0, 3} {
		t.Run(fmt.Sprint("stratum", stratum), func(t *testing.T) {
			t.Parallel()
			p := StartChrony(t, ChronyConfig{Stratum: stratum})
			if p.Name != "chrony" || p.Version == "" || !p.Addr.Addr().IsLoopback() {
				t.Errorf("peer %q %q at %v; want chrony, a version, on loopback", p.Name, p.Version, p.Addr)
			}
			checkNoSysTime(t, p)
			want := stratum
			if want == 0 {
				want = 10
			}
			checkReply(t, query(t, p), want, "7f7f0101") // 127.127.1.1, chrony's local reference
		})
	}
}

func TestNTPsec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		config  NTPsecConfig
		stratum int
		refID   string
	}{
		{NTPsecConfig{}, 1, hex.EncodeToString([]byte("LOCL"))},
		{NTPsecConfig{Stratum: 1, RefID: "TEST"}, 1, hex.EncodeToString([]byte("TEST"))},
		// Above stratum 1 the reference ID is the driver's address.
		{NTPsecConfig{Stratum: 4, RefID: "TEST"}, 4, "7f7f0100"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%+v", tt.config), func(t *testing.T) {
			t.Parallel()
			p := StartNTPsec(t, tt.config)
			if p.Name != "ntpsec" || p.Version == "" || p.Addr != netip.MustParseAddrPort("127.0.0.1:123") {
				t.Errorf("peer %q %q at %v; want ntpsec, a version, at 127.0.0.1:123", p.Name, p.Version, p.Addr)
			}
			checkNoSysTime(t, p)
			checkReply(t, query(t, p), tt.stratum, tt.refID)
		})
	}
}

// TestStop checks that a peer's process has exited once its test is over.
func TestStop(t *testing.T) {
	t.Parallel()
	starts := map[string]func(testing.TB) *Peer{
		"chrony": func(t testing.TB) *Peer { return StartChrony(t, ChronyConfig{}) },
		"ntpsec": func(t testing.TB) *Peer { return StartNTPsec(t, NTPsecConfig{}) },
	}
	for name, start := range starts {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var p *Peer
			if !t.Run("run", func(t *testing.T) { p = start(t) }) || p == nil {
				return // failed or skipped; it says why
			}
			select {
			case <-p.done:
			default:
				t.Errorf("%s (pid %d) still running after its test", name, p.cmd.Process.Pid)
			}
		})
	}
}

func TestBoundUDP(t *testing.T) {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bound := c.LocalAddr().(*net.UDPAddr).AddrPort()
	next := netip.AddrPortFrom(bound.Addr(), bound.Port()+1)
	// It outlives the test, which kills it.
	other := exec.Command("sleep", "600")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer other.Wait()
	defer other.Process.Kill()
	for _, tt := range []struct {
		pid  int
		addr netip.AddrPort
		want bool
	}{
		{os.Getpid(), bound, true},
		{os.Getpid(), next, false},
		{other.Process.Pid, bound, false}, // same namespace, but not its socket
	} {
		if got, err := boundUDP(tt.pid, tt.addr); got != tt.want || err != nil {
			t.Errorf("boundUDP(%d, %v) = %v, %v; want %v, nil", tt.pid, tt.addr, got, err, tt.want)
		}
	}
}

func TestValidRefID(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"LOCL", true}, {"GPS", true}, {"X", true}, {"", false}, {"TOOLONG", false},
		{"A B", false}, {"A\n", false}, {"#", false}, {"ÄÖ", false},
	} {
		if got := validRefID(tt.in); got != tt.want {
			t.Errorf("validRefID(%q) = %v; want %v", tt.in, got, tt.want)
		}
	}
}

// recorder is a testing.TB that records how unavailable ends a test instead
// of ending it.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()           {}
func (r *recorder) Fatal(args ...any) { r.fatal = fmt.Sprint(args...) }
func (r *recorder) Skip(args ...any)  { r.skip = fmt.Sprint(args...) }

func TestUnavailable(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		r := &recorder{TB: t}
		unavailable(r, "chronyd %s", "missing")
		got := r.skip
		if ci == "true" {
			got = r.fatal
		}
		if !strings.Contains(got, "chronyd missing") || (r.fatal == "") != (ci == "") || (r.skip == "") != (ci == "true") {
			t.Errorf("CI=%q: fatal %q, skip %q; want only %s with the reason", ci, r.fatal, r.skip, map[string]string{"": "a skip", "true": "a failure"}[ci])
		}
	}
}

func TestNTPdPath(t *testing.T) {
	t.Setenv("MERIDIAN_NTPSEC_ROOT", t.TempDir())
	if path, err := ntpdPath(); err == nil {
		t.Errorf("ntpdPath() in an empty root = %q, nil; want an error", path)
	}
}
