package control

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func echo(cmd string) (any, error) {
	if cmd == "status" {
		return Status{Synchronized: true, Stratum: 3}, nil
	}
	return nil, errors.New("unknown command " + cmd)
}

func TestHandleAndAsk(t *testing.T) {
	client, srv := net.Pipe()
	defer client.Close()
	go func() { // exits once the one request is answered
		defer srv.Close()
		Handle(srv, srv, echo)
	}()
	var st Status
	if err := Ask(client, "status", &st); err != nil || !st.Synchronized || st.Stratum != 3 {
		t.Errorf("Ask(status) = %+v, %v", st, err)
	}
	// A bad command, bad JSON and a bad frame all get error responses.
	for _, in := range [][]byte{frame([]byte(`{"command":"bogus"}`)), frame([]byte(`not json`)), {0, 0}, {0xFF, 0xFF, 0xFF, 0xFF}} {
		var out bytes.Buffer
		if err := Handle(bytes.NewReader(in), &out, echo); err != nil {
			t.Fatal(err)
		}
		var r Response
		b, err := ReadFrame(&out)
		if err != nil || jsonUnmarshal(b, &r) != nil || r.OK || r.Error == "" {
			t.Errorf("request %x: response %s, %v; want an error response", in, b, err)
		}
	}
}

func TestFrameLimits(t *testing.T) {
	if err := WriteFrame(&bytes.Buffer{}, make([]byte, MaxFrame+1)); !errors.Is(err, ErrFrame) {
		t.Errorf("writing an oversized frame: %v", err)
	}
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], MaxFrame+1)
	if _, err := ReadFrame(bytes.NewReader(n[:])); !errors.Is(err, ErrFrame) {
		t.Errorf("reading an oversized frame: %v", err)
	}
}

// TestSocket: the socket answers, refuses connections past MaxConns,
// cuts off a client that stalls, and replaces only a stale socket.
func TestSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, %v; want 0660", fi.Mode(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Serve(ctx, ln, echo); close(done) }()
	var st Status
	if err := Query(path, "status", &st); err != nil || st.Stratum != 3 {
		t.Fatalf("Query = %+v, %v", st, err)
	}
	if err := Query(path, "nope", &st); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("unknown command: %v", err)
	}
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("Listen on a live socket: %v; want in use", err)
	}
	// MaxConns stalled clients take every slot; the next is closed at once.
	var stalled []net.Conn
	for range MaxConns {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		stalled = append(stalled, c)
	}
	time.Sleep(100 * time.Millisecond)
	c, err := net.Dial("unix", path)
	if err == nil {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("connection past MaxConns got %d bytes; want it closed", n)
		}
		c.Close()
	}
	// The stalled ones are cut off by the deadline.
	var wg sync.WaitGroup
	for _, s := range stalled {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.SetReadDeadline(time.Now().Add(Deadline + 2*time.Second))
			s.Read(make([]byte, 64)) // the error response or EOF
			s.Close()
		}()
	}
	wg.Wait()
	cancel()
	<-done
	// The daemon is gone, the socket file left behind: stale, replaced.
	if _, err := os.Lstat(path); err == nil {
		ln, err := Listen(path)
		if err != nil {
			t.Errorf("Listen over a stale socket: %v", err)
		} else {
			ln.Close()
		}
	}
	if err := os.WriteFile(path+"x", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path + "x"); err == nil {
		t.Error("Listen over a regular file succeeded")
	}
}

// FuzzHandle: no panic, and always one well-formed response frame.
func FuzzHandle(f *testing.F) {
	f.Add(frame([]byte(`{"command":"status"}`)))
	f.Add([]byte{0, 0, 0, 1, '{'})
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		if err := Handle(bytes.NewReader(in), &out, echo); err != nil {
			t.Fatal(err)
		}
		b, err := ReadFrame(&out)
		var r Response
		if err != nil || jsonUnmarshal(b, &r) != nil || out.Len() != 0 {
			t.Fatalf("response to %x: %q, %v", in, b, err)
		}
	})
}
