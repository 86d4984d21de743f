package ntp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// header4 returns a plausible NTPv4 server reply header.
func header4() []byte {
	h := Header{Leap: LeapNone, Version: 4, Mode: ModeServer, Stratum: 2, Poll: 6, Precision: -24,
		RootDelay: 0x00000123, RootDisp: 0x00000456, RefID: RefID{192, 0, 2, 1},
		Reference: 0xEA0000000000000A, Origin: 0xEA0000010000000B, Receive: 0xEA0000020000000C,
		Transmit: 0xEA0000030000000D}
	b := make([]byte, HeaderLen)
	if _, err := h.Encode(b); err != nil {
		panic(err)
	}
	return b
}

// ef builds one extension field with a declared length that may lie.
func ef(typ uint16, declared int, total int) []byte {
	b := make([]byte, total)
	binary.BigEndian.PutUint16(b, typ)
	binary.BigEndian.PutUint16(b[2:], uint16(declared))
	for i := 4; i < total; i++ {
		b[i] = byte(i)
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func withVersion(b []byte, v byte) []byte {
	b = bytes.Clone(b)
	b[0] = b[0]&^0x38 | v<<3
	return b
}

func TestHeaderRoundTrip(t *testing.T) {
	b := header4()
	var h Header
	if err := h.Decode(b); err != nil {
		t.Fatal(err)
	}
	want := Header{Leap: LeapNone, Version: 4, Mode: ModeServer, Stratum: 2, Poll: 6, Precision: -24,
		RootDelay: 0x123, RootDisp: 0x456, RefID: RefID{192, 0, 2, 1},
		Reference: 0xEA0000000000000A, Origin: 0xEA0000010000000B, Receive: 0xEA0000020000000C,
		Transmit: 0xEA0000030000000D}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("Decode(%x) mismatch (-want +got):\n%s", b, diff)
	}
	out := make([]byte, HeaderLen)
	if _, err := h.Encode(out); err != nil || !bytes.Equal(out, b) {
		t.Errorf("Encode = %x, %v; want %x", out, err, b)
	}
}

func TestHeaderEncodeErrors(t *testing.T) {
	for _, h := range []Header{{Leap: 4}, {Version: 8}, {Mode: 8}} {
		if _, err := h.Encode(make([]byte, HeaderLen)); !errors.Is(err, ErrField) {
			t.Errorf("Encode(%+v) = %v; want ErrField", h, err)
		}
	}
	var h Header
	if _, err := h.Encode(make([]byte, HeaderLen-1)); !errors.Is(err, ErrBuffer) {
		t.Errorf("Encode into 47 bytes = %v; want ErrBuffer", err)
	}
}

// TestDecodeShort covers THREATS A1: payloads of 0, 1 and 47 bytes.
func TestDecodeShort(t *testing.T) {
	for _, n := range []int{0, 1, 2, 12, 47} {
		var p Packet
		if err := p.Decode(make([]byte, n)); !errors.Is(err, ErrShort) {
			t.Errorf("Decode(%d bytes) = %v; want ErrShort", n, err)
		}
	}
}

// TestDecodeEveryVersionAndMode covers A2 and A3 at the codec level: every
// version and mode decodes and is reported as sent; policy lives above.
func TestDecodeEveryVersionAndMode(t *testing.T) {
	for v := range 8 {
		for m := range 8 {
			b := header4()
			b[0] = byte(v)<<3 | byte(m)
			var p Packet
			if err := p.Decode(b); err != nil {
				t.Fatalf("Decode(v%d mode %d) = %v", v, m, err)
			}
			if p.Version != uint8(v) || p.Mode != Mode(m) || p.Leap != LeapNone {
				t.Errorf("Decode(v%d mode %d) = v%d mode %d leap %d", v, m, p.Version, p.Mode, p.Leap)
			}
		}
	}
}

// TestDecodeExtensionFields covers A4 (lying lengths), A5 (unknown types),
// A6 (legacy MACs with and without extension fields) and A7 (big packets).
func TestDecodeExtensionFields(t *testing.T) {
	h := header4()
	mac20, mac24 := bytes.Repeat([]byte{0xAA}, 20), bytes.Repeat([]byte{0xBB}, 24)
	tiny := make([]byte, 0, 16*100)
	for range 100 {
		tiny = append(tiny, ef(0x7777, 16, 16)...)
	}
	big := ef(0x0204, 1024, 1024)
	tests := []struct {
		name    string
		in      []byte
		wantErr error
		fields  int // number of extension fields
		macLen  int
	}{
		{"none", h, nil, 0, 0},
		{"crypto-NAK", cat(h, make([]byte, 4)), nil, 0, 4},
		{"MAC MD5", cat(h, mac20), nil, 0, 20},
		{"MAC SHA1", cat(h, mac24), nil, 0, 24},
		{"EF+MAC", cat(h, ef(0x0104, 36, 36), mac20), nil, 1, 20},
		{"EF+MAC unknown key", cat(h, ef(0x0104, 40, 40), mac24), nil, 1, 24},
		{"unknown type critical-looking", cat(h, ef(0xFFFF, 28, 28)), nil, 1, 0},
		{"one 16-byte EF without MAC (RFC 7822 §7.5)", cat(h, ef(0x8001, 16, 16)), ErrTrailing, 0, 0},
		{"one 24-byte EF without MAC reads as a MAC", cat(h, ef(0x8001, 24, 24)), nil, 0, 24},
		{"one 16-byte EF and a MAC", cat(h, ef(0x8001, 16, 16), mac20), nil, 1, 20},
		{"EF exactly filling", cat(h, ef(0x0104, 28, 28)), nil, 1, 0},
		{"many tiny EFs", cat(h, tiny, ef(0x7777, 28, 28)), nil, 101, 0},
		{"many tiny EFs, last too short", cat(h, tiny), ErrTrailing, 0, 0},
		{"1 KiB EF", cat(h, big), nil, 1, 0},
		{"length 0", cat(h, ef(1, 0, 28)), ErrExtLength, 0, 0},
		{"length 2", cat(h, ef(1, 2, 28)), ErrExtLength, 0, 0},
		{"length 3", cat(h, ef(1, 3, 28)), ErrExtLength, 0, 0},
		{"length 12", cat(h, ef(1, 12, 28)), ErrExtLength, 0, 0},
		{"length 30 not aligned", cat(h, ef(1, 30, 32)), ErrExtAlign, 0, 0},
		{"length past end", cat(h, ef(1, 32, 28)), ErrExtOverrun, 0, 0},
		{"length 65535", cat(h, ef(1, 65535, 28)), ErrExtAlign, 0, 0},
		{"length 65532", cat(h, ef(1, 65532, 28)), ErrExtOverrun, 0, 0},
		{"second EF lies", cat(h, ef(1, 28, 28), ef(2, 64, 32)), ErrExtOverrun, 0, 0},
		{"trailing 8", cat(h, make([]byte, 8)), ErrTrailing, 0, 0},
		{"trailing 15", cat(h, make([]byte, 15)), ErrTrailing, 0, 0},
		{"EF then 8 stray", cat(h, ef(1, 28, 28), make([]byte, 8)), ErrTrailing, 0, 0},
		{"v3 MAC", cat(withVersion(h, 3), mac20), nil, 0, 20},
		{"v3 DES MAC", cat(withVersion(h, 3), make([]byte, 12)), nil, 0, 12},
		{"v3 EF is not allowed", cat(withVersion(h, 3), ef(1, 28, 28)), ErrTrailing, 0, 0},
	}
	for _, size := range []int{1024, 4096, 65507, 65535} { // A7: oversized datagrams
		body := make([]byte, size-HeaderLen)
		tests = append(tests, struct {
			name    string
			in      []byte
			wantErr error
			fields  int
			macLen  int
		}{"zeros " + strconv.Itoa(size), cat(h, body), ErrExtLength, 0, 0})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Packet
			err := p.Decode(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Decode(%x...) = %v; want %v", tt.in[:min(len(tt.in), 64)], err, tt.wantErr)
			}
			if err != nil {
				if p.Ext != nil || p.MAC != nil {
					t.Errorf("failed Decode left Ext=%d MAC=%d bytes", len(p.Ext), len(p.MAC))
				}
				return
			}
			it := p.Fields()
			n, total := 0, 0
			for f, ok := it.Next(); ok; f, ok = it.Next() {
				n++
				total += ExtHeaderLen + len(f.Value)
			}
			if it.Err() != nil || n != tt.fields || len(p.MAC) != tt.macLen {
				t.Errorf("fields = %d (err %v), MAC = %d bytes; want %d, %d", n, it.Err(), len(p.MAC), tt.fields, tt.macLen)
			}
			if HeaderLen+total+len(p.MAC) != len(tt.in) {
				t.Errorf("fields cover %d + MAC %d of %d bytes", total, len(p.MAC), len(tt.in))
			}
			out := make([]byte, p.Len())
			if n, err := p.Encode(out); err != nil || !bytes.Equal(out[:n], tt.in) {
				t.Errorf("Encode(Decode(x)) = %x, %v; want input back", out[:n], err)
			}
		})
	}
}

