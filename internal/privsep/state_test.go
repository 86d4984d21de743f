package privsep

import (
	"bytes"
	"testing"

	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/server"
)

func TestStateRoundTrip(t *testing.T) {
	for _, st := range []*server.State{
		server.Unsynchronized(-20),
		server.Local(10, -24, ntp.Time(0xE8000000_12345678)),
		{Leap: ntp.LeapInsert, Stratum: 3, Precision: -22, RefID: ntp.RefID{192, 0, 2, 1}, Reference: 1 << 40, RootDelay: 77, RootDisp: 99},
	} {
		got, err := DecodeState(EncodeState(make([]byte, StateLen), st))
		if err != nil || *got != *st {
			t.Errorf("DecodeState(EncodeState(%+v)) = %+v, %v", st, got, err)
		}
	}
	for _, b := range [][]byte{nil, make([]byte, StateLen), make([]byte, StateLen+1),
		append([]byte{1, 4}, make([]byte, StateLen-2)...), append([]byte{1, 0, 17}, make([]byte, StateLen-3)...)} {
		if _, err := DecodeState(b); err == nil {
			t.Errorf("DecodeState(%x): no error", b)
		}
	}
}

// FuzzDecodeState: no panic; what decodes encodes back to the same bytes.
func FuzzDecodeState(f *testing.F) {
	f.Add(EncodeState(make([]byte, StateLen), server.Local(2, -20, 12345)))
	f.Add([]byte{1, 3, 16})
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := DecodeState(b)
		if err != nil {
			return
		}
		if out := EncodeState(make([]byte, StateLen), st); !bytes.Equal(out, b) {
			t.Fatalf("DecodeState(%x) = %+v, which encodes to %x", b, st, out)
		}
	})
}
