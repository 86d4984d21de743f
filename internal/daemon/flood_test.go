package daemon

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/config"
	"github.com/meridian-ntp/meridian/internal/ntp"
)

// flood sends count requests to addr from the given sockets, round robin,
// and counts the replies that arrive until a second after the last send.
// It returns the replies and how long the sending took.
func flood(t *testing.T, conns []*net.UDPConn, count int) (answers int, took time.Duration) {
	t.Helper()
	var got atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		// The reader exits when its socket's deadline passes.
		go func() {
			defer wg.Done()
			buf := make([]byte, 512)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
				got.Add(1)
			}
		}()
	}
	req := rawRequest(4, ntp.ModeClient)
	start := time.Now()
	for i := range count {
		// Send errors (ENOBUFS under load) only mean fewer requests.
		_, _ = conns[i%len(conns)].Write(req)
	}
	took = time.Since(start)
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(time.Second))
	}
	wg.Wait()
	return int(got.Load()), took
}

func dial(t *testing.T, from, to netip.AddrPort, n int) []*net.UDPConn {
	t.Helper()
	var cs []*net.UDPConn
	for range n {
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(from), net.UDPAddrFromAddrPort(to))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs = append(cs, c)
	}
	return cs
}

func limitedConfig(c *config.Config) {
	c.Server.Workers = 2
	c.Server.RateLimit.Interval = time.Second
	c.Server.RateLimit.Burst = 16
	c.Server.RateLimit.Leak = 0 // never: the counts below are exact
}

// TestFloodOneClient covers THREATS B3, B4 and B9: a flood from one
// address, from one port or from 200 random ports, is answered only within
// its budget across all workers, another client is still served meanwhile,
// and nothing is logged per packet.
func TestFloodOneClient(t *testing.T) {
	for _, ports := range []int{1, 200} {
		d, logs := startDaemon(t, limitedConfig)
		addr := d.Addrs()[0]
		conns := dial(t, netip.MustParseAddrPort("127.0.0.1:0"), addr, ports)

		// Another client, at 127.0.0.2 (loopback too), asks during the flood.
		other := dial(t, netip.MustParseAddrPort("127.0.0.2:0"), addr, 1)[0]
		var otherReply []byte
		done := make(chan struct{})
		go func() { // exits after one exchange, bounded by its deadline
			defer close(done)
			time.Sleep(20 * time.Millisecond)
			otherReply = exchangeOn(other, rawRequest(4, ntp.ModeClient), 3*time.Second)
		}()
		answers, took := flood(t, conns, 20000)
		<-done
		budget := 16 + int(took/time.Second) + 1 + 1 // burst, refill while sending and waiting, rounding
		if answers > budget || answers < 16 {
			t.Errorf("%d ports: %d answers to 20000 requests in %v; want 16..%d", ports, answers, took, budget)
		}
		st := d.Stats()
		t.Logf("%d ports: %d answered in %v; verdicts %v", ports, answers, took, st.Verdicts)
		if otherReply == nil {
			t.Errorf("%d ports: another client was not served during the flood", ports)
		}
		if n := strings.Count(logs.String(), "\n"); n > 4 {
			t.Errorf("%d log lines during a flood:\n%s", n, logs)
		}
	}
}

// exchangeOn sends b on c and returns the first reply, or nil after wait.
func exchangeOn(c *net.UDPConn, b []byte, wait time.Duration) []byte {
	if _, err := c.Write(b); err != nil {
		return nil
	}
	if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return nil
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}
