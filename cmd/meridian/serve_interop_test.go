package main

// Interop tests of "meridian daemon" as a server: real NTP clients (chronyd,
// NTPsec's ntpdig, sntp and ntpdate, BusyBox's ntpd) take time from it, and
// in mirror mode it serves the time of a real chronyd. Every client shares
// this machine's clock with Meridian, so a correct exchange measures an
// offset no larger than half its round-trip delay.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/peertest"
	"github.com/meridian-ntp/meridian/internal/query"
	"github.com/meridian-ntp/meridian/internal/source"
)

const (
	// serveWait bounds each wait for a server or client to get to a state
	// that takes a few seconds on an idle machine.
	serveWait = 30 * time.Second
	// toolTimeout bounds one run of a one-shot client.
	toolTimeout = 60 * time.Second
	// offsetSlack is what an offset may exceed half the round-trip delay
	// by: the rounding of the printed values and the clocks' precision.
	offsetSlack = 100e-6
)

// startMeridian starts "meridian daemon" with the given configuration,
// serving on addr (in a network namespace of its own if netns), and waits
// until it serves the local clock or mirrored time at stratum. It is stopped
// when t ends.
func startMeridian(t *testing.T, conf string, addr netip.AddrPort, netns bool, stratum uint8) (*peertest.Peer, string) {
	t.Helper()
	m, bin, _ := startMeridianCounted(t, conf, addr, netns, stratum)
	return m, bin
}

// startMeridianCounted is startMeridian, and also returns the number of
// queries it sent before the daemon served stratum.
func startMeridianCounted(t *testing.T, conf string, addr netip.AddrPort, netns bool, stratum uint8) (*peertest.Peer, string, int) {
	t.Helper()
	bin := meridianBinary(t)
	// As root, the daemon separates its privileges, its children running
	// as nobody: they read the configuration too.
	if !strings.Contains(conf, "[privsep]") {
		conf += "\n" + privsepTable()
	}
	path := filepath.Join(sharedDir(t), "meridian.toml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("meridian version: %v", err)
	}
	watch := watchFilters(t)
	m := peertest.StartServer(t, peertest.ServerConfig{
		Name:    "meridian",
		Version: strings.TrimSpace(strings.TrimPrefix(string(out), "meridian ")),
		Argv:    []string{bin, "daemon", "--config", path},
		Addr:    addr,
		Netns:   netns,
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("meridian log:\n%s", m.Log())
		}
	})
	watch(m) // its check runs before the log is shown
	// The sockets are bound a moment before the served state is
	// published: wait for it, so that no client sees the first instant.
	queries := waitServing(t, m, bin, addr, stratum, func() bool { return true })
	t.Logf("meridian %s serving on %v (network namespace of its own: %v)", m.Version, addr, netns)
	return m, bin, queries
}

// waitServing queries m at addr with meridian query (in m's network
// namespace) until it answers at stratum and done says so too, and
// returns the number of queries sent.
func waitServing(t *testing.T, m *peertest.Peer, bin string, addr netip.AddrPort, stratum uint8, done func() bool) int {
	t.Helper()
	deadline := time.Now().Add(serveWait)
	queries := 0
	for {
		rs, raw := runQueryJSON(t, m, bin, "--timeout", "1s", addr.String())
		queries++
		if rs[0].OK && rs[0].Stratum == stratum && done() {
			return queries
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not serve stratum %d within %v; last reply %s", m.Name, stratum, serveWait, raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// localServerConf returns the configuration of a server of the local clock
// at stratum on addr, with rate limiting on as in examples/local-server.toml:
// the clients below stay within its burst of 16 and its one request per 2 s.
func localServerConf(addr netip.AddrPort, stratum int) string {
	return fmt.Sprintf(`[server]
listen = ["%v"]
local-stratum = %d

[server.rate-limit]
enabled = true
`, addr, stratum)
}

func loopbackAddr(t *testing.T) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), peertest.FreeUDPPort(t))
}