func TestExtFieldValues(t *testing.T) {
	buf := make([]byte, 256)
	n := copy(buf, header4())
	for i, v := range [][]byte{nil, []byte("abc"), bytes.Repeat([]byte{7}, 12), bytes.Repeat([]byte{9}, 33)} {
		l, err := PutExt(buf[n:], uint16(0x100+i), v)
		if err != nil {
			t.Fatal(err)
		}
		if l != ExtLen(len(v)) || l%4 != 0 || l < MinExtLen {
			t.Errorf("PutExt(%d-byte value) = %d", len(v), l)
		}
		n += l
	}
	// Pad to keep the last field from reading as a MAC: 33-byte value gives 40.
	var p Packet
	if err := p.Decode(buf[:n]); err != nil {
		t.Fatalf("Decode = %v", err)
	}
	it := p.Fields()
	i := 0
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		if f.Type != uint16(0x100+i) {
			t.Errorf("field %d type %#x", i, f.Type)
		}
		i++
	}
	if i != 4 {
		t.Errorf("walked %d fields; want 4", i)
	}
	if _, err := PutExt(make([]byte, 8), 1, nil); !errors.Is(err, ErrBuffer) {
		t.Errorf("PutExt into 8 bytes = %v; want ErrBuffer", err)
	}
	if _, err := PutExt(make([]byte, 70000), 1, make([]byte, MaxExtLen)); !errors.Is(err, ErrExtTooLong) {
		t.Errorf("PutExt(65532-byte value) = %v; want ErrExtTooLong", err)
	}
}

