package peertest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chronycTimeout bounds one run of chronyc, which answers from loopback in
// milliseconds and retries a lost request by itself.
const chronycTimeout = 20 * time.Second

// ChronyClientConfig configures the chronyd that StartChronyClient starts.
type ChronyClientConfig struct {
	// Server is the IPv4 address and UDP port of the NTP server chronyd
	// takes its samples from.
	Server netip.AddrPort
	// Options follow "server ADDRESS port PORT" in chrony.conf; "" means
	// "iburst": four requests about 2 s apart, then one every 64 s.
	Options string
	// Extra holds more chrony.conf directives, one a line.
	Extra string
}

// ChronyClient is a chronyd that is a client of one NTP server: it takes
// samples, selects the server and tracks it, but never steers the clock
// (-x). It serves no NTP; its Addr is its command port on 127.0.0.1, which
// Chronyc queries.
type ChronyClient struct {
	*Peer
	// ChronycVersion is chronyc's version, such as "4.3".
	ChronycVersion string

	chronyc string
	logDir  string
}

// StartChronyClient starts chronyd as a client of c.Server and returns once
// its command port is bound. It logs every sample it takes (Measurements).
// It is stopped when t ends.
func StartChronyClient(t testing.TB, c ChronyClientConfig) *ChronyClient {
	t.Helper()
	if !c.Server.Addr().Is4() {
		t.Fatalf("peertest: chronyd's server %v is not an IPv4 address and port", c.Server)
	}
	if c.Options == "" {
		c.Options = "iburst"
	}
	p, tools, dir := newChronyd(t, "chrony client", "chronyc")
	chronycVersion, err := versionOf(tools[1], "version ", "-v")
	if err != nil {
		t.Fatalf("peertest: %v", err)
	}
	cl := &ChronyClient{Peer: p, ChronycVersion: chronycVersion, chronyc: tools[1], logDir: dir}
	// port 0: no NTP server socket. The command port is on loopback, where
	// chronyc may use the monitoring commands; bindcmdaddress / turns off
	// the command socket, whose default path all instances would share.
	// No driftfile: with -x there is no drift to keep.
	conf := fmt.Appendf(nil, `# chronyd for a test: a client of one server, never steers the clock.
server %s port %d %s
port 0
cmdport %d
bindcmdaddress 127.0.0.1
bindcmdaddress /
pidfile %s
logdir %s
log measurements
%s
`, c.Server.Addr(), c.Server.Port(), c.Options, p.Addr.Port(), filepath.Join(dir, "chronyd.pid"), dir, c.Extra)
	runChronyd(t, p, tools, conf, dir)
	return cl
}

// Chronyc runs chronyc with args (such as "-c", "sources") against the
// client's command port, with numeric addresses, and returns its output.
func (c *ChronyClient) Chronyc(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), chronycTimeout)
	defer cancel()
	argv := append([]string{"-n", "-h", c.Addr.Addr().String(), "-p", strconv.Itoa(int(c.Addr.Port()))}, args...)
	out, err := exec.CommandContext(ctx, c.chronyc, argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("chronyc %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// ChronySource is a line of "chronyc sources".
type ChronySource struct {
	// Mode is '^' for a server; State is '*' for the selected source, '+'
	// for one combined with it, '?' for one not (yet) usable, and so on.
	Mode, State string
	Name        string
	Stratum     int
	// Reach is the reachability register: bit 0 set means the last
	// request was answered with a valid reply.
	Reach uint8
	// Offset is the last sample's offset, in seconds, and Error its
	// error bound.
	Offset, Error float64
}

// Sources returns what "chronyc sources" shows.
func (c *ChronyClient) Sources() ([]ChronySource, error) {
	out, err := c.Chronyc("-c", "sources")
	if err != nil {
		return nil, err
	}
	var ss []ChronySource
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		// ^,*,127.0.0.1,10,6,17,5,0.000000169,0.000002011,0.000005758
		// mode, state, name, stratum, poll, reach (octal), last rx,
		// adjusted offset, measured offset, error
		f := strings.Split(line, ",")
		if len(f) != 10 {
			return nil, fmt.Errorf("chronyc sources: unexpected line %q", line)
		}
		s := ChronySource{Mode: f[0], State: f[1], Name: f[2]}
		stratum, err1 := strconv.Atoi(f[3])
		reach, err2 := strconv.ParseUint(f[5], 8, 8)
		offset, err3 := strconv.ParseFloat(f[8], 64)
		bound, err4 := strconv.ParseFloat(f[9], 64)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			return nil, fmt.Errorf("chronyc sources: unexpected line %q", line)
		}
		s.Stratum, s.Reach, s.Offset, s.Error = stratum, uint8(reach), offset, bound
		ss = append(ss, s)
	}
	return ss, nil
}

