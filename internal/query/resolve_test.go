package query

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestSplitHostPort(t *testing.T) {
	tests := []struct {
		in      string
		host    string
		port    uint16
		wantErr bool
	}{
		{in: "ntp.example.test", host: "ntp.example.test", port: 123},
		{in: "ntp.example.test:4123", host: "ntp.example.test", port: 4123},
		{in: "127.0.0.1", host: "127.0.0.1", port: 123},
		{in: "127.0.0.1:11123", host: "127.0.0.1", port: 11123},
		{in: "127.0.0.1:65535", host: "127.0.0.1", port: 65535},
		{in: "127.0.0.1:1", host: "127.0.0.1", port: 1},
		{in: "::1", host: "::1", port: 123},
		{in: "[::1]:123", host: "::1", port: 123},
		{in: "[::1]:4123", host: "::1", port: 4123},
		{in: "[::1]", host: "::1", port: 123},
		{in: "[2001:db8::1]", host: "2001:db8::1", port: 123},
		// A bare IPv6 address is never split, even if it ends like a port:
		// "::1:123" is the address 0:0:0:0:0:0:1:123.
		{in: "::1:123", host: "::1:123", port: 123},
		{in: "::ffff:192.0.2.1", host: "::ffff:192.0.2.1", port: 123},
		{in: "", wantErr: true},
		{in: "127.0.0.1:0", wantErr: true},
		{in: "127.0.0.1:65536", wantErr: true},
		{in: "127.0.0.1:-1", wantErr: true},
		{in: "127.0.0.1:0x7b", wantErr: true},
		{in: "127.0.0.1:ntp", wantErr: true},
		{in: "host:", wantErr: true},
		{in: "[::1]:", wantErr: true},
		{in: "[::1]:0", wantErr: true},
		{in: ":123", wantErr: true},
		{in: "[]:123", wantErr: true},
		{in: "a:b:c", wantErr: true},
		{in: "[::1", wantErr: true},
		{in: "::1]:123", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			host, port, err := splitHostPort(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Errorf("splitHostPort(%q) = %q, %d, nil; want an error", tt.in, host, port)
				}
				return
			}
			if err != nil || host != tt.host || port != tt.port {
				t.Errorf("splitHostPort(%q) = %q, %d, %v; want %q, %d, nil", tt.in, host, port, err, tt.host, tt.port)
			}
		})
	}
}

// noDNS returns a resolver that fails the test if it tries to reach a name
// server.
func noDNS(t *testing.T) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		t.Errorf("unexpected DNS query")
		return nil, errors.New("no DNS in this test")
	}}
}

func TestResolveLiteral(t *testing.T) {
	tests := []struct {
		network, in string
		want        string // netip.AddrPort text; "" means an error
		errHas      string // part of the error message, if any
	}{
		{"ip", "127.0.0.1", "127.0.0.1:123", ""},
		{"ip4", "127.0.0.1", "127.0.0.1:123", ""},
		{"ip", "127.0.0.1:11123", "127.0.0.1:11123", ""},
		{"ip", "::1", "[::1]:123", ""},
		{"ip6", "::1", "[::1]:123", ""},
		{"ip", "[::1]:123", "[::1]:123", ""},
		{"ip", "[::1]:4123", "[::1]:4123", ""},
		{"ip", "[::1]", "[::1]:123", ""},
		{"ip", "::ffff:192.0.2.1", "192.0.2.1:123", ""},
		{"ip4", "::ffff:192.0.2.1", "192.0.2.1:123", ""},
		{"ip", "[::ffff:192.0.2.1]:8123", "192.0.2.1:8123", ""},
		{"ip", "2001:db8::1", "[2001:db8::1]:123", ""},
		{"ip", "127.0.0.1:0", "", "invalid port"},
		{"ip", "[::1]:0", "", "invalid port"},
		{"ip", "127.0.0.1:65536", "", "invalid port"},
		{"ip", "127.0.0.1:", "", "invalid port"},
		{"ip", "", "", "empty"},
		{"ip", ":123", "", "empty host"},
		{"ip4", "::1", "", "not IPv4"},
		{"ip4", "[::1]:123", "", "not IPv4"},
		{"ip4", "2001:db8::1", "", "not IPv4"},
		{"ip6", "127.0.0.1", "", "not IPv6"},
		{"ip6", "127.0.0.1:123", "", "not IPv6"},
		// An IPv4-mapped address is IPv4 on the wire.
		{"ip6", "::ffff:192.0.2.1", "", "not IPv6"},
		{"ip", "fe80::1%eth0", "", "zones"},
		{"ip", "[fe80::1%eth0]:123", "", "zones"},
		{"ip6", "fe80::1%1", "", "zones"},
	}
	for _, tt := range tests {
		t.Run(tt.network+" "+tt.in, func(t *testing.T) {
			got, err := Resolve(context.Background(), noDNS(t), tt.network, tt.in)
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Errorf("Resolve(%q, %q) = %v, %v; want an error containing %q", tt.network, tt.in, got, err, tt.errHas)
				}
				return
			}
			want := netip.MustParseAddrPort(tt.want)
			if err != nil || got != want {
				t.Errorf("Resolve(%q, %q) = %v, %v; want %v", tt.network, tt.in, got, err, want)
			}
			if got.Addr().Is4In6() {
				t.Errorf("Resolve(%q, %q) = %v: IPv4-mapped address not unmapped", tt.network, tt.in, got)
			}
		})
	}
}