// TestServeChronyClient has chronyd take samples from Meridian: it must
// accept them (chrony's tests passed), select Meridian and track it.
func TestServeChronyClient(t *testing.T) {
	t.Parallel()
	const (
		stratum = 9
		// Samples that must pass all of chrony's tests. A sample may
		// fail only the delay tests 5-7, which a busy machine can make
		// fail.
		want = 4
	)
	addr := loopbackAddr(t)
	startMeridian(t, localServerConf(addr, stratum), addr, false, stratum)
	// A request every 2 s (minpoll and maxpoll 1), after a first burst:
	// as often as Meridian's default rate limit allows for good, so
	// that a sample lost to a busy machine is soon made up for.
	c := peertest.StartChronyClient(t, peertest.ChronyClientConfig{Server: addr, Options: "iburst minpoll 1 maxpoll 1"})
	t.Logf("chronyd %s, chronyc %s: server %v iburst minpoll 1 maxpoll 1", c.Version, c.ChronycVersion, addr)

	deadline := time.Now().Add(serveWait)
	var (
		src   peertest.ChronySource
		ms    []peertest.ChronyMeasurement
		valid int
	)
	for {
		ss, err := c.Sources()
		if err != nil {
			t.Fatalf("%v\nchronyd log:\n%s", err, c.Log())
		}
		if len(ss) != 1 || ss[0].Name != addr.Addr().String() {
			t.Fatalf("chronyc sources: %+v; want one source, %v", ss, addr.Addr())
		}
		src = ss[0]
		if ms, err = c.Measurements(); err != nil {
			t.Fatal(err)
		}
		valid = 0
		for _, m := range ms {
			if m.Valid() {
				valid++
			}
		}
		if src.State == "*" && src.Reach != 0 && valid >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("chronyd did not select Meridian with %d valid samples within %v: source %+v, samples %+v\nchronyd log:\n%s",
				want, serveWait, src, ms, c.Log())
		}
		time.Sleep(250 * time.Millisecond)
	}
	tracking, err := c.Tracking()
	if err != nil {
		t.Fatal(err)
	}

	t.Logf("chronyc sources: state %s, stratum %d, reach %o, offset %+.9f s +/- %.9f s", src.State, src.Stratum, src.Reach, src.Offset, src.Error)
	t.Logf("chronyc tracking: reference ID %s (%s), stratum %d, leap %s", tracking.RefID, tracking.RefName, tracking.Stratum, tracking.Leap)
	t.Logf("%d samples, %d passed all of chrony's tests", len(ms), valid)
	if src.Mode != "^" || src.Stratum != stratum {
		t.Errorf("chronyc sources: mode %q, stratum %d; want ^ (server), %d", src.Mode, src.Stratum, stratum)
	}
	if tracking.RefID != "7F000001" || tracking.Stratum != stratum+1 || tracking.Leap != "Normal" {
		t.Errorf("chronyc tracking: reference ID %s, stratum %d, leap %s; want 7F000001 (127.0.0.1), %d, Normal",
			tracking.RefID, tracking.Stratum, tracking.Leap, stratum+1)
	}
	for _, m := range ms {
		t.Logf("measurements.log: %s %s leap %s stratum %d tests %s offset %+.3e s delay %.3e s refid %s",
			m.Time, m.Addr, m.Leap, m.Stratum, m.Tests, m.Offset, m.PeerDelay, m.RefID)
		if m.Addr != addr.Addr().String() || m.Leap != "N" || m.Stratum != stratum || !m.ValidReply() || m.RefID != "7F7F0101" {
			t.Errorf("sample %+v: want from %v, leap N, stratum %d, tests 111 xxx 1111, reference ID 7F7F0101 (127.127.1.1)",
				m, addr.Addr(), stratum)
		}
		if math.Abs(m.Offset) > m.PeerDelay/2+offsetSlack {
			t.Errorf("sample %+v: offset beyond half the delay, though both share one clock", m)
		}
	}
}

