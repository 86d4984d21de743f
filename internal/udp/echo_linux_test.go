package udp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// echo answers every datagram c receives with its own payload, from the
// address it was sent to, until c is closed. It is the shape of the
// server's worker loop.
// It counts its reads and the datagrams they returned in st, which the
// caller may read once echo has returned.
func echo(c *Conn, batch int, st *echoStats) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	msgs := newMsgs(batch, 2048)
	for {
		n, err := c.ReadBatch(msgs)
		if err != nil {
			return err
		}
		st.reads++
		st.datagrams += n
		for len(msgs[:n]) > 0 {
			k, err := c.WriteBatch(msgs[:n])
			if err != nil {
				return err
			}
			n -= k
		}
	}
}

type echoStats struct{ reads, datagrams int }

// watchdog closes conns if the test has not finished after a generous
// delay, so that a lost datagram fails a blocked ReadBatch instead of
// hanging the test. Stop it with the returned function.
func watchdog(conns ...*Conn) (stop func() bool) {
	return time.AfterFunc(2*time.Minute, func() {
		for _, c := range conns {
			c.Close()
		}
	}).Stop
}

// TestNoAllocs pins the hot path: a batch received and a batch sent
// allocate nothing once the Conn has seen a batch of that size. The
// server's replies leave from Local, so the packet-info path is covered.
func TestNoAllocs(t *testing.T) {
	for _, tc := range []struct {
		name, server, client, dst string
		dual, ipv6                bool
	}{
		{name: "IPv4", server: "0.0.0.0:0", client: "127.0.0.1:0", dst: "127.0.0.2"},
		{name: "IPv6", server: "[::]:0", client: "[::1]:0", dst: "::1", ipv6: true},
		{name: "dual/IPv4", server: "[::]:0", client: "127.0.0.1:0", dst: "127.0.0.2", dual: true, ipv6: true},
	} {
		for _, mode := range modes {
			t.Run(tc.name+"/"+mode.name, func(t *testing.T) {
				if tc.ipv6 {
					needIPv6(t)
				}
				server := listenT(t, tc.server, ListenConfig{Sockets: 1, DualStack: tc.dual}, mode.blocking)[0]
				client := listen1(t, tc.client, mode.blocking)
				dst := netip.AddrPortFrom(netip.MustParseAddr(tc.dst), server.LocalAddr().Port())
				testNoAllocs(t, server, client, dst)
			})
		}
	}
}

func testNoAllocs(t *testing.T, server, client *Conn, dst netip.AddrPort) {
	const batch = 8
	defer watchdog(server, client)()
	requests, served, replies := newMsgs(batch, 64), newMsgs(batch, 64), newMsgs(batch, 64)
	for i := range requests {
		requests[i].N = 48
		requests[i].Addr = dst
	}
	var err error
	cycle := func() {
		if err != nil {
			return
		}
		if err = writeAll(client, requests); err != nil {
			return
		}
		if err = readFull(server, served); err != nil {
			return
		}
		if err = writeAll(server, served); err != nil { // a reply from Local
			return
		}
		err = readFull(client, replies)
	}
	cycle() // warm up: grow the arrays
	if allocs := testing.AllocsPerRun(100, cycle); allocs != 0 {
		t.Errorf("%v allocations per cycle of %d datagrams each way; want 0", allocs, batch)
	}
	if err != nil {
		t.Fatal(err)
	}
	if s := served[batch-1]; s.Local != dst.Addr() || s.RxTime == 0 {
		t.Errorf("last request to %v, RxTime %d; want to %v, RxTime set", s.Local, s.RxTime, dst.Addr())
	}
	if r := replies[batch-1]; r.Addr != dst || r.N != 48 || r.RxTime == 0 {
		t.Errorf("last reply from %v, %d bytes, RxTime %d; want from %v, 48 bytes, RxTime set", r.Addr, r.N, r.RxTime, dst)
	}
}

// BenchmarkEcho measures round trips over loopback: a client sends
// batches of datagrams to a server goroutine that reads and answers them
// like the server's worker loop (locked to its thread), and reads the
// replies. With window 1 the client waits for each batch's replies before
// sending the next, which measures latency and the cost of waking the
// server; with a larger window it keeps that many batches in flight, so the
// server finds datagrams waiting, as under load. One op is one datagram
// there and back.
func BenchmarkEcho(b *testing.B) {
	for _, mode := range modes {
		for _, p := range []struct{ batch, window int }{{1, 1}, {8, 1}, {32, 1}, {8, 8}, {32, 8}} {
			b.Run(fmt.Sprintf("%s/batch=%d/window=%d", mode.name, p.batch, p.window), func(b *testing.B) {
				benchmarkEcho(b, mode.blocking, p.batch, p.window)
			})
		}
	}
}

func benchmarkEcho(b *testing.B, blocking bool, batch, window int) {
	server := listen1(b, "127.0.0.1:0", blocking)
	client := listen1(b, "127.0.0.1:0", false)
	defer watchdog(server, client)()
	done := make(chan error, 1)
	var st echoStats
	go func() { done <- echo(server, batch, &st) }() // exits when server is closed
	requests, replies := newMsgs(batch, 64), newMsgs(batch, 64)
	for i := range requests {
		requests[i].N = 48
		requests[i].Addr = server.LocalAddr()
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	inFlight := 0
	for sent := 0; sent < b.N || inFlight > 0; {
		for sent < b.N && inFlight < window {
			if err := writeAll(client, requests); err != nil {
				b.Fatal(err)
			}
			sent += batch
			inFlight++
		}
		if err := readFull(client, replies); err != nil {
			b.Fatal(err)
		}
		inFlight--
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	server.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		b.Fatalf("echo: %v", err)
	}
	b.ReportMetric(float64(st.datagrams)/float64(st.reads), "datagrams/read")
}

// cpuTime returns the CPU time the process has used, in nanoseconds.
func cpuTime(b *testing.B) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
