package query

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/source"
)

// JSON is the machine-readable form of a Result. Durations are in seconds.
// Server, OK, Sent, Valid and Discarded are always present; Address and
// Port once the server was resolved; Error and Kiss for a failure; the
// fields from Offset on only for a valid reply.
type JSON struct {
	Server    string `json:"server"`
	Address   string `json:"address,omitempty"`
	Port      uint16 `json:"port,omitempty"`
	OK        bool   `json:"ok"`
	Error     string `json:"error,omitempty"`
	Kiss      string `json:"kiss,omitempty"`
	Sent      int    `json:"sent"`
	Valid     int    `json:"valid"`
	Discarded int    `json:"discarded"`

	Offset         *float64 `json:"offset,omitempty"`
	Delay          *float64 `json:"delay,omitempty"`
	Version        uint8    `json:"version,omitempty"`
	Stratum        uint8    `json:"stratum,omitempty"`
	RefID          string   `json:"refid,omitempty"`
	RefIDHex       string   `json:"refid_hex,omitempty"`
	Leap           string   `json:"leap,omitempty"`
	RootDelay      *float64 `json:"root_delay,omitempty"`
	RootDispersion *float64 `json:"root_dispersion,omitempty"`
	Precision      *int8    `json:"precision,omitempty"`
	Poll           *int8    `json:"poll,omitempty"`
	ReferenceTime  string   `json:"reference_time,omitempty"`
	ServerTime     string   `json:"server_time,omitempty"`
	Packet         string   `json:"packet,omitempty"`
}

func seconds(d time.Duration) *float64 {
	s := d.Seconds()
	return &s
}

// ToJSON converts r. now resolves the era of the server's timestamps.
func ToJSON(r Result, now time.Time) JSON {
	j := JSON{Server: r.Server, Sent: r.Sent, Valid: r.Valid, Discarded: r.Discarded, OK: r.Err == nil}
	if r.Addr.IsValid() {
		j.Address, j.Port = r.Addr.Addr().String(), r.Addr.Port()
	}
	if r.Err != nil {
		j.Error = r.Err.Error()
		var k source.KissError
		if errors.As(r.Err, &k) {
			j.Kiss = k.Code.Text(0)
		}
		return j
	}
	h := r.Sample.Header
	j.Offset, j.Delay = seconds(r.Sample.Offset), seconds(r.Sample.Delay)
	j.Version, j.Stratum, j.Leap = h.Version, h.Stratum, h.Leap.String()
	j.RefID, j.RefIDHex = h.RefID.Text(h.Stratum), hex.EncodeToString(h.RefID[:])
	j.RootDelay, j.RootDispersion = seconds(h.RootDelay.Duration()), seconds(h.RootDisp.Duration())
	j.Precision, j.Poll = &h.Precision, &h.Poll
	if !h.Reference.IsZero() {
		j.ReferenceTime = h.Reference.Resolve(now).Format(time.RFC3339Nano)
	}
	j.ServerTime = h.Transmit.Resolve(now).Format(time.RFC3339Nano)
	j.Packet = hex.EncodeToString(r.Packet)
	return j
}

// WriteJSON writes the results as one indented JSON array.
func WriteJSON(w io.Writer, rs []Result, now time.Time) error {
	out := make([]JSON, len(rs))
	for i, r := range rs {
		out[i] = ToJSON(r, now)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// WriteText writes a block per successful result to w and a line per
// failure to errw.
func WriteText(w, errw io.Writer, rs []Result, now time.Time) error {
	first := true
	for _, r := range rs {
		if r.Err != nil {
			if _, err := fmt.Fprintf(errw, "%s: %v\n", describe(r), r.Err); err != nil {
				return err
			}
			continue
		}
		if !first {
			if _, err := fmt.Fprintln(w); err != nil {
				return err
			}
		}
		first = false
		if _, err := io.WriteString(w, text(r, now)); err != nil {
			return err
		}
	}
	return nil
}

// describe names the server as given, with the address it resolved to when
// it was given by name.
func describe(r Result) string {
	if host, _, err := splitHostPort(r.Server); err != nil || !r.Addr.IsValid() || isAddr(host) {
		return r.Server
	}
	return r.Server + " (" + r.Addr.String() + ")"
}

func text(r Result, now time.Time) string {
	h := r.Sample.Header
	var b strings.Builder
	line := func(k, format string, a ...any) {
		fmt.Fprintf(&b, "  %-16s"+format+"\n", append([]any{k}, a...)...)
	}
	fmt.Fprintf(&b, "%s\n", describe(r))
	line("offset", "%+.9f s", r.Sample.Offset.Seconds())
	line("delay", "%.9f s", r.Sample.Delay.Seconds())
	line("stratum", "%d", h.Stratum)
	line("reference ID", "%s (%x)", h.RefID.Text(h.Stratum), h.RefID[:])
	line("leap", "%s", h.Leap)
	line("root delay", "%.6f s", h.RootDelay.Duration().Seconds())
	line("root dispersion", "%.6f s", h.RootDisp.Duration().Seconds())
	line("precision", "2^%d s (%v)", h.Precision, ntp.Log2Duration(h.Precision))
	line("poll", "2^%d s (%v)", h.Poll, ntp.Log2Duration(h.Poll))
	line("version", "%d", h.Version)
	line("server time", "%s", h.Transmit.Resolve(now).Format(time.RFC3339Nano))
	if r.Sent > 1 || r.Discarded > 0 {
		line("samples", "%d valid of %d sent, %d bogus replies discarded", r.Valid, r.Sent, r.Discarded)
	}
	return b.String()
}

func isAddr(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}