// ntpdigLine is what ntpdig (also as sntp, and behind ntpdate) prints for a
// reply: the server's time, the offset, the error bound, the server, the
// stratum and the leap indicator.
var ntpdigLine = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \([+-]\d{4}\) ([+-]\d+\.\d+) \+/- (\d+\.\d+) (\S+) s(\d+) (\S+)$`)

// TestServeNTPsecClients checks that NTPsec's ntpdig, and sntp and ntpdate
// (which are ntpdig in Debian 12), accept Meridian's replies. They cannot
// be given a port, so Meridian serves port 123 in a network namespace of its
// own, and the clients run there.
func TestServeNTPsecClients(t *testing.T) {
	t.Parallel()
	const stratum = 3
	addr := netip.MustParseAddrPort("127.0.0.1:123")
	m, _ := startMeridian(t, localServerConf(addr, stratum), addr, true, stratum)
	if out, err := exec.Command("dpkg-query", "-W", "-f", "${Package} ${Version}\n",
		"ntpsec-ntpdig", "ntpsec-ntpdate", "sntp", "ntpdate").CombinedOutput(); err == nil {
		t.Logf("packages:\n%s", out)
	}

	tests := []struct {
		name string
		args []string
		json bool
	}{
		{"ntpdig", []string{"127.0.0.1"}, false},
		{"ntpdig", []string{"-j", "127.0.0.1"}, true},
		{"sntp", []string{"127.0.0.1"}, false},
		// -t 5: ntpdig's own default wait for the reply; the ntpdate
		// script's 1 s is short for a busy machine.
		{"ntpdate", []string{"-q", "-t", "5", "127.0.0.1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name+" "+strings.Join(tt.args, " "), func(t *testing.T) {
			path := peertest.Tool(t, tt.name)
			if tt.name != "ntpdate" { // a shell script around ntpdig, without a version
				v, err := exec.Command(path, "--version").CombinedOutput()
				if err != nil {
					t.Fatalf("%s --version: %v: %s", path, err, v)
				}
				t.Logf("%s --version: %s", tt.name, strings.TrimSpace(string(v)))
			}
			ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
			defer cancel()
			cmd := m.ClientCommand(ctx, path, tt.args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			line := strings.TrimSpace(string(out))
			t.Logf("%s %s: %s", tt.name, strings.Join(tt.args, " "), line)
			if err != nil {
				t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", tt.name, strings.Join(tt.args, " "), err, out, stderr.String())
			}
			var (
				offset   float64
				strat    int
				leap     string
				adjusted bool
			)
			if tt.json {
				var j struct {
					Offset   float64 `json:"offset"`
					Host     string  `json:"host"`
					Stratum  int     `json:"stratum"`
					Leap     string  `json:"leap"`
					Adjusted bool    `json:"adjusted"`
				}
				if err := json.Unmarshal(out, &j); err != nil || j.Host != "127.0.0.1" {
					t.Fatalf("output %q: host %q, %v; want JSON about 127.0.0.1", out, j.Host, err)
				}
				offset, strat, leap, adjusted = j.Offset, j.Stratum, j.Leap, j.Adjusted
			} else {
				f := ntpdigLine.FindStringSubmatch(line)
				if f == nil || f[4] != "127.0.0.1" {
					t.Fatalf("output %q: want one line about 127.0.0.1 like %q", out,
						"2026-01-02 15:04:05.123456 (+0000) +0.000012 +/- 0.000345 127.0.0.1 s3 no-leap")
				}
				offset, _ = strconv.ParseFloat(f[2], 64) // the pattern admits only numbers
				strat, _ = strconv.Atoi(f[5])
				leap = f[6]
			}
			if strat != stratum || leap != "no-leap" || adjusted {
				t.Errorf("stratum %d, leap %s, adjusted %v; want %d, no-leap, false", strat, leap, adjusted, stratum)
			}
			if math.Abs(offset) >= 1 {
				t.Errorf("offset %+f s; want under 1 s (Meridian shares our clock)", offset)
			}
		})
	}
}

// busyboxReply is what BusyBox's ntpd -w prints for each reply it accepts.
var busyboxReply = regexp.MustCompile(`reply from (\S+): offset:([+-]?\d+\.\d+) delay:(\d+\.\d+) status:0x([0-9a-f]{2}) strat:(\d+) refid:0x([0-9a-f]{8}) rootdelay:(\d+\.\d+) reach:0x([0-9a-f]{2})`)

// TestServeBusybox has BusyBox's ntpd take samples from Meridian. With -w
// it only queries its peers, never setting the clock (and as root it runs
// without CAP_SYS_TIME besides); it prints each reply it accepts, and runs
// until it is stopped. (-q would make it exit once the clock is set, which
// with -w never happens: it would run until its own 50 s alarm.)
//
// It sends its first requests 1-2 s apart until it has accepted three
// replies, then polls every 32 s. It ignores a reply whose delay is over
// four times the previous one's (and over 122 µs), which on a busy machine
// happens on loopback too: that costs one more request, 2 s later, or 32 s
// later once it polls slowly; hence the generous busyboxTimeout.
func TestServeBusybox(t *testing.T) {
	t.Parallel()
	bb, version := peertest.Busybox(t)
	const stratum = 8
	addr := loopbackAddr(t)
	m, _ := startMeridian(t, localServerConf(addr, stratum), addr, false, stratum)
	t.Logf("busybox %s (%s)", version, bb)

	const (
		want           = 3
		busyboxTimeout = 3 * time.Minute
	)
	ctx, cancel := context.WithTimeout(context.Background(), busyboxTimeout)
	defer cancel()
	cmd := m.ClientCommand(ctx, bb, "ntpd", "-n", "-w", "-d", "-p", addr.String())
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	// If the test binary dies, the kernel kills ntpd; the signal is sent
	// when the starting thread exits, so this goroutine keeps its thread
	// until ntpd has exited.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		all            strings.Builder
		replies, spiky int
	)
	nativeRefID := fmt.Sprintf("%08x", binary.NativeEndian.Uint32([]byte{127, 127, 1, 1}))
	sc := bufio.NewScanner(outPipe)
	for sc.Scan() {
		line := sc.Text()
		all.WriteString(line + "\n")
		if strings.Contains(line, "is too high, ignoring") {
			spiky++
			t.Logf("busybox ntpd: %s", line)
		}
		f := busyboxReply.FindStringSubmatch(line)
		if f == nil {
			continue
		}
		replies++
		t.Logf("busybox ntpd: %s", line)
		offset, _ := strconv.ParseFloat(f[2], 64) // the pattern admits only numbers
		delay, _ := strconv.ParseFloat(f[3], 64)
		status, _ := strconv.ParseUint(f[4], 16, 8)
		strat, _ := strconv.Atoi(f[5])
		// status is the first octet: leap indicator, version, mode.
		if f[1] != "127.0.0.1" || status != 0x24 || strat != stratum || f[6] != nativeRefID {
			t.Errorf("reply from %s, status 0x%02x, stratum %d, refid 0x%s; want 127.0.0.1, 0x24 (leap 0, version 4, server), %d, 0x%s (127.127.1.1)",
				f[1], status, strat, f[6], stratum, nativeRefID)
		}
		if math.Abs(offset) >= 1 || math.Abs(offset) > delay/2+offsetSlack {
			t.Errorf("offset %+f s with delay %f s: want under 1 s and half the delay (Meridian shares our clock)", offset, delay)
		}
		if replies == want {
			cancel() // stops ntpd with SIGTERM; the loop ends at EOF
		}
	}
	waitErr := cmd.Wait()
	if replies < want {
		t.Fatalf("busybox ntpd accepted %d replies, want %d (exit: %v, scan: %v); its output:\n%s",
			replies, want, waitErr, sc.Err(), all.String())
	}
	t.Logf("busybox ntpd accepted %d replies, ignored %d for a delay spike", replies, spiky)
	if strings.Contains(all.String(), "unsynced") {
		t.Errorf("busybox ntpd found Meridian unsynchronized:\n%s", all.String())
	}
	if strings.Contains(all.String(), "adjtimex") || strings.Contains(all.String(), "setting time") {
		t.Errorf("busybox ntpd tried to change the clock:\n%s", all.String())
	}
}

// TestMirrorChrony runs Meridian as a mirror of a real chronyd: it serves
// chronyd's time one stratum further away, with chronyd's address as the
// reference ID; when chronyd stops, it holds over for mirror.unsync-after,
// then answers as unsynchronized.
func TestMirrorChrony(t *testing.T) {
	t.Parallel()
	const (
		upStratum   = 5
		poll        = time.Second
		unsyncAfter = 3 * time.Second
	)
	up := peertest.StartChrony(t, peertest.ChronyConfig{Stratum: upStratum})
	t.Logf("upstream: chronyd %s, local stratum %d, on %v", up.Version, upStratum, up.Addr)
	addr := loopbackAddr(t)
	// Rate limiting is off: the test queries Meridian several times a
	// second for a while.
	conf := fmt.Sprintf(`[server]
