package query

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/source"
)

// DefaultPort is the NTP port.
const DefaultPort = 123

// Config controls a query. The zero value queries once over IPv4 or IPv6
// with a 5 s timeout.
type Config struct {
	// Network is "ip" (either family, the default), "ip4" or "ip6".
	Network string
	// Count is the number of requests per server (default 1); the sample
	// with the lowest delay is kept.
	Count int
	// Interval separates requests to one server (default 2 s, which keeps
	// under the rate limits of public servers).
	Interval time.Duration
	// Timeout bounds the wait for each reply (default 5 s).
	Timeout time.Duration
	// Rand supplies the random transmit timestamps. It must be a
	// cryptographically secure source, safe for concurrent use when All
	// queries several servers; nil means crypto/rand.Reader.
	Rand io.Reader
	// Resolver resolves server names; nil means a pure-Go resolver.
	Resolver *net.Resolver
	// Now reads the local clock; nil means time.Now. Tests may replace it.
	// Kernel receive timestamps read the system clock, so they are used
	// only when Now is nil.
	Now func() time.Time

	systemClock bool // Now was nil: kernel timestamps agree with it
}

func (c *Config) defaults() {
	if c.Network == "" {
		c.Network = "ip"
	}
	if c.Count <= 0 {
		c.Count = 1
	}
	if c.Interval <= 0 {
		c.Interval = 2 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.Resolver == nil {
		c.Resolver = &net.Resolver{PreferGo: true}
	}
	if c.Now == nil {
		c.Now, c.systemClock = time.Now, true
	}
}

// Result is the outcome of querying one server.
type Result struct {
	// Server is the server as it was given.
	Server string
	// Addr is the address that was queried; invalid if resolution failed.
	Addr netip.AddrPort
	// Sample is the kept measurement, valid when Err is nil.
	Sample source.Sample
	// Packet is the reply the sample came from.
	Packet []byte
	// Sent and Valid count requests sent and valid replies received.
	Sent, Valid int
	// Discarded counts replies dropped as bogus (wrong origin, wrong mode,
	// malformed): what an off-path attacker's packets would look like.
	Discarded int
	// Err is why no valid sample was obtained: a timeout, a
	// source.KissError, a source.Reason, or a network error.
	Err error
}

// ErrTimeout means no valid reply arrived in time.
var ErrTimeout = errors.New("no valid reply before the timeout")

// All queries every server concurrently and returns the results in the
// order of servers.
func All(ctx context.Context, servers []string, cfg Config) []Result {
	cfg.defaults()
	res := make([]Result, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Add(1)
		// The goroutine exits when its query has finished or ctx is done.
		go func() {
			defer wg.Done()
			res[i] = One(ctx, s, cfg)
		}()
	}
	wg.Wait()
	return res
}

// One queries a single server, given as HOST, HOST:PORT, an IP address or
// [IPv6]:PORT.
func One(ctx context.Context, server string, cfg Config) Result {
	cfg.defaults()
	r := Result{Server: server}
	addr, err := Resolve(ctx, cfg.Resolver, cfg.Network, server)
	if err != nil {
		r.Err = err
		return r
	}
	r.Addr = addr
	for i := range cfg.Count {
		if i > 0 {
			t := time.NewTimer(cfg.Interval)
			select {
			case <-ctx.Done():
				t.Stop()
				r.setErr(ctx.Err())
				return r
			case <-t.C:
			}
		}
		s, pkt, err := exchange(ctx, &cfg, addr, &r)
		if err != nil {
			r.setErr(err)
			if errors.As(err, new(source.KissError)) || errors.Is(err, source.ErrUnsynchronized) ||
				errors.Is(err, syscall.ECONNREFUSED) || ctx.Err() != nil {
				break // the server said no, or is not there: stop asking
			}
			continue
		}
		r.Valid++
		if r.Valid == 1 || s.Delay < r.Sample.Delay {
			r.Sample, r.Packet = s, pkt
		}
	}
	if r.Valid > 0 {
		r.Err = nil
	}
	return r
}

// setErr records err unless a valid sample was already obtained.
func (r *Result) setErr(err error) {
	if r.Valid == 0 {
		r.Err = err
	}
}

// Resolve turns a server argument into an address, using network ("ip",
// "ip4" or "ip6") to choose among a name's addresses.
func Resolve(ctx context.Context, res *net.Resolver, network, server string) (netip.AddrPort, error) {
	host, port, err := splitHostPort(server)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return netip.AddrPort{}, fmt.Errorf("address %s: zones are not supported", host)
		}
		a = a.Unmap()
		if (network == "ip4" && !a.Is4()) || (network == "ip6" && !a.Is6()) {
			return netip.AddrPort{}, fmt.Errorf("address %s is not %s", host, familyName(network))
		}
		return netip.AddrPortFrom(a, port), nil
	}
	addrs, err := res.LookupNetIP(ctx, network, host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolve %s: no %s address", host, familyName(network))
	}
	return netip.AddrPortFrom(addrs[0].Unmap(), port), nil
}