func TestExtFieldsOnGarbage(t *testing.T) {
	it := NewExtFields(ef(1, 300, 40))
	if _, ok := it.Next(); ok || !errors.Is(it.Err(), ErrExtOverrun) {
		t.Errorf("Next on lying field: ok=%v err=%v", ok, it.Err())
	}
	if _, ok := it.Next(); ok {
		t.Error("Next after an error returned a field")
	}
}

func TestEncodeRejectsWhatDecodeRejects(t *testing.T) {
	tests := []struct {
		name string
		p    Packet
		want error
	}{
		{"7-byte MAC", Packet{Header: Header{Version: 4}, MAC: make([]byte, 7)}, ErrField},
		{"DES MAC in v4", Packet{Header: Header{Version: 4}, MAC: make([]byte, 12)}, ErrField},
		{"5-byte fields", Packet{Header: Header{Version: 4}, Ext: make([]byte, 5)}, ErrTrailing},
		{"lying field", Packet{Header: Header{Version: 4}, Ext: ef(1, 40, 32)}, ErrExtOverrun},
		{"short last field", Packet{Header: Header{Version: 4}, Ext: ef(1, 16, 16)}, ErrTrailing},
		{"fields in v3", Packet{Header: Header{Version: 3}, Ext: ef(1, 28, 28)}, ErrTrailing},
	}
	for _, tt := range tests {
		if _, err := tt.p.Encode(make([]byte, 200)); !errors.Is(err, tt.want) {
			t.Errorf("%s: Encode = %v; want %v", tt.name, err, tt.want)
		}
	}
	ok := Packet{Header: Header{Version: 4}, Ext: ef(1, 16, 16), MAC: make([]byte, 20)}
	if _, err := ok.Encode(make([]byte, 200)); err != nil {
		t.Errorf("16-byte field and MAC: Encode = %v", err)
	}
}

