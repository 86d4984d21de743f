package bench

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/source"
)

const (
	testKey  = 0x8123456789ABCDEF
	testWall = int64(1_800_000_000_000_000_000) // a Unix time in 2027, ns
)

func newTestTracker() *tracker {
	return &tracker{key: testKey, baseWall: testWall, timeout: int64(time.Second), end: 1 << 62}
}

// replyTo builds a server reply to request req, received by the server at
// rx ns after the run's start, changed by mod if not nil.
func replyTo(t testing.TB, req []byte, rx int64, mod func(*ntp.Header)) []byte {
	t.Helper()
	var q ntp.Header
	if err := q.Decode(req); err != nil {
		t.Fatal(err)
	}
	at := ntp.TimeFrom(time.Unix(0, testWall+rx))
	h := ntp.Header{Version: 4, Mode: ntp.ModeServer, Stratum: 2, Origin: q.Transmit, Receive: at, Transmit: at}
	if mod != nil {
		mod(&h)
	}
	b := make([]byte, ntp.HeaderLen)
	if _, err := h.Encode(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRequestsEncodeSocketAndSequence(t *testing.T) {
	tr := newTestTracker()
	s := &sock{idx: 1023, ring: newRing(0)}
	seen := map[uint64]bool{}
	req := make([]byte, ntp.HeaderLen)
	for seq := range uint64(300) {
		if !tr.reserve(s, req, int64(seq), true) {
			t.Fatalf("reserve %d failed", seq)
		}
		tr.commit(s, 1, 1)
		var h ntp.Header
		if err := h.Decode(req); err != nil || h.Mode != ntp.ModeClient || h.Version != 4 {
			t.Fatalf("request %x: %v", req, err)
		}
		x := uint64(h.Transmit)
		if x == 0 || seen[x] {
			t.Fatalf("transmit %#x zero or repeated", x)
		}
		seen[x] = true
		if v := x ^ testKey; v>>seqBits != 1023 || v&seqMask != seq {
			t.Fatalf("transmit %#x decodes to socket %d seq %d; want 1023 %d", x, v>>seqBits, v&seqMask, seq)
		}
		// Nothing but the header's first byte and the transmit
		// timestamp is set (RFC 9109).
		for i, c := range req[1:40] {
			if c != 0 {
				t.Fatalf("request byte %d = %#x; want 0", i+1, c)
			}
		}
	}
	if len(s.ring.slots) < 300 || s.ring.pending != 300 || tr.c.Sent != 300 {
		t.Errorf("ring %d slots, %d pending, %d sent; want ≥300 300 300", len(s.ring.slots), s.ring.pending, tr.c.Sent)
	}
}

// TestReceiveClassifies sends one request per case and feeds the tracker
// the case's datagram: the counter named must go up by one, and the
// request must end answered (done) or still pending.
func TestReceiveClassifies(t *testing.T) {
	type counter func(*Counts) uint64
	tests := []struct {
		name    string
		make    func(t *testing.T, req []byte) []byte
		trunc   bool
		counter counter
		done    bool
	}{
		{"valid", func(t *testing.T, req []byte) []byte { return replyTo(t, req, 10, nil) },
			false, func(c *Counts) uint64 { return c.Answered }, true},
		{"kiss RATE", func(t *testing.T, req []byte) []byte {
			return replyTo(t, req, 10, func(h *ntp.Header) { h.Stratum, h.RefID = 0, ntp.KissRATE })
		}, false, func(c *Counts) uint64 { return c.Kiss[0] }, true},
		{"kiss NTSN", func(t *testing.T, req []byte) []byte {
			return replyTo(t, req, 10, func(h *ntp.Header) { h.Stratum, h.RefID = 0, ntp.KissNTSN })
		}, false, func(c *Counts) uint64 { return c.Kiss[3] }, true},
		{"INIT is unsynchronized", func(t *testing.T, req []byte) []byte {
			return replyTo(t, req, 10, func(h *ntp.Header) { h.Stratum, h.RefID = 0, ntp.RefID{'I', 'N', 'I', 'T'} })
		}, false, func(c *Counts) uint64 { return c.Unsynchronized }, true},
		{"leap 3", func(t *testing.T, req []byte) []byte {
			return replyTo(t, req, 10, func(h *ntp.Header) { h.Leap = ntp.LeapUnsync })
		}, false, func(c *Counts) uint64 { return c.Unsynchronized }, true},
		{"version 5", func(t *testing.T, req []byte) []byte {
			return replyTo(t, req, 10, func(h *ntp.Header) { h.Version = 5 })
		}, false, func(c *Counts) uint64 { return c.BadVersion }, true},
		{"zero receive timestamp", func(t *testing.T, req []byte) []byte {
			return replyTo(t, req, 10, func(h *ntp.Header) { h.Receive = 0 })
		}, false, func(c *Counts) uint64 { return c.BadTimestamps }, true},
		{"short", func(t *testing.T, req []byte) []byte { return replyTo(t, req, 10, nil)[:47] },
			false, func(c *Counts) uint64 { return c.Malformed }, false},
		{"truncated", func(t *testing.T, req []byte) []byte { return replyTo(t, req, 10, nil) },
			true, func(c *Counts) uint64 { return c.Malformed }, false},
		{"trailing junk", func(t *testing.T, req []byte) []byte { return append(replyTo(t, req, 10, nil), 1, 2, 3) },
			false, func(c *Counts) uint64 { return c.Malformed }, false},
		{"client mode, right origin", func(t *testing.T, req []byte) []byte {
			return replyTo(t, req, 10, func(h *ntp.Header) { h.Mode = ntp.ModeClient })
		}, false, func(c *Counts) uint64 { return c.WrongMode }, false},
		{"client mode, wrong origin", func(t *testing.T, req []byte) []byte {
			return replyTo(t, req, 10, func(h *ntp.Header) { h.Mode, h.Origin = ntp.ModeClient, 1 })
		}, false, func(c *Counts) uint64 { return c.WrongMode }, false},
		{"origin of another socket", func(t *testing.T, req []byte) []byte {
			return replyTo(t, req, 10, func(h *ntp.Header) { h.Origin ^= 1 << seqBits })
		}, false, func(c *Counts) uint64 { return c.WrongOrigin }, false},
		{"origin of a request not sent", func(t *testing.T, req []byte) []byte {
			return replyTo(t, req, 10, func(h *ntp.Header) { h.Origin ^= 1 << 20 })
		}, false, func(c *Counts) uint64 { return c.WrongOrigin }, false},
		{"random origin", func(t *testing.T, req []byte) []byte {
			return replyTo(t, req, 10, func(h *ntp.Header) { h.Origin = 0x0123456789ABCDEF })
		}, false, func(c *Counts) uint64 { return c.WrongOrigin }, false},
		{"zero origin", func(t *testing.T, req []byte) []byte {
			return replyTo(t, req, 10, func(h *ntp.Header) { h.Origin = 0 })
		}, false, func(c *Counts) uint64 { return c.WrongOrigin }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTestTracker()
			s := &sock{idx: 3, ring: newRing(0)}
			req := make([]byte, ntp.HeaderLen)
			tr.reserve(s, req, 0, true)
			tr.commit(s, 1, 1)
			b := tt.make(t, req)
			before := tt.counter(&tr.c)
			tr.receive(s, b, tt.trunc, testWall+20_000)
			if got := tt.counter(&tr.c) - before; got != 1 {
				t.Errorf("receive(%x): counter went up by %d; want 1; counts %+v", b, got, tr.c)
			}
			if done := s.ring.pending == 0; done != tt.done {
				t.Errorf("receive(%x): request done = %v; want %v", b, done, tt.done)
			}
			if tt.done != (tr.all.replies == 1) {
				t.Errorf("replies total %d", tr.all.replies)
			}
		})
	}
}

func TestRTTAndLateAndDuplicate(t *testing.T) {
	tr := newTestTracker()
	s := &sock{idx: 0, ring: newRing(0)}
	reqs := make([][]byte, 3)
	for i := range reqs {
		reqs[i] = make([]byte, ntp.HeaderLen)
		tr.reserve(s, reqs[i], int64(i)*1000, true)
	}
	tr.commit(s, 3, 3)
	// Request 0 is answered 25 µs after it was sent; its RTT counts.
	tr.receive(s, replyTo(t, reqs[0], 10_000, nil), false, testWall+25_000)
	if tr.c.Answered != 1 || tr.rtt.Count() != 1 || tr.rtt.Max() != 25*time.Microsecond {
		t.Fatalf("answered %d, rtt %d samples, max %v; want 1 1 25µs", tr.c.Answered, tr.rtt.Count(), tr.rtt.Max())
	}
	// Its second reply is a duplicate.
	tr.receive(s, replyTo(t, reqs[0], 10_000, nil), false, testWall+26_000)
	// Requests 1 and 2 time out; then request 1's reply is late.
	tr.expire(s, int64(time.Second)+1500)
	if tr.c.Lost != 1 || s.ring.pending != 1 {
		t.Fatalf("after the first timeout: lost %d pending %d; want 1 1", tr.c.Lost, s.ring.pending)
	}
	if at, ok := tr.nextExpiry(s); !ok || at != int64(time.Second)+2000 {
		t.Errorf("nextExpiry = %d, %v; want 1s+2µs", at, ok)
	}
	tr.expire(s, int64(time.Second)+2000)
	tr.receive(s, replyTo(t, reqs[1], 10_000, nil), false, testWall+int64(time.Second)+3000)
	want := Counts{Sent: 3, Answered: 1, Lost: 2, Duplicate: 1, Late: 1}
	if tr.c != want {
		t.Errorf("counts %+v; want %+v", tr.c, want)
	}
	if tr.pending != 0 || s.ring.tail != 3 {
		t.Errorf("pending %d tail %d; want 0 3", tr.pending, s.ring.tail)
	}
}

// TestLateByKernelTime feeds replies that the kernel received just
// within and just past the timeout, before the requests were expired.
func TestLateByKernelTime(t *testing.T) {
	for _, tt := range []struct {
		rx   int64 // ns after the request was sent
		want Counts
	}{
		{int64(time.Second) - 1, Counts{Sent: 1, Answered: 1}},
		{int64(time.Second), Counts{Sent: 1, Lost: 1, Late: 1}},
		{int64(time.Hour), Counts{Sent: 1, Lost: 1, Late: 1}},
	} {
		tr := newTestTracker()
		s := &sock{ring: newRing(0)}
		req := make([]byte, ntp.HeaderLen)
		tr.reserve(s, req, 5000, true)
		tr.commit(s, 1, 1)
		tr.receive(s, replyTo(t, req, 6000, nil), false, testWall+5000+tt.rx)
		if tr.c != tt.want || tr.pending != 0 {
			t.Errorf("reply %d ns after the request: %+v, %d pending; want %+v", tt.rx, tr.c, tr.pending, tt.want)
		}
		// A second copy is late whether or not the first was.
		tr.receive(s, replyTo(t, req, 6000, nil), false, testWall+5000+tt.rx)
		if tr.c.Late+tr.c.Duplicate != tt.want.Late+1 {
			t.Errorf("second copy after %d ns: %+v", tt.rx, tr.c)
		}
	}
}

// TestWindowCounts checks the divisors of the CPU figures: requests sent
// and replies received within [start, end), by their own times.
func TestWindowCounts(t *testing.T) {
	tr := newTestTracker()
	tr.start, tr.end = 1000, 2000
	s := &sock{ring: newRing(0)}
	sends := []int64{500, 1000, 1500, 1999, 2000}
	reqs := make([][]byte, len(sends))
	for i, at := range sends {
		reqs[i] = make([]byte, ntp.HeaderLen)
		tr.reserve(s, reqs[i], at, i%2 == 0) // measured or not makes no difference
		tr.commit(s, 1, 1)
	}
	kiss := func(h *ntp.Header) { h.Stratum, h.RefID = 0, ntp.KissRATE }
	tr.receive(s, replyTo(t, reqs[0], 600, nil), false, testWall+999)    // before the window
	tr.receive(s, replyTo(t, reqs[1], 1100, nil), false, testWall+1200)  // in it
	tr.receive(s, replyTo(t, reqs[1], 1100, nil), false, testWall+1300)  // a duplicate: no reply to count
	tr.receive(s, replyTo(t, reqs[2], 1600, kiss), false, testWall+1999) // rejected, in it
	tr.receive(s, replyTo(t, reqs[3], 2000, nil), false, testWall+2000)  // after it
	if tr.win != (window{sent: 3, replies: 2}) {
		t.Errorf("window counts %+v; want 3 sent, 2 replies", tr.win)
	}
}

func TestUnmeasuredNotCounted(t *testing.T) {
	tr := newTestTracker()
	tr.start = 1000
	s := &sock{ring: newRing(0)}
	req := make([]byte, ntp.HeaderLen)
	tr.reserve(s, req, 0, false) // sent during the warmup
	tr.commit(s, 1, 1)
	tr.receive(s, replyTo(t, req, 100, nil)[:40], false, testWall+500) // malformed, during the warmup
	tr.receive(s, replyTo(t, req, 100, nil), false, testWall+2000)     // answered after it
	tr.receive(s, replyTo(t, req, 100, nil), false, testWall+2000)     // duplicate
	if tr.c != (Counts{}) || tr.rtt.Count() != 0 {
		t.Errorf("warmup request counted: %+v, %d RTT samples", tr.c, tr.rtt.Count())
	}
	if tr.all.sent != 1 || tr.all.answered != 1 {
		t.Errorf("totals %+v; want 1 sent and answered", tr.all)
	}
	// Invalid replies that match no request count by arrival time.
	tr.receive(s, req, false, testWall+500)  // mode 3, during the warmup
	tr.receive(s, req, false, testWall+1000) // mode 3, measured
	if tr.c.WrongMode != 1 {
		t.Errorf("wrong mode %d; want 1", tr.c.WrongMode)
	}
}

func TestCommitRollsBack(t *testing.T) {
	tr := newTestTracker()
	s := &sock{ring: newRing(0)}
	reqs := make([][]byte, 5)
	for i := range reqs {
		reqs[i] = make([]byte, ntp.HeaderLen)
		tr.reserve(s, reqs[i], 0, true)
	}
	tr.commit(s, 5, 2) // only two were sent
	if s.ring.head != 2 || s.ring.pending != 2 || tr.pending != 2 || tr.c.Sent != 2 || tr.c.SendErrors != 3 {
		t.Fatalf("head %d pending %d/%d sent %d errors %d; want 2 2 2 2 3",
			s.ring.head, s.ring.pending, tr.pending, tr.c.Sent, tr.c.SendErrors)
	}
	// A reply to a rolled-back request matches nothing.
	tr.receive(s, replyTo(t, reqs[3], 10, nil), false, testWall+20)
	if tr.c.WrongOrigin != 1 {
		t.Errorf("reply to an unsent request: %+v", tr.c)
	}
	// The sequence numbers are reused.
	req := make([]byte, ntp.HeaderLen)
	tr.reserve(s, req, 0, true)
	tr.commit(s, 1, 1)
	if binary.BigEndian.Uint64(req[40:]) != binary.BigEndian.Uint64(reqs[2][40:]) {
		t.Error("rolled-back sequence number not reused")
	}
}

func TestRingGrowsAndKeepsPending(t *testing.T) {
	tr := newTestTracker()
	s := &sock{ring: newRing(0)}
	n := minRing*4 + 3
	reqs := make([][]byte, n)
	for i := range reqs {
		reqs[i] = make([]byte, ntp.HeaderLen)
		if !tr.reserve(s, reqs[i], int64(i), true) {
			t.Fatalf("reserve %d failed", i)
		}
		tr.commit(s, 1, 1)
	}
	if len(s.ring.slots) != minRing*8 {
		t.Errorf("ring has %d slots; want %d", len(s.ring.slots), minRing*8)
	}
	for i := range reqs {
		tr.receive(s, replyTo(t, reqs[i], int64(i)+1, nil), false, testWall+int64(i)+2)
	}
	if tr.c.Answered != uint64(n) || tr.pending != 0 {
		t.Errorf("answered %d pending %d; want %d 0", tr.c.Answered, tr.pending, n)
	}
	// Once the old requests are done, the ring is reused without growing.
	for i := range 3 * n {
		tr.reserve(s, reqs[0], int64(n+i), true)
		tr.commit(s, 1, 1)
		tr.receive(s, replyTo(t, reqs[0], int64(n+i), nil), false, testWall+int64(n+i)+1)
	}
	if len(s.ring.slots) != minRing*8 || tr.c.Answered != uint64(4*n) {
		t.Errorf("ring %d slots, answered %d; want %d %d", len(s.ring.slots), tr.c.Answered, minRing*8, 4*n)
	}
}

// TestBookkeepingAllocs pins the per-request work to zero allocations:
// numbering and writing a request, matching and validating its reply
// (valid, rejected or invalid), and expiring it. Each kind of reply is
// measured on its own, as AllocsPerRun rounds the average down.
func TestBookkeepingAllocs(t *testing.T) {
	variants := map[string]func(h *ntp.Header){
		"valid":          nil,
		"kiss":           func(h *ntp.Header) { h.Stratum, h.RefID = 0, ntp.KissRATE },
		"unsynchronized": func(h *ntp.Header) { h.Leap = ntp.LeapUnsync },
		"bad version":    func(h *ntp.Header) { h.Version = 0 },
		"wrong mode":     func(h *ntp.Header) { h.Mode = ntp.ModeClient },
		"wrong origin":   func(h *ntp.Header) { h.Origin = 1 << seqBits }, // another socket's
		"malformed":      func(h *ntp.Header) { h.Version = 4 },
	}
	for name, mod := range variants {
		tr := newTestTracker()
		s := &sock{idx: 7, ring: newRing(4096)}
		req := make([]byte, ntp.HeaderLen)
		reply := make([]byte, ntp.HeaderLen)
		tmpl := ntp.Header{Version: 4, Mode: ntp.ModeServer, Stratum: 2}
		if mod != nil {
			mod(&tmpl)
		}
		now := int64(0)
		allocs := testing.AllocsPerRun(1000, func() {
			now += 1000
			tr.reserve(s, req, now, true)
			tr.commit(s, 1, 1)
			h := tmpl
			at := ntp.TimeFrom(time.Unix(0, testWall+now+100))
			h.Origin ^= ntp.Time(binary.BigEndian.Uint64(req[40:])) // tmpl.Origin is 0 or a change
			h.Receive, h.Transmit = at, at
			if _, err := h.Encode(reply); err != nil {
				panic(err)
			}
			b := reply
			if name == "malformed" {
				b = reply[:47]
			}
			tr.receive(s, b, false, testWall+now+200)
			tr.expire(s, now+int64(time.Second))
		})
		if allocs != 0 {
			t.Errorf("%s: per-request bookkeeping allocates %v times", name, allocs)
		}
		c := tr.c
		if c.Answered+c.Kiss[0]+c.Unsynchronized+c.BadVersion+c.WrongMode+c.WrongOrigin+c.Malformed < 1000 {
			t.Errorf("%s: the path did not run: %+v", name, c)
		}
	}
}

// BenchmarkCheckReply measures the validation each reply gets, to compare
// with the system calls around it (a few µs a datagram).
func BenchmarkCheckReply(b *testing.B) {
	req := make([]byte, ntp.HeaderLen)
	tr := newTestTracker()
	s := &sock{ring: newRing(0)}
	tr.reserve(s, req, 0, true)
	reply := replyTo(b, req, 10, nil)
	origin := ntp.Time(binary.BigEndian.Uint64(req[40:]))
	t1, t4 := ntp.TimeFrom(time.Unix(0, testWall)), ntp.TimeFrom(time.Unix(0, testWall+20))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := source.CheckReply(reply, origin, t1, t4); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRoundTrip measures the tracker's work for one request and its
// reply.
func BenchmarkRoundTrip(b *testing.B) {
	tr := newTestTracker()
	s := &sock{ring: newRing(1024)}
	req := make([]byte, ntp.HeaderLen)
	reply := make([]byte, ntp.HeaderLen)
	h := ntp.Header{Version: 4, Mode: ntp.ModeServer, Stratum: 2}
	now := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		now += 1000
		tr.reserve(s, req, now, true)
		tr.commit(s, 1, 1)
		h.Origin = ntp.Time(binary.BigEndian.Uint64(req[40:]))
		h.Receive = ntp.TimeFrom(time.Unix(0, testWall+now+100))
		h.Transmit = h.Receive
		_, _ = h.Encode(reply)
		tr.receive(s, reply, false, testWall+now+200)
		tr.expire(s, now)
	}
}

// FuzzClassify checks that classify agrees with source.CheckReply on any
// reply.
func FuzzClassify(f *testing.F) {
	req := make([]byte, ntp.HeaderLen)
	tr := newTestTracker()
	tr.reserve(&sock{ring: newRing(0)}, req, 0, true)
	for _, mod := range []func(*ntp.Header){
		nil,
		func(h *ntp.Header) { h.Stratum, h.RefID = 0, ntp.KissRATE },
		func(h *ntp.Header) { h.Stratum, h.RefID = 0, ntp.KissNTSN },
		func(h *ntp.Header) { h.Stratum, h.RefID, h.Version = 0, ntp.KissDENY, 7 },
		func(h *ntp.Header) { h.Stratum, h.RefID = 0, ntp.RefID{'I', 'N', 'I', 'T'} },
		func(h *ntp.Header) { h.Leap, h.Version = ntp.LeapUnsync, 0 },
		func(h *ntp.Header) { h.Stratum = 16 },
		func(h *ntp.Header) { h.Mode = ntp.ModeBroadcast },
		func(h *ntp.Header) { h.Origin = 0 },
		func(h *ntp.Header) { h.Receive = 0 },
	} {
		f.Add(replyTo(f, req, 10, mod))
	}
	f.Add(append(replyTo(f, req, 10, nil), 0, 0, 0, 0))
	f.Add(req[:20])
	xmt := ntp.Time(binary.BigEndian.Uint64(req[40:]))
	t1, t4 := ntp.TimeFrom(time.Unix(0, testWall)), ntp.TimeFrom(time.Unix(0, testWall+20))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= 32 && b[31]&1 == 0 {
			binary.BigEndian.PutUint64(b[24:], uint64(xmt)) // most inputs get the right origin
		}
		_, err := source.CheckReply(b, xmt, t1, t4)
		wantV, wantK := verdictOf(err)
		if err != nil && errors.Is(err, source.ErrOrigin) {
			wantV = verdictOther
		}
		if v, k := classify(b, xmt, t1, t4); v != wantV || k != wantK {
			t.Fatalf("classify(%x) = %d, %d; CheckReply says %v (%d, %d)", b, v, k, err, wantV, wantK)
		}
	})
}
