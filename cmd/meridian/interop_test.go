package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/peertest"
	"github.com/meridian-ntp/meridian/internal/query"
)

var update = flag.Bool("update", false, "rewrite the golden packets captured from peer daemons")

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// meridianBinary builds the command once per test run, so interop tests
// exercise exactly what users run.
func meridianBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "meridian-bin-")
		if err == nil {
			// The children of privilege separation run it as another user.
			err = os.Chmod(dir, 0o755)
		}
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "meridian")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	if os.Getenv(canaryEnv) == "1" {
		os.Exit(canary())
	}
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath)) // best effort: a temp dir
	}
	os.Exit(code)
}

// golden is a reply captured from a peer daemon. The fields besides Packet
// are the ones that must not change between runs.
type golden struct {
	Peer    string `json:"peer"`
	Version string `json:"version"`
	Config  string `json:"config"`
	Leap    string `json:"leap"`
	Stratum uint8  `json:"stratum"`
	RefID   string `json:"refid"`
	Packet  string `json:"packet"`
}

// interopCase describes one peer setup and what it must serve.
type interopCase struct {
	name    string
	start   func(t *testing.T) *peertest.Peer
	config  string
	stratum uint8
	refID   string
}

func TestInteropChrony(t *testing.T) {
	runInterop(t, interopCase{
		name:    "chrony",
		start:   func(t *testing.T) *peertest.Peer { return peertest.StartChrony(t, peertest.ChronyConfig{Stratum: 7}) },
		config:  "local stratum 7",
		stratum: 7,
		refID:   "127.127.1.1", // chrony's reference ID for its local reference
	})
}

func TestInteropNTPsec(t *testing.T) {
	runInterop(t, interopCase{
		name: "ntpsec",
		start: func(t *testing.T) *peertest.Peer {
			return peertest.StartNTPsec(t, peertest.NTPsecConfig{Stratum: 1, RefID: "MRDN"})
		},
		config:  "local clock driver, stratum 1, refid MRDN",
		stratum: 1,
		refID:   "MRDN",
	})
}

func runInterop(t *testing.T, tc interopCase) {
	bin := meridianBinary(t)
	p := tc.start(t)
	addr := p.Addr.String()

	// Peers answer unsynchronized for a moment after start: poll until the
	// configured stratum is served, within a bound.
	deadline := time.Now().Add(30 * time.Second)
	var last query.JSON
	for {
		rs, out := runQueryJSON(t, p, bin, "--timeout", "1s", addr)
		last = rs[0]
		if last.OK && last.Stratum == tc.stratum {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s never served stratum %d; last reply %s\npeer log:\n%s", p.Name, p.Version, tc.stratum, out, p.Log())
		}
		time.Sleep(250 * time.Millisecond)
	}

	rs, out := runQueryJSON(t, p, bin, "--count", "4", "--interval", "100ms", "--timeout", "2s", addr)
	r := rs[0]
	t.Logf("%s %s: offset %+.9f s, delay %.9f s, stratum %d, refid %s, precision %d, %d/%d valid",
		p.Name, p.Version, *r.Offset, *r.Delay, r.Stratum, r.RefID, *r.Precision, r.Valid, r.Sent)
	switch {
	case !r.OK:
		t.Fatalf("query failed: %s", out)
	case math.Abs(*r.Offset) >= 0.001:
		t.Errorf("offset %v s; want under 1 ms (the peer shares our clock)", *r.Offset)
	case *r.Delay < 0 || *r.Delay >= 0.01:
		t.Errorf("delay %v s on loopback", *r.Delay)
	}
	if r.Stratum != tc.stratum || r.RefID != tc.refID || r.Leap != "none" || r.Version != 4 {
		t.Errorf("stratum %d, refid %q, leap %s, version %d; want %d, %q, none, 4",
			r.Stratum, r.RefID, r.Leap, r.Version, tc.stratum, tc.refID)
	}
	if r.Sent != 4 || r.Valid != 4 || r.Discarded != 0 {
		t.Errorf("sent %d, valid %d, discarded %d; want 4, 4, 0", r.Sent, r.Valid, r.Discarded)
	}
	checkGolden(t, tc, p, r)
}

// runQueryJSON runs "meridian query --json ARGS" where the peer is reachable.
func runQueryJSON(t *testing.T, p *peertest.Peer, bin string, args ...string) ([]query.JSON, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := p.CommandContext(ctx, bin, append([]string{"query", "--json"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var rs []query.JSON
	if jerr := json.Unmarshal(out, &rs); jerr != nil || len(rs) != 1 {
		t.Fatalf("meridian query: %v; output %q, stderr %q, JSON error %v", err, out, stderr.String(), jerr)
	}
	if (err == nil) != rs[0].OK {
		t.Fatalf("exit status %v does not match ok=%v", err, rs[0].OK)
	}
	return rs, out
}

// checkGolden compares the reply with the one captured earlier from the same
// peer (or captures it with -update). Only fields that are stable between
// runs are compared; the packet itself feeds the codec tests and fuzzing.
func checkGolden(t *testing.T, tc interopCase, p *peertest.Peer, r query.JSON) {
	t.Helper()
	pkt, err := hex.DecodeString(r.Packet)
	if err != nil {
		t.Fatal(err)
	}
	var decoded ntp.Packet
	if err := decoded.Decode(pkt); err != nil {
		t.Fatalf("captured packet %x does not decode: %v", pkt, err)
	}
	got := golden{Peer: p.Name, Version: p.Version, Config: tc.config, Leap: r.Leap,
		Stratum: r.Stratum, RefID: r.RefID, Packet: r.Packet}
	base := fmt.Sprintf("%s-%s", p.Name, p.Version)
	path := filepath.Join("..", "..", "internal", "ntp", "testdata", "peers", base+".json")
	if *update {
		b, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, path, append(b, '\n'))
		seed := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", pkt)
		writeFile(t, filepath.Join("..", "..", "internal", "ntp", "testdata", "fuzz", "FuzzDecode", "peer-"+base), []byte(seed))
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no golden packet for %s (capture one with -update): %v", base, err)
	}
	var want golden
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if got.Leap != want.Leap || got.Stratum != want.Stratum || got.RefID != want.RefID || got.Config != want.Config {
		t.Errorf("%s now serves %+v; golden %s has %+v", base, got, path, want)
	}
	var old ntp.Packet
	if raw, err := hex.DecodeString(want.Packet); err != nil || old.Decode(raw) != nil {
		t.Fatalf("golden packet in %s does not decode", path)
	}
	if old.Version != decoded.Version || old.Mode != decoded.Mode || old.Poll != decoded.Poll ||
		len(old.Ext) != len(decoded.Ext) || len(old.MAC) != len(decoded.MAC) {
		t.Errorf("%s reply shape changed: now %+v, golden %+v", base, decoded.Header, old.Header)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