func TestEncodeBuffer(t *testing.T) {
	p := Packet{Header: Header{Version: 4, Mode: ModeClient}, Ext: ef(1, 16, 16)}
	if _, err := p.Encode(make([]byte, HeaderLen)); !errors.Is(err, ErrBuffer) {
		t.Errorf("Encode into 48 bytes with an EF = %v; want ErrBuffer", err)
	}
}

func TestRefID(t *testing.T) {
	tests := []struct {
		r       RefID
		stratum uint8
		want    string
	}{
		{KissRATE, 0, "RATE"},
		{RefID{'G', 'P', 'S', 0}, 1, "GPS"},
		{RefID{'L', 0x01, 'C', 0xFF}, 1, "LC"},
		{RefID{127, 127, 1, 1}, 10, "127.127.1.1"},
		{RefID{192, 0, 2, 1}, 2, "192.0.2.1"},
	}
	for _, tt := range tests {
		if got := tt.r.Text(tt.stratum); got != tt.want {
			t.Errorf("RefID(%x).Text(%d) = %q; want %q", tt.r, tt.stratum, got, tt.want)
		}
	}
	if got := RefIDFromAddr(netip.MustParseAddr("::ffff:192.0.2.7")); got != (RefID{192, 0, 2, 7}) {
		t.Errorf("RefIDFromAddr(mapped) = %v", got)
	}
	for _, a := range []string{"192.0.2.33", "127.0.0.1", "10.1.2.3"} {
		if got := RefIDFromAddr(netip.MustParseAddr(a)); got != RefID(netip.MustParseAddr(a).As4()) {
			t.Errorf("RefIDFromAddr(%s) = %v", a, got)
		}
	}
	// Another IPv6 address, another reference ID.
	if a, b := RefIDFromAddr(netip.MustParseAddr("2001:db8::1")), RefIDFromAddr(netip.MustParseAddr("2001:db8::2")); a == b {
		t.Errorf("RefIDFromAddr: 2001:db8::1 and ::2 both %v", a)
	}
	// RFC 5905 §7.3: first four octets of the MD5 hash of the IPv6 address.
	// md5(::1 as 16 bytes) = cf404dc806178c245b5b4fe2531e6d8c.
	if got := RefIDFromAddr(netip.IPv6Loopback()); got != (RefID{0xcf, 0x40, 0x4d, 0xc8}) {
		t.Errorf("RefIDFromAddr(::1) = %x", got)
	}
}

func TestHeaderHelpers(t *testing.T) {
	h := Header{Mode: ModeServer, Stratum: 0, RootDelay: MaxShort, RootDisp: MaxShort}
	if !h.IsKiss() {
		t.Error("stratum-0 server reply is not a kiss")
	}
	if h.RootDistance() != MaxShort {
		t.Errorf("RootDistance saturates: got %#x", uint32(h.RootDistance()))
	}
	h.Mode = ModeClient
	if h.IsKiss() {
		t.Error("client request counted as kiss")
	}
	for _, s := range []string{LeapNone.String(), Leap(9).String(), ModeControl.String(), Mode(9).String()} {
		if s == "" {
			t.Error("empty name")
		}
	}
}

// TestZeroAllocs pins the allocation budget of the codec at zero.
func TestZeroAllocs(t *testing.T) {
	in := cat(header4(), ef(0x0104, 36, 36), ef(0x0204, 104, 104), bytes.Repeat([]byte{1}, 20))
	out := make([]byte, len(in))
	var p Packet
	ref := date(2024, 6, 1, 0, 0, 0, 0)
	allocs := testing.AllocsPerRun(1000, func() {
		if err := p.Decode(in); err != nil {
			t.Fatal(err)
		}
		it := p.Fields()
		for _, ok := it.Next(); ok; _, ok = it.Next() {
		}
		if _, err := p.Encode(out); err != nil {
			t.Fatal(err)
		}
		_ = p.Decode(in[:20]) // error path too
		_ = p.Decode(in[:HeaderLen+8])
		_ = TimeFrom(p.Transmit.Resolve(ref)).Sub(p.Origin)
	})
	if allocs != 0 {
		t.Errorf("decode+walk+encode allocated %.1f times per run; want 0", allocs)
	}
}