// TestResolveLocalhost resolves "localhost" from the hosts file (no DNS),
// which the pure-Go resolver returns as an IPv4-mapped address.
func TestResolveLocalhost(t *testing.T) {
	probe := &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no DNS in this test")
	}}
	if _, err := probe.LookupNetIP(context.Background(), "ip4", "localhost"); err != nil {
		t.Skipf("localhost has no IPv4 address in the hosts file here: %v", err)
	}
	res := noDNS(t)
	for _, network := range []string{"ip", "ip4"} {
		got, err := Resolve(context.Background(), res, network, "localhost:4123")
		if err != nil || !got.Addr().Is4() || !got.Addr().IsLoopback() || got.Port() != 4123 {
			t.Errorf("Resolve(%q, %q) = %v, %v; want an unmapped IPv4 loopback address, port 4123",
				network, "localhost:4123", got, err)
		}
	}
}

// zone is what the test DNS server knows: A and AAAA records by
// lower-case fully qualified name. Other names get NXDOMAIN.
type zone map[string][]netip.Addr

// dnsServer is a minimal DNS server on loopback for the pure-Go resolver.
type dnsServer struct {
	addr    string
	queries atomic.Int64
}

// startDNS serves z on 127.0.0.1 until the test ends.
func startDNS(t *testing.T, z zone) *dnsServer {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{addr: conn.LocalAddr().String()}
	var wg sync.WaitGroup
	wg.Add(1)
	// The goroutine exits when the cleanup closes conn.
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			s.queries.Add(1)
			if resp := dnsAnswer(buf[:n], z); resp != nil {
				conn.WriteToUDPAddrPort(resp, from) // best effort: the resolver retries
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		wg.Wait()
	})
	return s
}

// resolver returns a pure-Go resolver whose every query goes to s.
func (s *dnsServer) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", s.addr)
	}}
}

const (
	dnsTypeA    = 1
	dnsTypeAAAA = 28
	dnsClassIN  = 1
)

// dnsAnswer builds the response to query q from z (RFC 1035 §4.1), or
// returns nil if q is not a query it understands.
func dnsAnswer(q []byte, z zone) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return nil
	}
	// Read the question's name: labels without compression.
	var name strings.Builder
	i := 12
	for {
		if i >= len(q) {
			return nil
		}
		l := int(q[i])
		i++
		if l == 0 {
			break
		}
		if l > 63 || i+l > len(q) {
			return nil
		}
		name.WriteString(strings.ToLower(string(q[i : i+l])))
		name.WriteByte('.')
		i += l
	}
	if i+4 > len(q) {
		return nil
	}
	qtype, qclass := binary.BigEndian.Uint16(q[i:]), binary.BigEndian.Uint16(q[i+2:])
	question := q[12 : i+4]

	var answers [][]byte
	addrs, known := z[name.String()]
	for _, a := range addrs {
		if qclass != dnsClassIN {
			break
		}
		if (qtype == dnsTypeA && a.Is4()) || (qtype == dnsTypeAAAA && !a.Is4()) {
			answers = append(answers, a.AsSlice())
		}
	}
	rcode := uint16(0)
	if !known {
		rcode = 3 // NXDOMAIN
	}
	// Flags: response, authoritative, recursion desired (copied) and
	// available.
	flags := uint16(0x8000|0x0400|0x0080) | binary.BigEndian.Uint16(q[2:])&0x0100 | rcode
	resp := binary.BigEndian.AppendUint16(nil, binary.BigEndian.Uint16(q))
	resp = binary.BigEndian.AppendUint16(resp, flags)
	resp = binary.BigEndian.AppendUint16(resp, 1)
	resp = binary.BigEndian.AppendUint16(resp, uint16(len(answers)))
	resp = binary.BigEndian.AppendUint32(resp, 0) // no authority or additional records
	resp = append(resp, question...)
	for _, rdata := range answers {
		resp = append(resp, 0xC0, 12) // the name: a pointer to the question's
		resp = binary.BigEndian.AppendUint16(resp, qtype)
		resp = binary.BigEndian.AppendUint16(resp, dnsClassIN)
		resp = binary.BigEndian.AppendUint32(resp, 60) // TTL
		resp = binary.BigEndian.AppendUint16(resp, uint16(len(rdata)))
		resp = append(resp, rdata...)
	}
	return resp
}

