package ntp

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestPeerPackets decodes replies captured from real servers (chronyd and
// NTPsec's ntpd, by go test ./cmd/meridian -run Interop -update) and checks
// them against what those servers were configured to serve.
func TestPeerPackets(t *testing.T) {
	files, err := filepath.Glob("testdata/peers/*.json")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var g struct {
				Peer, Leap, RefID, Packet string
				Stratum                   uint8
			}
			if err := json.Unmarshal(b, &g); err != nil {
				t.Fatal(err)
			}
			seen[g.Peer] = true
			raw, err := hex.DecodeString(g.Packet)
			if err != nil {
				t.Fatal(err)
			}
			var p Packet
			if err := p.Decode(raw); err != nil {
				t.Fatalf("Decode(%x) = %v", raw, err)
			}
			if p.Mode != ModeServer || p.Version != 4 || p.Stratum != g.Stratum ||
				p.RefID.Text(p.Stratum) != g.RefID || p.Leap.String() != g.Leap {
				t.Errorf("Decode(%x) = %+v; want server v4 stratum %d refid %s leap %s", raw, p.Header, g.Stratum, g.RefID, g.Leap)
			}
			if p.Transmit.IsZero() || p.Receive.IsZero() || p.Origin.IsZero() || p.Transmit.Sub(p.Receive) < 0 {
				t.Errorf("implausible timestamps in %+v", p.Header)
			}
			out := make([]byte, p.Len())
			if n, err := p.Encode(out); err != nil || !bytes.Equal(out[:n], raw) {
				t.Errorf("Encode(Decode(%x)) = %x, %v", raw, out[:n], err)
			}
		})
	}
	for _, peer := range []string{"chrony", "ntpsec"} {
		if !seen[peer] {
			t.Errorf("no captured %s packet in testdata/peers", peer)
		}
	}
}
