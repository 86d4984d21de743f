package main

import (
	"encoding/json"
	"flag"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/bench"
	"github.com/meridian-ntp/meridian/internal/ntp"
)

// startEcho starts a loopback NTP server that answers every request
// validly, and returns its address. It stops when t ends.
func startEcho(t *testing.T) string {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	// The goroutine exits when the cleanup closes c.
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			var req ntp.Header
			if req.Decode(buf[:n]) != nil || req.Mode != ntp.ModeClient {
				continue
			}
			now := ntp.TimeFrom(time.Now())
			h := ntp.Header{Version: 4, Mode: ntp.ModeServer, Stratum: 2, RefID: ntp.RefID{192, 0, 2, 1},
				Reference: now, Origin: req.Transmit, Receive: now, Transmit: now}
			if _, err := h.Encode(buf); err == nil {
				_, _ = c.WriteToUDPAddrPort(buf[:ntp.HeaderLen], from) // a failed send is a lost reply
			}
		}
	}()
	return c.LocalAddr().String()
}

func TestBenchCommandLine(t *testing.T) {
	tests := []struct {
		args     []string
		inStderr string
	}{
		{[]string{}, "no server given"},
		{[]string{"a", "b"}, "one server only"},
		{[]string{"--rate", "10", "--concurrency", "10", "x"}, "--rate and --concurrency exclude each other"},
		{[]string{"-4", "-6", "x"}, "-4 and -6 exclude each other"},
		{[]string{"--rate", "0", "x"}, "--rate must be between 1 and 10000000"},
		{[]string{"--rate", "10000001", "x"}, "--rate must be between 1 and 10000000"},
		{[]string{"--concurrency", "0", "x"}, "--concurrency must be between 1 and 65536"},
		{[]string{"--concurrency", "65537", "x"}, "--concurrency must be between 1 and 65536"},
		{[]string{"--duration", "0s", "x"}, "--duration must be above 0 and at most 10m0s"},
		{[]string{"--duration", "11m", "x"}, "--duration must be above 0 and at most 10m0s"},
		{[]string{"--warmup", "-1s", "x"}, "--warmup must be between 0 and 1m0s"},
		{[]string{"--warmup", "2m", "x"}, "--warmup must be between 0 and 1m0s"},
		{[]string{"--sockets", "0", "x"}, "--sockets must be between 1 and 1024"},
		{[]string{"--sockets", "1025", "x"}, "--sockets must be between 1 and 1024"},
		{[]string{"--source-addrs", "0", "x"}, "--source-addrs must be between 1 and 254"},
		{[]string{"--source-addrs", "255", "--sockets", "300", "x"}, "--source-addrs must be between 1 and 254"},
		{[]string{"--source-addrs", "5", "--sockets", "4", "x"}, "--source-addrs (5) may not exceed --sockets (4)"},
		{[]string{"--source-addrs", "3", "--concurrency", "2", "x"}, "--source-addrs (3) may not exceed --concurrency (2)"},
		{[]string{"--source-addrs", "2", "-6", "x"}, "--source-addrs above 1 needs an IPv4 loopback server"},
		{[]string{"--source-addrs", "2", "[::1]:123"}, "--source-addrs above 1 needs an IPv4 loopback server, not ::1"},
		{[]string{"--source-addrs", "2", "192.0.2.1:123"}, "--source-addrs above 1 needs an IPv4 loopback server, not 192.0.2.1"},
		{[]string{"--workers", "0", "x"}, "--workers must be between 1 and 64"},
		{[]string{"--workers", "65", "x"}, "--workers must be between 1 and 64"},
		{[]string{"--timeout", "0s", "x"}, "--timeout must be above 0 and at most 10s"},
		{[]string{"--timeout", "11s", "x"}, "--timeout must be above 0 and at most 10s"},
		{[]string{"--server-pid", "-1", "x"}, "--server-pid must be a process ID"},
		{[]string{"--server-cpus", "", "x"}, "is not a CPU number or range"},
		{[]string{"--server-cpus", "-1", "x"}, "is not a CPU number or range"},
		{[]string{"--server-cpus", "3-1", "x"}, "is not a CPU number or range"},
		{[]string{"--server-cpus", "0,1024", "x"}, "is not a CPU number or range like 0 or 2-3 (CPUs 0 to 1023)"},
		{[]string{"--server-cpus", "0-2,2", "x"}, "CPU 2 is listed twice"},
		{[]string{"--server-cpus", "a", "x"}, "is not a CPU number or range"},
		{[]string{"--rate", "10", "--tick", "9us", "x"}, "--tick must be between 10µs and 1ms"},
		{[]string{"--rate", "10", "--tick", "2ms", "x"}, "--tick must be between 10µs and 1ms"},
		{[]string{"--tick", "1ms", "x"}, "--tick applies to an open loop only"},
		{[]string{"--rate", "10000000", "--timeout", "2s", "x"}, "--rate times --timeout must be at most"},
		{[]string{"--rate", "fast", "x"}, "invalid value"},
		{[]string{"--bogus", "x"}, "flag provided but not defined: -bogus"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errs := runArgs(t, append([]string{"bench"}, tt.args...)...)
			if code != exitUsage || out != "" || !strings.Contains(errs, tt.inStderr) || !strings.Contains(errs, "Usage: meridian bench") {
				t.Errorf("meridian bench %q = %d\nstdout: %s\nstderr: %s\nwant %d and stderr containing %q and the usage",
					tt.args, code, out, errs, exitUsage, tt.inStderr)
			}
		})
	}
}

