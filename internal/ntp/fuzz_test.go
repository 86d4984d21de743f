package ntp

import (
	"bytes"
	"testing"
	"time"
)

// fuzzSeeds adds the packets of the unit tests to a fuzz corpus; committed
// inputs (including packets captured from real servers) live in
// testdata/fuzz.
func fuzzSeeds(f *testing.F) {
	h := header4()
	for _, b := range [][]byte{
		nil, h[:47], h,
		cat(h, make([]byte, 4)),
		cat(h, bytes.Repeat([]byte{0xAA}, 20)),
		cat(h, ef(0x0104, 36, 36), bytes.Repeat([]byte{1}, 24)),
		cat(h, ef(0x0204, 28, 28), ef(0x0304, 16, 16), ef(0x0404, 40, 40)),
		cat(h, ef(1, 3, 28)),
		cat(withVersion(h, 3), make([]byte, 12)),
	} {
		f.Add(b)
	}
}

// FuzzDecode checks that Decode never panics and that every accepted packet
// encodes back to exactly its input, with extension fields that tile the
// extension area.
func FuzzDecode(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Packet
		if err := p.Decode(b); err != nil {
			if len(b) >= HeaderLen && err == ErrShort {
				t.Fatalf("Decode(%x) = ErrShort for %d bytes", b, len(b))
			}
			return
		}
		if p.Len() != len(b) {
			t.Fatalf("Decode(%x): Len() = %d; want %d", b, p.Len(), len(b))
		}
		out := make([]byte, len(b)+8)
		n, err := p.Encode(out)
		if err != nil || !bytes.Equal(out[:n], b) {
			t.Fatalf("Encode(Decode(%x)) = %x, %v", b, out[:n], err)
		}
		if !bytes.Equal(out[n:], make([]byte, 8)) {
			t.Fatalf("Encode wrote past its length: %x", out[n:])
		}
		it := p.Fields()
		total := 0
		for f, ok := it.Next(); ok; f, ok = it.Next() {
			total += ExtHeaderLen + len(f.Value)
		}
		if it.Err() != nil || total != len(p.Ext) {
			t.Fatalf("Decode(%x): fields cover %d of %d extension bytes (err %v)", b, total, len(p.Ext), it.Err())
		}
	})
}

// FuzzEncodeDecode builds a packet from arbitrary header fields and one
// extension field, encodes it and checks that decoding returns the same
// packet.
func FuzzEncodeDecode(f *testing.F) {
	f.Add(uint8(0), uint8(4), uint8(3), uint8(0), int8(0), int8(0), uint32(0), uint32(0), uint64(0), uint64(0), uint16(0x0104), []byte("0123456789abcdefghijklmnopqrstuv"), false)
	f.Add(uint8(3), uint8(4), uint8(4), uint8(16), int8(-128), int8(127), ^uint32(0), ^uint32(0), ^uint64(0), ^uint64(0), uint16(0xFFFF), []byte{}, true)
	f.Fuzz(func(t *testing.T, leap, vn, mode, stratum uint8, poll, prec int8, rdel, rdisp uint32, org, xmt uint64, typ uint16, val []byte, withMAC bool) {
		h := Header{Leap: Leap(leap % 4), Version: 4 + vn%4, Mode: Mode(mode % 8), Stratum: stratum,
			Poll: poll, Precision: prec, RootDelay: Short(rdel), RootDisp: Short(rdisp),
			RefID: RefID{byte(org), byte(xmt), 1, 2}, Reference: Time(org ^ xmt), Origin: Time(org), Receive: Time(xmt + 1), Transmit: Time(xmt)}
		if len(val) > 2000 {
			val = val[:2000]
		}
		// A lone last field under 28 bytes would read as a MAC (RFC 7822 §7.5).
		if !withMAC && ExtLen(len(val)) < 28 {
			val = append(val, make([]byte, 28-ExtHeaderLen-len(val))...)
		}
		ext := make([]byte, ExtLen(len(val)))
		if _, err := PutExt(ext, typ, val); err != nil {
			t.Fatal(err)
		}
		p := Packet{Header: h, Ext: ext}
		if withMAC {
			p.MAC = bytes.Repeat([]byte{0x5A}, 20)
		}
		buf := make([]byte, p.Len())
		if _, err := p.Encode(buf); err != nil {
			t.Fatal(err)
		}
		var q Packet
		if err := q.Decode(buf); err != nil {
			t.Fatalf("Decode(Encode(%+v)) = %v", p, err)
		}
		if q.Header != p.Header || !bytes.Equal(q.Ext, p.Ext) || !bytes.Equal(q.MAC, p.MAC) {
			t.Fatalf("Decode(Encode(p)) = %+v; want %+v", q, p)
		}
		it := q.Fields()
		got, ok := it.Next()
		if !ok || got.Type != typ || !bytes.Equal(got.Value[:len(val)], val) || !allZero(got.Value[len(val):]) {
			t.Fatalf("field = %+v, %v; want type %#x value %x", got, ok, typ, val)
		}
	})
}

// FuzzExtFields walks arbitrary bytes as extension fields: no panic, every
// field valid, and the fields tile the input when no error is reported.
func FuzzExtFields(f *testing.F) {
	f.Add(ef(1, 16, 16))
	f.Add(cat(ef(1, 16, 16), ef(2, 20, 20)))
	f.Add(ef(1, 0, 16))
	f.Add(ef(1, 65535, 16))
	f.Fuzz(func(t *testing.T, b []byte) {
		it := NewExtFields(b)
		total, n := 0, 0
		for f, ok := it.Next(); ok; f, ok = it.Next() {
			l := ExtHeaderLen + len(f.Value)
			if l < MinExtLen || l%4 != 0 {
				t.Fatalf("field of length %d from %x", l, b)
			}
			total += l
			n++
			if n > len(b)/MinExtLen {
				t.Fatalf("%d fields from %d bytes", n, len(b))
			}
		}
		if it.Err() == nil && total != len(b) {
			t.Fatalf("walk covered %d of %d bytes without error", total, len(b))
		}
		if total > len(b) {
			t.Fatalf("walk covered %d of %d bytes", total, len(b))
		}
	})
}

// FuzzTime checks that any instant within the NTP range survives TimeFrom
// and Resolve at nanosecond precision, given a reference within 68 years.
func FuzzTime(f *testing.F) {
	f.Add(int64(0), uint32(0), int64(0))
	f.Add(int64(2085978495), uint32(999999999), int64(1))           // 2036 era boundary
	f.Add(int64(-2208988800), uint32(0), int64(2147483647))         // 1900
	f.Add(int64(6847804799), uint32(999999999), int64(-2147483647)) // end of 2186
	f.Fuzz(func(t *testing.T, unixSec int64, ns uint32, refDelta int64) {
		const lo, hi = -2208988800, 6847804799 // 1900-01-01 .. 2186-12-31
		if unixSec < lo || unixSec > hi {
			unixSec = lo + (unixSec%(hi-lo)+(hi-lo))%(hi-lo)
		}
		in := time.Unix(unixSec, int64(ns%1e9)).UTC()
		ref := in.Add(time.Duration(refDelta%(1<<31)) * time.Second)
		if got := TimeFrom(in).Resolve(ref); !got.Equal(in) {
			t.Fatalf("TimeFrom(%v).Resolve(%v) = %v", in, ref, got)
		}
	})
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
