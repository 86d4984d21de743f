package privsep

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/ntp"
)

func TestRequestRoundTrip(t *testing.T) {
	for _, r := range []Request{
		{Op: OpFrequency, Seq: 1, FreqPPM: -12.5},
		{Op: OpStep, Seq: 2, Step: -3 * time.Second},
		{Op: OpLeap, Seq: 3, Leap: ntp.LeapInsert},
		{Op: OpLeap, Seq: 4, Leap: ntp.LeapNone},
		{Op: OpStatus, Seq: 5, Synced: true, MaxErr: time.Millisecond, EstErr: 10 * time.Microsecond},
		{Op: OpGetFrequency, Seq: 6},
	} {
		b := r.Encode(make([]byte, RequestLen))
		got, err := DecodeRequest(b)
		if err != nil || got != r {
			t.Errorf("DecodeRequest(Encode(%+v)) = %+v, %v", r, got, err)
		}
	}
	resp := Response{Op: OpGetFrequency, Status: StatusRefused, Seq: 9, FreqPPM: 3.25}
	if got, err := DecodeResponse(resp.Encode(make([]byte, ResponseLen))); err != nil || got != resp {
		t.Errorf("DecodeResponse(Encode(%+v)) = %+v, %v", resp, got, err)
	}
}

// TestDecodeRequestRejects: THREATS H7. Wrong sizes, versions and
// operations, values no clock takes, and anything in the unused bytes are
// invalid.
func TestDecodeRequestRejects(t *testing.T) {
	valid := func(r Request) []byte { return r.Encode(make([]byte, RequestLen)) }
	with := func(b []byte, i int, v byte) []byte { b = bytes.Clone(b); b[i] = v; return b }
	f64 := func(op Op, at int, v uint64) []byte {
		b := valid(Request{Op: op})
		binary.BigEndian.PutUint64(b[at:], v)
		return b
	}
	for _, tt := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrSize},
		{"short", make([]byte, RequestLen-1), ErrSize},
		{"long", make([]byte, RequestLen+1), ErrSize},
		{"version 0", with(valid(Request{Op: OpStep, Step: 1}), 0, 0), ErrVersion},
		{"version 2", with(valid(Request{Op: OpStep, Step: 1}), 0, 2), ErrVersion},
		{"op 0", with(valid(Request{Op: OpGetFrequency}), 1, 0), ErrOp},
		{"op 6", with(valid(Request{Op: OpGetFrequency}), 1, 6), ErrOp},
		{"op 255", with(valid(Request{Op: OpGetFrequency}), 1, 255), ErrOp},
		{"NaN frequency", f64(OpFrequency, 8, math.Float64bits(math.NaN())), ErrValue},
		{"infinite frequency", f64(OpFrequency, 8, math.Float64bits(math.Inf(-1))), ErrValue},
		{"zero step", valid(Request{Op: OpStep}), ErrValue},
		{"most negative step", f64(OpStep, 8, 1<<63), ErrValue},
		{"leap 3", valid(Request{Op: OpLeap, Leap: ntp.LeapUnsync}), ErrValue},
		{"negative max error", valid(Request{Op: OpStatus, MaxErr: -1}), ErrValue},
		{"max error over 16 s", valid(Request{Op: OpStatus, MaxErr: 17 * time.Second}), ErrValue},
		{"negative estimated error", valid(Request{Op: OpStatus, EstErr: -1}), ErrValue},
		{"synced 2", with(valid(Request{Op: OpStatus}), 2, 2), ErrValue},
		{"flags on a step", with(valid(Request{Op: OpStep, Step: 1}), 2, 1), ErrValue},
		{"byte 3", with(valid(Request{Op: OpStep, Step: 1}), 3, 1), ErrValue},
		{"tail", with(valid(Request{Op: OpStep, Step: 1}), 31, 1), ErrValue},
		{"B on a frequency", with(valid(Request{Op: OpFrequency}), 23, 1), ErrValue},
		{"value on a read", with(valid(Request{Op: OpGetFrequency}), 15, 1), ErrValue},
	} {
		if _, err := DecodeRequest(tt.b); !errors.Is(err, tt.want) {
			t.Errorf("%s: DecodeRequest(%x) = %v; want %v", tt.name, tt.b, err, tt.want)
		}
	}
}

// FuzzDecodeRequest: THREATS H7. No panic; whatever decodes encodes back
// to the same bytes (there is one encoding of each request).
func FuzzDecodeRequest(f *testing.F) {
	f.Add(Request{Op: OpStep, Seq: 7, Step: 999 * time.Second}.Encode(make([]byte, RequestLen)))
	f.Add(Request{Op: OpFrequency, FreqPPM: 1e9}.Encode(make([]byte, RequestLen)))
	f.Add(Request{Op: OpStatus, Synced: true, MaxErr: time.Second}.Encode(make([]byte, RequestLen)))
	f.Add([]byte{1, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err != nil {
			return
		}
		if out := r.Encode(make([]byte, RequestLen)); !bytes.Equal(out, b) {
			t.Fatalf("DecodeRequest(%x) = %+v, which encodes to %x", b, r, out)
		}
	})
}
