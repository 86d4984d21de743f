package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/source"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files")

// goldenNow is the local time the golden results were rendered at.
var goldenNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// goldenResults covers each kind of outcome: two valid replies (one
// through a name with bogus replies discarded, one to an IPv6 literal
// with a leap warning), a kiss-o'-death, a timeout and a resolution
// failure.
func goldenResults(t *testing.T) []Result {
	h1 := ntp.Header{
		Version:   4,
		Mode:      ntp.ModeServer,
		Stratum:   2,
		Poll:      6,
		Precision: -23,
		RootDelay: ntp.ShortFrom(12 * time.Millisecond),
		RootDisp:  ntp.ShortFrom(1500 * time.Microsecond),
		RefID:     ntp.RefID{192, 0, 2, 1},
		Reference: ntp.TimeFrom(goldenNow.Add(-90 * time.Second)),
		Origin:    0x0123456789ABCDEF,
		Receive:   ntp.TimeFrom(goldenNow.Add(-1234567 * time.Nanosecond)),
		Transmit:  ntp.TimeFrom(goldenNow.Add(-1200000 * time.Nanosecond)),
	}
	h2 := ntp.Header{
		Leap:      ntp.LeapInsert,
		Version:   3,
		Mode:      ntp.ModeServer,
		Stratum:   1,
		Poll:      -2,
		Precision: -128,
		RefID:     ntp.RefID{'G', 'P', 'S', 0},
		Origin:    0xFEDCBA9876543210,
		Receive:   ntp.TimeFrom(goldenNow.Add(250 * time.Millisecond)),
		Transmit:  ntp.TimeFrom(goldenNow.Add(250*time.Millisecond + 40*time.Microsecond)),
	}
	resolveErr := Result{Server: "ntp.example.test:99999"}
	_, resolveErr.Err = Resolve(context.Background(), noDNS(t), "ip", resolveErr.Server)
	return []Result{
		{
			Server: "ntp.example.test",
			Addr:   netip.MustParseAddrPort("192.0.2.10:123"),
			Sample: source.Sample{Offset: -1234567 * time.Nanosecond, Delay: 23456789 * time.Nanosecond, Header: h1},
			Packet: encode(h1),
			Sent:   1, Valid: 1,
		},
		{
			Server: "kod.example.test",
			Addr:   netip.MustParseAddrPort("192.0.2.30:123"),
			Sent:   1,
			Err:    source.KissError{Code: ntp.KissRATE},
		},
		{
			Server: "[2001:db8::123]:4123",
			Addr:   netip.MustParseAddrPort("[2001:db8::123]:4123"),
			Sample: source.Sample{Offset: 250*time.Millisecond + 20*time.Microsecond, Delay: 900 * time.Microsecond, Header: h2},
			Packet: encode(h2),
			Sent:   3, Valid: 2, Discarded: 2,
		},
		{
			Server:    "192.0.2.40",
			Addr:      netip.MustParseAddrPort("192.0.2.40:123"),
			Sent:      3,
			Discarded: 1,
			Err:       fmt.Errorf("%w (%v)", ErrTimeout, 5*time.Second),
		},
		resolveErr,
	}
}

// checkGolden compares got with testdata/name, or rewrites it with
// -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run go test -update if the change is intended)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestWriteTextGolden(t *testing.T) {
	var out, errs bytes.Buffer
	if err := WriteText(&out, &errs, goldenResults(t), goldenNow); err != nil {
		t.Fatalf("WriteText: %v", err)
	}
	checkGolden(t, "text.golden", []byte("-- stdout --\n"+out.String()+"-- stderr --\n"+errs.String()))
}

func TestWriteJSONGolden(t *testing.T) {
	rs := goldenResults(t)
	var out bytes.Buffer
	if err := WriteJSON(&out, rs, goldenNow); err != nil {
		t.Fatalf("WriteJSON: %v", err)
	}
	checkGolden(t, "json.golden", out.Bytes())

	// The output decodes to exactly what ToJSON returns.
	var got []JSON
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("WriteJSON wrote invalid JSON: %v\n%s", err, out.Bytes())
	}
	if len(got) != len(rs) {
		t.Fatalf("WriteJSON wrote %d results; want %d", len(got), len(rs))
	}
	for i, r := range rs {
		if want := ToJSON(r, goldenNow); !reflect.DeepEqual(got[i], want) {
			t.Errorf("WriteJSON result %d decodes to %+v; want ToJSON's %+v", i, got[i], want)
		}
	}
}

