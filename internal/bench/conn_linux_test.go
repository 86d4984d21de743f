package bench

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cmsg builds one control message in the kernel's layout.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func timespecBytes(sec, nsec int64) []byte {
	b := make([]byte, 16)
	binary.NativeEndian.PutUint64(b, uint64(sec))
	binary.NativeEndian.PutUint64(b[8:], uint64(nsec))
	return b
}

func TestRxTimestamp(t *testing.T) {
	if unsafe.Sizeof(unix.Timespec{}) != 16 {
		t.Skip("the table assumes a 64-bit timespec")
	}
	ts := cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, timespecBytes(1_800_000_000, 123_456_789))
	other := cmsg(unix.IPPROTO_IP, unix.IP_TTL, []byte{64, 0, 0, 0})
	tests := []struct {
		name string
		oob  []byte
		want int64
	}{
		{"timestamp", ts, 1_800_000_000_123_456_789},
		{"after another message", append(append([]byte{}, other...), ts...), 1_800_000_000_123_456_789},
		{"none", other, 0},
		{"empty", nil, 0},
		{"short header", ts[:8], 0},
		{"cut data", ts[:20], 0},
		{"bad nsec", cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, timespecBytes(1_800_000_000, 1e9)), 0},
		{"negative sec", cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, timespecBytes(-1, 0)), 0},
		{"short timespec", cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, []byte{1, 2, 3, 4}), 0},
	}
	for _, tt := range tests {
		if got := rxTimestamp(tt.oob); got != tt.want {
			t.Errorf("%s: rxTimestamp(%x) = %d; want %d", tt.name, tt.oob, got, tt.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { rxTimestamp(ts) }); n != 0 {
		t.Errorf("rxTimestamp allocates %v times", n)
	}
}

func FuzzRxTimestamp(f *testing.F) {
	f.Add(cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, timespecBytes(1_800_000_000, 5)))
	f.Add(cmsg(unix.IPPROTO_IP, unix.IP_TTL, []byte{64, 0, 0, 0}))
	f.Fuzz(func(t *testing.T, b []byte) {
		// The kernel hands over aligned control data; so does recv.
		aligned := make([]uint64, (len(b)+7)/8)
		buf := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(aligned))), len(aligned)*8)[:len(b)]
		copy(buf, b)
		if ns := rxTimestamp(buf); ns < 0 {
			t.Fatalf("rxTimestamp(%x) = %d", b, ns)
		}
	})
}

// TestConnBatches sends a batch through a loopback echo and reads it back
// with kernel timestamps, allocating nothing per batch.
func TestConnBatches(t *testing.T) {
	echo, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	// The goroutine exits when echo is closed.
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := echo.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = echo.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	c, err := dial(echo.LocalAddr().(*net.UDPAddr).AddrPort(), 2, anyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	sb, rb := newBatch(48), newBatch(recvBufSize)
	roundTrip := func() { batchRoundTrip(t, c, sb, rb, 5) }
	roundTrip()
	if a := testing.AllocsPerRun(20, roundTrip); a != 0 {
		t.Errorf("a batch round trip allocates %v times", a)
	}
	// Sleeping allocates nothing either.
	if a := testing.AllocsPerRun(20, func() { c.sleep(time.Microsecond) }); a != 0 {
		t.Errorf("sleep allocates %v times", a)
	}
}

// batchRoundTrip sends n datagrams in one batch on socket 1 of c, to an
// echo, and reads them back.
func batchRoundTrip(t *testing.T, c *conn, sb, rb *batch, n int) {
	for i := range n {
		sb.bufs[i][0] = byte(i)
	}
	if sent, err := c.send(1, sb, n); sent != n || err != nil {
		t.Fatalf("send = %d, %v; want %d", sent, err, n)
	}
	got := 0
	for tries := 0; got < n && tries < 50; tries++ {
		ready, err := c.wait(100 * time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for r := range ready {
			if c.ready(r) != 1 {
				t.Fatalf("socket %d ready; only 1 was used", c.ready(r))
			}
			m, err := c.recv(1, rb)
			if err != nil && !isAgain(err) {
				t.Fatal(err)
			}
			for j := range m {
				if rb.lens[j] != 48 || rb.trunc[j] || rb.rx[j] == 0 {
					t.Fatalf("datagram %d: %d bytes, truncated %v, rx %d", j, rb.lens[j], rb.trunc[j], rb.rx[j])
				}
				if d := time.Since(time.Unix(0, rb.rx[j])); d < 0 || d > time.Minute {
					t.Fatalf("kernel timestamp %v away from now", d)
				}
			}
			got += m
		}
	}
	if got != n {
		t.Fatalf("received %d of %d", got, n)
	}
	if _, err := c.recv(1, rb); !isAgain(err) {
		t.Fatalf("recv on an empty socket: %v; want EAGAIN", err)
	}
}

// anyAddr leaves the choice of every socket's source address to the
// kernel.
func anyAddr(int) netip.Addr { return netip.Addr{} }