func TestBenchHelpIsComplete(t *testing.T) {
	code, _, help := runArgs(t, "bench", "-h")
	if code != exitOK {
		t.Fatalf("bench -h = %d", code)
	}
	for _, f := range []string{"-rate", "-concurrency", "-duration", "-warmup", "-sockets", "-source-addrs", "-workers",
		"-timeout", "-tick", "-server-pid", "-json", "-quiet", "-4", "-6", "open loop", "closed loop",
		"rate limit", "Exit status", "SO_TIMESTAMPNS", "/proc/PID/stat"} {
		if !strings.Contains(help, f) {
			t.Errorf("bench -h does not mention %q", f)
		}
	}
}

func TestBenchRuns(t *testing.T) {
	addr := startEcho(t)
	t.Run("json", func(t *testing.T) {
		code, out, errs := runArgs(t, "bench", "--rate", "500", "--duration", "300ms", "--warmup", "0",
			"--timeout", "5s", "--tick", "1ms", "--quiet", "--json", "--sockets", "4", addr)
		if code != exitOK || errs != "" {
			t.Fatalf("exit %d, stderr %q", code, errs)
		}
		var j bench.JSON
		if err := json.Unmarshal([]byte(out), &j); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, out)
		}
		if j.Mode != "open" || j.Rate != 500 || j.Sockets != 4 || j.Timeout != 5 || j.Tick != 0.001 || j.Duration != 0.3 ||
			j.Sent+j.Skipped+j.SendErrors != 150 || j.Answered != j.Sent || j.LossPercent != 0 ||
			j.RTT == nil || j.RTT.Samples != j.Answered || j.CPU == nil || j.CPU.Requests == 0 {
			t.Errorf("unexpected report:\n%s", out)
		}
	})
	t.Run("source addresses", func(t *testing.T) {
		code, out, errs := runArgs(t, "bench", "--rate", "400", "--duration", "300ms", "--warmup", "0",
			"--timeout", "5s", "--quiet", "--sockets", "6", "--source-addrs", "3", addr)
		if code != exitOK || errs != "" || !strings.Contains(out, "6 sockets from 3 addresses") {
			t.Errorf("exit %d, stderr %q; want 0 and the addresses in stdout:\n%s", code, errs, out)
		}
	})
	t.Run("text and progress", func(t *testing.T) {
		// Flags after the server, and the default closed loop.
		code, out, errs := runArgs(t, "bench", addr, "--duration", "1500ms", "--warmup", "0", "--concurrency", "2",
			"--timeout", "5s")
		for _, want := range []string{"closed loop, 2 requests outstanding, 2 sockets", "answered", "lost", "rejected",
			"invalid", "rtt µs", "p99.9", "generator cpu"} {
			if code != exitOK || !strings.Contains(out, want) {
				t.Errorf("exit %d; want 0 and %q in stdout:\n%s", code, want, out)
			}
		}
		if strings.Contains(out, "server cpu") {
			t.Errorf("server CPU reported without --server-pid:\n%s", out)
		}
		// Progress lines, a second apart, unless the machine is so busy
		// that the run ends before the first.
		if strings.Contains(out, "  sent  ") || (errs != "" && !strings.HasPrefix(errs, "    1s  sent ")) {
			t.Errorf("stderr is not progress lines, or stdout has some:\n%s", errs)
		}
	})
}