// ChronyTracking is what "chronyc tracking" shows.
type ChronyTracking struct {
	// RefID is the reference ID in hex, such as "7F000001", and RefName
	// the selected source's address.
	RefID, RefName string
	// Stratum is the stratum chronyd would serve: its source's plus one.
	Stratum int
	// Leap is "Normal", "Insert second", "Delete second" or "Not
	// synchronised".
	Leap string
}

// Tracking returns what "chronyc tracking" shows.
func (c *ChronyClient) Tracking() (ChronyTracking, error) {
	out, err := c.Chronyc("-c", "tracking")
	if err != nil {
		return ChronyTracking{}, err
	}
	// 7F000001,127.0.0.1,11,1796153069.123,0.000002733,...,2.0,Normal
	// refid, name, stratum, ref time, system time, last offset, RMS
	// offset, frequency, residual frequency, skew, root delay, root
	// dispersion, update interval, leap status
	f := strings.Split(strings.TrimSpace(out), ",")
	if len(f) != 14 {
		return ChronyTracking{}, fmt.Errorf("chronyc tracking: unexpected output %q", out)
	}
	stratum, err := strconv.Atoi(f[2])
	if err != nil {
		return ChronyTracking{}, fmt.Errorf("chronyc tracking: unexpected output %q", out)
	}
	return ChronyTracking{RefID: f[0], RefName: f[1], Stratum: stratum, Leap: f[13]}, nil
}

// ChronyMeasurement is a line of chronyd's measurements.log: one reply
// from a source and the tests it passed.
type ChronyMeasurement struct {
	// Time is when it was taken, "2006-01-02 15:04:05" in UTC.
	Time string
	Addr string
	// Leap is the reply's leap indicator: "N" (none), "+", "-" or "?"
	// (unsynchronized).
	Leap    string
	Stratum int
	// Tests are the results of chrony's tests 1-3, 5-7 and A-D, 1 for
	// passed, such as "111 111 1111".
	Tests string
	// Offset and PeerDelay are in seconds.
	Offset, PeerDelay float64
	// RefID is the reply's reference ID in hex.
	RefID string
}

// Valid reports whether the sample passed all of chrony's tests, and so
// was used.
func (m ChronyMeasurement) Valid() bool {
	return m.Tests == "111 111 1111"
}

// ValidReply reports whether the sample passed chrony's tests of the reply
// itself: 1-3 (not a duplicate, answers the request, sane timestamps) and
// A-D (authentication, synchronized with a sane stratum, root distance, no
// synchronization loop). Tests 5-7 weigh only the round-trip delay against
// the other samples', so a busy machine can fail them.
func (m ChronyMeasurement) ValidReply() bool {
	return len(m.Tests) == 12 && m.Tests[:3] == "111" && m.Tests[8:] == "1111"
}

// Measurements returns the samples chronyd has logged so far.
func (c *ChronyClient) Measurements() ([]ChronyMeasurement, error) {
	b, err := os.ReadFile(filepath.Join(c.logDir, "measurements.log"))
	if os.IsNotExist(err) {
		return nil, nil // no sample yet
	} else if err != nil {
		return nil, err
	}
	// A line chronyd is still writing has no newline yet: leave it out.
	if i := strings.LastIndexByte(string(b), '\n'); i >= 0 {
		b = b[:i]
	} else {
		b = nil
	}
	var ms []ChronyMeasurement
	for _, line := range strings.Split(string(b), "\n") {
		// Date Time IP L St 123 567 ABCD LP RP Score Offset Peer-del
		// Peer-disp Root-del Root-disp Refid MTxRx (three words); the
		// header lines begin with '=' or spaces.
		f := strings.Fields(line)
		if len(f) < 17 || line[0] == ' ' || line[0] == '=' {
			continue
		}
		m := ChronyMeasurement{Time: f[0] + " " + f[1], Addr: f[2], Leap: f[3],
			Tests: f[5] + " " + f[6] + " " + f[7], RefID: f[16]}
		var err1, err2, err3 error
		m.Stratum, err1 = strconv.Atoi(f[4])
		m.Offset, err2 = strconv.ParseFloat(f[11], 64)
		m.PeerDelay, err3 = strconv.ParseFloat(f[12], 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("measurements.log: unexpected line %q", line)
		}
		ms = append(ms, m)
	}
	return ms, nil
}
