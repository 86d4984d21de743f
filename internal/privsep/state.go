package privsep

import (
	"encoding/binary"
	"errors"

	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/server"
)

// StateLen is the size of a served-state message from the engine to
// the server.
const StateLen = 24

// A served-state message:
//
//	 0       1       2       3       4
//	+-------+-------+-------+-------+
//	|version| leap  |stratum| prec  |
//	+-------+-------+-------+-------+
//	|            refid              |
//	+-------------------------------+
//	|     reference (64-bit NTP)    |
//	|                               |
//	+-------------------------------+
//	|      root delay (Short)       |
//	+-------------------------------+
//	|    root dispersion (Short)    |
//	+-------------------------------+

// ErrState: a served-state message that is not one.
var ErrState = errors.New("privsep: invalid served-state message")

// EncodeState writes st into b (StateLen bytes) and returns them.
func EncodeState(b []byte, st *server.State) []byte {
	b = b[:StateLen]
	b[0], b[1], b[2], b[3] = version, byte(st.Leap), st.Stratum, byte(st.Precision)
	copy(b[4:8], st.RefID[:])
	binary.BigEndian.PutUint64(b[8:16], uint64(st.Reference))
	binary.BigEndian.PutUint32(b[16:20], uint32(st.RootDelay))
	binary.BigEndian.PutUint32(b[20:24], uint32(st.RootDisp))
	return b
}

// DecodeState parses a served-state message. The server takes what an
// engine could serve: a leap indicator, a stratum up to 16, any
// precision, reference ID and times.
func DecodeState(b []byte) (*server.State, error) {
	if len(b) != StateLen || b[0] != version || b[1] > byte(ntp.LeapUnsync) || b[2] > ntp.MaxStratum {
		return nil, ErrState
	}
	st := &server.State{Leap: ntp.Leap(b[1]), Stratum: b[2], Precision: int8(b[3]),
		Reference: ntp.Time(binary.BigEndian.Uint64(b[8:16])),
		RootDelay: ntp.Short(binary.BigEndian.Uint32(b[16:20])), RootDisp: ntp.Short(binary.BigEndian.Uint32(b[20:24]))}
	copy(st.RefID[:], b[4:8])
	return st, nil
}