// TestBenchConfig checks how the flags become a run's configuration.
func TestBenchConfig(t *testing.T) {
	var stderr strings.Builder
	e := env{stderr: &stderr}
	for _, tt := range []struct {
		args     []string
		rate     int
		conc     int
		tick     time.Duration
		progress bool
		network  string
	}{
		{nil, 0, bench.DefaultConcurrency, bench.DefaultTick, true, "ip"},
		{[]string{"--rate", "7", "--json", "--tick", "1ms"}, 7, 0, time.Millisecond, true, "ip"},
		{[]string{"--concurrency", "3", "--quiet", "-6"}, 0, 3, bench.DefaultTick, false, "ip6"},
		{[]string{"-4", "--quiet", "--json"}, 0, bench.DefaultConcurrency, bench.DefaultTick, false, "ip4"},
	} {
		fs, f := newBenchFlags(e)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		f.set = map[string]bool{}
		fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
		cfg := f.config(e)
		if cfg.Rate != tt.rate || cfg.Concurrency != tt.conc || cfg.Tick != tt.tick || (cfg.Progress != nil) != tt.progress ||
			f.network() != tt.network || cfg.Warmup != time.Second || cfg.Duration != bench.DefaultDuration {
			t.Errorf("%q: %+v, network %s; want rate %d, concurrency %d, tick %v, progress %v, network %s",
				tt.args, cfg, f.network(), tt.rate, tt.conc, tt.tick, tt.progress, tt.network)
		}
		if tt.progress && cfg.Progress != e.stderr {
			t.Errorf("%q: progress does not go to stderr", tt.args)
		}
	}
}

func TestBenchFailures(t *testing.T) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	closed := c.LocalAddr().String()
	c.Close()
	code, out, errs := runArgs(t, "bench", "--rate", "100", "--duration", "200ms", "--warmup", "0",
		"--timeout", "100ms", "--quiet", closed)
	if code != exitFailure || !strings.Contains(out, "lost") || !strings.Contains(errs, "no valid reply") {
		t.Errorf("nothing listening: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	code, _, errs = runArgs(t, "bench", "--quiet", "[::1]:0")
	if code != exitFailure || !strings.Contains(errs, "invalid port") {
		t.Errorf("bad port: exit %d, stderr %q", code, errs)
	}
	code, _, errs = runArgs(t, "bench", "--quiet", "--server-pid", "1073741824", closed)
	if code != exitFailure || !strings.Contains(errs, "server process") {
		t.Errorf("no such server process: exit %d, stderr %q", code, errs)
	}
}

func TestBenchServerCPUs(t *testing.T) {
	for in, want := range map[string][]int{"0": {0}, "0,2-3": {0, 2, 3}, "5-5,1": {5, 1}, "1023": {1023}} {
		var l cpuList
		if err := l.Set(in); err != nil || !slices.Equal(l, want) {
			t.Errorf("Set(%q) = %v, %v; want %v", in, l, err, want)
		}
		if err := l.Set(l.String()); err != nil || !slices.Equal(l, want) {
			t.Errorf("Set(String()) of %q = %v, %v; want %v", in, l, err, want)
		}
	}
}