listen = ["%v"]

[server.rate-limit]
enabled = false

[mirror]
upstream = "%v"
poll = "%v"
unsync-after = "%v"
`, addr, up.Addr, poll, unsyncAfter)
	m, bin := startMeridian(t, conf, addr, false, upStratum+1)

	rs, raw := runQueryJSON(t, m, bin, "--count", "4", "--interval", "100ms", "--timeout", "2s", addr.String())
	r := rs[0]
	if !r.OK {
		t.Fatalf("meridian query: %s", raw)
	}
	t.Logf("meridian query: stratum %d, reference ID %s (%s), leap %s, root delay %.9f s, root dispersion %.9f s, offset %+.9f s, delay %.9f s",
		r.Stratum, r.RefID, r.RefIDHex, r.Leap, *r.RootDelay, *r.RootDispersion, *r.Offset, *r.Delay)
	if r.Stratum != upStratum+1 || r.RefID != "127.0.0.1" || r.RefIDHex != "7f000001" || r.Leap != "none" {
		t.Errorf("stratum %d, reference ID %s (%s), leap %s; want %d, 127.0.0.1 (7f000001), none",
			r.Stratum, r.RefID, r.RefIDHex, r.Leap, upStratum+1)
	}
	// chronyd serves root delay and dispersion 0 from its local reference;
	// Meridian adds its loopback measurement of chronyd, which is tiny,
	// and clients refuse a root distance above 1.5 s.
	if rd, disp := *r.RootDelay, *r.RootDispersion; rd < 0 || disp < 0 || rd/2+disp >= 0.5 {
		t.Errorf("root delay %v s, root dispersion %v s; want a root distance under 0.5 s", rd, disp)
	}
	if math.Abs(*r.Offset) > *r.Delay/2+offsetSlack {
		t.Errorf("offset %+v s with delay %v s: beyond half the delay, though Meridian shares our clock", *r.Offset, *r.Delay)
	}

	// Poll Meridian across chronyd's end, and note the reference time of
	// the last synchronized reply: the time of Meridian's last sample of
	// chronyd, or one before it.
	qc := query.Config{Network: "ip4", Count: 1, Timeout: time.Second}
	sample := func() query.Result {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return query.One(ctx, addr.String(), qc)
	}
	last := sample()
	if last.Err != nil {
		t.Fatalf("query before stopping chronyd: %v", last.Err)
	}
	up.Stop(t)
	stopped := time.Now()
	var (
		holdover  int // synchronized replies after the stop
		unsync    source.UnsyncError
		unsyncAt  time.Time
		deadline  = stopped.Add(unsyncAfter + serveWait)
		timeouts  int
		firstDisp time.Duration
	)
	for {
		r := sample()
		now := time.Now()
		if r.Err == nil {
			if r.Sample.Header.Stratum != upStratum+1 {
				t.Fatalf("holding over at stratum %d; want %d", r.Sample.Header.Stratum, upStratum+1)
			}
			if holdover == 0 {
				firstDisp = r.Sample.Header.RootDisp.Duration()
			}
			holdover++
			last = r
		} else if errors.As(r.Err, &unsync) {
			unsyncAt = now
			break
		} else {
			timeouts++ // a busy machine; a later query tells
		}
		if now.After(deadline) {
			t.Fatalf("meridian still not unsynchronized %v after chronyd stopped (unsync-after %v); last error %v",
				now.Sub(stopped), unsyncAfter, r.Err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ref := last.Sample.Header.Reference.Resolve(unsyncAt)
	t.Logf("chronyd stopped; %d synchronized replies after (root dispersion %v to %v), %d lost; unsynchronized after %v (%v after the last sample's reference time): %v",
		holdover, firstDisp, last.Sample.Header.RootDisp.Duration(), timeouts,
		unsyncAt.Sub(stopped).Round(time.Millisecond), unsyncAt.Sub(ref).Round(time.Millisecond), unsync)
	if d := last.Sample.Header.RootDisp.Duration(); holdover > 0 && d < firstDisp {
		t.Errorf("root dispersion fell from %v to %v while holding over; it grows with the time since the last sample", firstDisp, d)
	}
	if unsync.Leap != 3 || unsync.Stratum != 16 {
		t.Errorf("unsynchronized reply: leap %d, stratum %d; want 3, 16", unsync.Leap, unsync.Stratum)
	}
	// Meridian may give up only unsync-after past its last good sample,
	// whose time the reference timestamp is (or is before).
	if held := unsyncAt.Sub(ref); held < unsyncAfter-10*time.Millisecond {
		t.Errorf("unsynchronized %v after the last sample's reference time; want at least unsync-after, %v", held, unsyncAfter)
	}

	rs, raw = runQueryJSON(t, m, bin, "--timeout", "2s", addr.String())
	t.Logf("meridian query after chronyd stopped: %s", strings.Join(strings.Fields(string(raw)), " "))
	if rs[0].OK || rs[0].Error != "server is not synchronized: leap 3, stratum 16" {
		t.Errorf("meridian query: ok %v, error %q; want a failure, \"server is not synchronized: leap 3, stratum 16\"", rs[0].OK, rs[0].Error)
	}
	if log := m.Log(); !strings.Contains(log, "mirror unsynchronized") {
		t.Errorf("meridian did not log that the mirror is unsynchronized:\n%s", log)
	}
}