func TestResolveName(t *testing.T) {
	z := zone{
		"v4.meridian.test.":     {netip.MustParseAddr("192.0.2.10")},
		"v6.meridian.test.":     {netip.MustParseAddr("2001:db8::10")},
		"dual.meridian.test.":   {netip.MustParseAddr("192.0.2.20"), netip.MustParseAddr("2001:db8::20")},
		"mapped.meridian.test.": {netip.MustParseAddr("::ffff:198.51.100.7")},
		"empty.meridian.test.":  nil,
	}
	dns := startDNS(t, z)
	res := dns.resolver()
	tests := []struct {
		network, in string
		want        []string // acceptable answers; none means an error
	}{
		{"ip", "v4.meridian.test", []string{"192.0.2.10:123"}},
		{"ip4", "v4.meridian.test", []string{"192.0.2.10:123"}},
		{"ip", "v4.meridian.test:4123", []string{"192.0.2.10:4123"}},
		{"ip", "V4.Meridian.Test", []string{"192.0.2.10:123"}},
		{"ip6", "v4.meridian.test", nil},
		{"ip", "v6.meridian.test", []string{"[2001:db8::10]:123"}},
		{"ip6", "v6.meridian.test", []string{"[2001:db8::10]:123"}},
		{"ip", "[v6.meridian.test]:4123", []string{"[2001:db8::10]:4123"}},
		{"ip4", "v6.meridian.test", nil},
		{"ip4", "dual.meridian.test", []string{"192.0.2.20:123"}},
		{"ip6", "dual.meridian.test", []string{"[2001:db8::20]:123"}},
		{"ip", "dual.meridian.test", []string{"192.0.2.20:123", "[2001:db8::20]:123"}},
		// An AAAA record holding an IPv4-mapped address is IPv4 on the
		// wire, so it does not satisfy -6.
		{"ip", "mapped.meridian.test", []string{"198.51.100.7:123"}},
		{"ip6", "mapped.meridian.test", nil},
		{"ip4", "mapped.meridian.test", nil},
		{"ip", "empty.meridian.test", nil},
		{"ip", "nx.meridian.test", nil},
		{"ip", "nx.meridian.test:123", nil},
	}
	for _, tt := range tests {
		t.Run(tt.network+" "+tt.in, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := Resolve(ctx, res, tt.network, tt.in)
			if len(tt.want) == 0 {
				if err == nil {
					t.Errorf("Resolve(%q, %q) = %v, nil; want an error", tt.network, tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%q, %q) = %v, %v; want one of %v", tt.network, tt.in, got, err, tt.want)
			}
			ok := false
			for _, w := range tt.want {
				ok = ok || got == netip.MustParseAddrPort(w)
			}
			if !ok {
				t.Errorf("Resolve(%q, %q) = %v; want one of %v", tt.network, tt.in, got, tt.want)
			}
		})
	}
	if dns.queries.Load() == 0 {
		t.Errorf("the test DNS server saw no queries")
	}

	t.Run("not found", func(t *testing.T) {
		_, err := Resolve(context.Background(), res, "ip", "nx.meridian.test")
		var de *net.DNSError
		if !errors.As(err, &de) || !de.IsNotFound {
			t.Errorf("Resolve(%q) = %v; want a *net.DNSError with IsNotFound", "nx.meridian.test", err)
		}
		if err == nil || !strings.Contains(err.Error(), "resolve nx.meridian.test") {
			t.Errorf("Resolve(%q) = %v; want the error to name the operation and host", "nx.meridian.test", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		got, err := Resolve(ctx, res, "ip", "v4.meridian.test")
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Resolve(cancelled, %q) = %v, %v; want context.Canceled", "v4.meridian.test", got, err)
		}
	})
}