func familyName(network string) string {
	switch network {
	case "ip4":
		return "IPv4"
	case "ip6":
		return "IPv6"
	}
	return "IP"
}

// splitHostPort accepts HOST, HOST:PORT, IPv6, [IPv6] and [IPv6]:PORT.
func splitHostPort(s string) (string, uint16, error) {
	if s == "" {
		return "", 0, errors.New("empty server name")
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return s, DefaultPort, nil // a bare IPv6 address has colons but no port
	}
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) && ae.Err == "missing port in address" {
			if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
				s = s[1 : len(s)-1] // [IPv6] without a port
			}
			return s, DefaultPort, nil
		}
		if errors.As(err, &ae) {
			return "", 0, errors.New(ae.Err) // ae.Error() would repeat the server
		}
		return "", 0, err
	}
	p, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("invalid port %q", ps)
	}
	if host == "" {
		return "", 0, errors.New("empty host")
	}
	return host, uint16(p), nil
}

// exchange sends one request from a new socket and waits for its reply,
// discarding bogus packets until the timeout.
func exchange(ctx context.Context, cfg *Config, addr netip.AddrPort, r *Result) (source.Sample, []byte, error) {
	if err := ctx.Err(); err != nil {
		return source.Sample{}, nil, err // do not send what nobody waits for
	}
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return source.Sample{}, nil, fmt.Errorf("socket: %w", err)
	}
	defer conn.Close()
	kernelTS := cfg.systemClock && EnableRxTimestamps(conn) == nil

	var rnd [8]byte
	if _, err := io.ReadFull(cfg.Rand, rnd[:]); err != nil {
		return source.Sample{}, nil, fmt.Errorf("random transmit timestamp: %w", err)
	}
	xmt := ntp.Time(binary.BigEndian.Uint64(rnd[:]))
	if xmt == 0 {
		xmt = 1 // zero means "not set" on the wire
	}
	var req [ntp.HeaderLen]byte
	b, err := source.Request(req[:], xmt)
	if err != nil {
		return source.Sample{}, nil, err
	}

	// Socket deadlines follow the system clock, whatever cfg.Now says.
	deadline := time.Now().Add(cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetReadDeadline(deadline); err != nil {
		return source.Sample{}, nil, err
	}
	// Cancelling ctx ends the wait for a reply: the read then fails as if
	// timed out and ctx.Err() is returned. Errors are ignored because conn
	// may already be closed.
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	t1 := ntp.TimeFrom(cfg.Now())
	if _, err := conn.Write(b); err != nil {
		return source.Sample{}, nil, fmt.Errorf("send: %w", err)
	}
	r.Sent++

	buf := make([]byte, 2048)
	oob := make([]byte, 128)
	for {
		n, oobn, flags, _, err := conn.ReadMsgUDPAddrPort(buf, oob)
		now := cfg.Now()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if ctx.Err() != nil {
					return source.Sample{}, nil, ctx.Err()
				}
				return source.Sample{}, nil, fmt.Errorf("%w (%v)", ErrTimeout, cfg.Timeout)
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				return source.Sample{}, nil, fmt.Errorf("%w (nothing listens on that port)", syscall.ECONNREFUSED)
			}
			return source.Sample{}, nil, fmt.Errorf("receive: %w", err)
		}
		if flags&MsgTrunc != 0 {
			r.Discarded++ // larger than any reply to a 48-byte request
			continue
		}
		rx := now
		if kernelTS {
			if ts, ok := RxTimestamp(oob[:oobn]); ok {
				rx = ts
			}
		}
		s, err := source.CheckReply(buf[:n], xmt, t1, ntp.TimeFrom(rx))
		var reason source.Reason
		if errors.As(err, &reason) && reason.Bogus() {
			r.Discarded++
			continue // not the answer to our request: keep waiting
		}
		if err != nil {
			return source.Sample{}, nil, err
		}
		return s, append([]byte(nil), buf[:n]...), nil
	}
}