func TestToJSON(t *testing.T) {
	rs := goldenResults(t)
	f := func(v float64) *float64 { return &v }
	i8 := func(v int8) *int8 { return &v }
	tests := []struct {
		name string
		r    Result
		now  time.Time
		want JSON
	}{
		{"valid", rs[0], goldenNow, JSON{
			Server: "ntp.example.test", Address: "192.0.2.10", Port: 123, OK: true, Sent: 1, Valid: 1,
			Offset: f(-0.001234567), Delay: f(0.023456789), Version: 4, Stratum: 2,
			RefID: "192.0.2.1", RefIDHex: "c0000201", Leap: "none",
			RootDelay: f(rs[0].Sample.Header.RootDelay.Duration().Seconds()), RootDispersion: f(rs[0].Sample.Header.RootDisp.Duration().Seconds()),
			Precision: i8(-23), Poll: i8(6),
			ReferenceTime: "2025-06-01T11:58:30Z", ServerTime: "2025-06-01T11:59:59.9988Z",
			Packet: fmt.Sprintf("%x", rs[0].Packet),
		}},
		{"kiss", rs[1], goldenNow, JSON{
			Server: "kod.example.test", Address: "192.0.2.30", Port: 123, Sent: 1,
			Error: "kiss-o'-death RATE: rate limit exceeded, poll less often", Kiss: "RATE",
		}},
		{"wrapped kiss", Result{Server: "x", Err: fmt.Errorf("query: %w", source.KissError{Code: ntp.KissDENY})}, goldenNow, JSON{
			Server: "x", Error: "query: kiss-o'-death DENY: access denied", Kiss: "DENY",
		}},
		{"timeout", rs[3], goldenNow, JSON{
			Server: "192.0.2.40", Address: "192.0.2.40", Port: 123, Sent: 3, Discarded: 1,
			Error: "no valid reply before the timeout (5s)",
		}},
		{"unresolved", Result{Server: "nx.example.test", Err: errors.New("resolve nx.example.test: no such host")}, goldenNow, JSON{
			Server: "nx.example.test", Error: "resolve nx.example.test: no such host",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ToJSON(tt.r, tt.now); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ToJSON(%+v) =\n%s\nwant\n%s", tt.r, jsonText(got), jsonText(tt.want))
			}
		})
	}
}

func jsonText(j JSON) []byte {
	b, _ := json.Marshal(j) // JSON has no values that fail to marshal
	return b
}

// TestServerTimeEra renders server times near the end of NTP era 0: the
// era is taken from now, so a timestamp that has wrapped is read as 2036.
func TestServerTimeEra(t *testing.T) {
	eraEnd := time.Date(2036, 2, 7, 6, 28, 16, 0, time.UTC)
	tests := []struct {
		server, now time.Time
	}{
		{eraEnd.Add(-time.Second), eraEnd.Add(-time.Minute)},
		{eraEnd.Add(time.Second), eraEnd.Add(-time.Minute)},
		{eraEnd.Add(-time.Minute), eraEnd.Add(time.Second)},
		{eraEnd.Add(time.Hour), eraEnd.Add(time.Hour)},
		{goldenNow, goldenNow},
	}
	for _, tt := range tests {
		t.Run(tt.server.Format(time.RFC3339), func(t *testing.T) {
			h := ntp.Header{Version: 4, Mode: ntp.ModeServer, Stratum: 2,
				Reference: ntp.TimeFrom(tt.server), Receive: ntp.TimeFrom(tt.server), Transmit: ntp.TimeFrom(tt.server)}
			r := Result{Server: "s", Sample: source.Sample{Header: h}, Packet: encode(h), Sent: 1, Valid: 1}
			want := tt.server.Format(time.RFC3339Nano)
			j := ToJSON(r, tt.now)
			if j.ServerTime != want || j.ReferenceTime != want {
				t.Errorf("ToJSON(transmit %#x, now %v) server, reference time = %s, %s; want %s",
					uint64(h.Transmit), tt.now, j.ServerTime, j.ReferenceTime, want)
			}
			var out bytes.Buffer
			if err := WriteText(&out, &out, []Result{r}, tt.now); err != nil || !bytes.Contains(out.Bytes(), []byte("  server time     "+want+"\n")) {
				t.Errorf("WriteText(transmit %#x, now %v) = %q, %v; want server time %s", uint64(h.Transmit), tt.now, out.Bytes(), err, want)
			}
		})
	}
}

// failWriter fails every write.
type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestWriteErrors(t *testing.T) {
	errWrite := errors.New("disk full")
	rs := goldenResults(t)
	var sink bytes.Buffer
	tests := []struct {
		name string
		fn   func() error
	}{
		{"text stdout", func() error { return WriteText(failWriter{errWrite}, &sink, rs, goldenNow) }},
		{"text stderr", func() error { return WriteText(&sink, failWriter{errWrite}, rs, goldenNow) }},
		{"text stdout, second result", func() error {
			return WriteText(&limitWriter{n: 1, err: errWrite}, &sink, rs, goldenNow)
		}},
		{"json", func() error { return WriteJSON(failWriter{errWrite}, rs, goldenNow) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.fn(); !errors.Is(err, errWrite) {
				t.Errorf("%s: error = %v; want %v", tt.name, err, errWrite)
			}
		})
	}
}

// limitWriter accepts n writes, then fails.
type limitWriter struct {
	n   int
	err error
}

func (w *limitWriter) Write(b []byte) (int, error) {
	if w.n == 0 {
		return 0, w.err
	}
	w.n--
	return len(b), nil
}
