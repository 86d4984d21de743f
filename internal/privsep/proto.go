package privsep

import (
	"encoding/binary"
	"errors"
	"math"
	"time"

	"github.com/meridian-ntp/meridian/internal/ntp"
)

// Op is what a request asks the keeper to do.
type Op uint8

// Operations.
const (
	OpFrequency    Op = iota + 1 // set the frequency correction to FreqPPM
	OpStep                       // step the clock by Step
	OpLeap                       // arm Leap at the end of the UTC day (or disarm)
	OpStatus                     // record Synced, MaxErr, EstErr
	OpGetFrequency               // read the frequency correction
	opEnd
)

var opNames = [...]string{"", "frequency", "step", "leap", "status", "get-frequency"}

func (o Op) String() string {
	if o > 0 && o < opEnd {
		return opNames[o]
	}
	return "unknown"
}

// Wire sizes. Every request is RequestLen bytes and every response
// ResponseLen; a datagram of any other size is invalid.
const (
	RequestLen  = 32
	ResponseLen = 16
	version     = 1
)

// Request is a request to the keeper.
//
//	 0       1       2       3       4               8
//	+-------+-------+-------+-------+---------------+
//	|version|  op   | flags |   0   |     seq       |
//	+-------+-------+-------+-------+---------------+
//	|   A: frequency (float64 bits) or step (int64 ns) or max error (ns)
//	+-----------------------------------------------+
//	|   B: estimated error (ns)                     |
//	+-----------------------------------------------+
//	|   0                                           |
//	+-----------------------------------------------+
//
// flags: the leap indicator (OpLeap) or 1 if synchronized (OpStatus).
type Request struct {
	Op      Op
	Seq     uint32
	FreqPPM float64       // OpFrequency
	Step    time.Duration // OpStep
	Leap    ntp.Leap      // OpLeap
	Synced  bool          // OpStatus
	MaxErr  time.Duration // OpStatus
	EstErr  time.Duration // OpStatus
}

// Status is the keeper's answer.
type Status uint8

// Statuses.
const (
	StatusOK      Status = iota // carried out
	StatusInvalid               // malformed: wrong size, version, op, or a value no clock takes
	StatusRefused               // well formed, but against the keeper's policy
	StatusFailed                // allowed, but the clock backend failed
	statusEnd
)

var statusNames = [...]string{"ok", "invalid", "refused", "failed"}

func (s Status) String() string {
	if s < statusEnd {
		return statusNames[s]
	}
	return "unknown"
}

// Response is the keeper's answer to a request.
//
//	 0       1       2       3       4               8
//	+-------+-------+-------+-------+---------------+
//	|version|  op   |status |   0   |     seq       |
//	+-------+-------+-------+-------+---------------+
//	|   frequency (float64 bits), OpGetFrequency    |
//	+-----------------------------------------------+
type Response struct {
	Op      Op
	Status  Status
	Seq     uint32
	FreqPPM float64
}

// Errors of Decode.
var (
	ErrSize    = errors.New("privsep: message of the wrong size")
	ErrVersion = errors.New("privsep: unknown protocol version")
	ErrOp      = errors.New("privsep: unknown operation")
	ErrValue   = errors.New("privsep: value out of range")
)

// maxErrLimit bounds the errors a status may record: the kernel's own
// limit for maxerror is 16 s.
const maxErrLimit = 16 * time.Second

// Encode writes r into b, which must hold RequestLen bytes, and returns
// them.
func (r Request) Encode(b []byte) []byte {
	b = b[:RequestLen]
	clear(b)
	b[0], b[1] = version, byte(r.Op)
	binary.BigEndian.PutUint32(b[4:8], r.Seq)
	switch r.Op {
	case OpFrequency:
		binary.BigEndian.PutUint64(b[8:16], math.Float64bits(r.FreqPPM))
	case OpStep:
		binary.BigEndian.PutUint64(b[8:16], uint64(r.Step))
	case OpLeap:
		b[2] = byte(r.Leap)
	case OpStatus:
		if r.Synced {
			b[2] = 1
		}
		binary.BigEndian.PutUint64(b[8:16], uint64(r.MaxErr))
		binary.BigEndian.PutUint64(b[16:24], uint64(r.EstErr))
	}
	return b
}

// DecodeRequest parses and validates a request: the size, version and
// operation, zero in every unused byte, and values any clock could take
// (a finite frequency, a leap indicator other than 3, errors within
// 0–16 s). Whether the keeper allows it is Policy's business.
func DecodeRequest(b []byte) (Request, error) {
	if len(b) != RequestLen {
		return Request{}, ErrSize
	}
	if b[0] != version {
		return Request{}, ErrVersion
	}
	r := Request{Op: Op(b[1]), Seq: binary.BigEndian.Uint32(b[4:8])}
	a, bb := binary.BigEndian.Uint64(b[8:16]), binary.BigEndian.Uint64(b[16:24])
	unusedZero := b[3] == 0 && binary.BigEndian.Uint64(b[24:32]) == 0
	switch r.Op {
	case OpFrequency:
		r.FreqPPM = math.Float64frombits(a)
		if !unusedZero || b[2] != 0 || bb != 0 || math.IsNaN(r.FreqPPM) || math.IsInf(r.FreqPPM, 0) {
			return Request{}, ErrValue
		}
	case OpStep:
		r.Step = time.Duration(a)
		if !unusedZero || b[2] != 0 || bb != 0 || r.Step == 0 || r.Step == math.MinInt64 {
			return Request{}, ErrValue
		}
	case OpLeap:
		r.Leap = ntp.Leap(b[2])
		if !unusedZero || a != 0 || bb != 0 || r.Leap > ntp.LeapDelete {
			return Request{}, ErrValue
		}
	case OpStatus:
		r.Synced, r.MaxErr, r.EstErr = b[2] == 1, time.Duration(a), time.Duration(bb)
		if !unusedZero || b[2] > 1 || r.MaxErr < 0 || r.MaxErr > maxErrLimit || r.EstErr < 0 || r.EstErr > maxErrLimit {
			return Request{}, ErrValue
		}
	case OpGetFrequency:
		if !unusedZero || b[2] != 0 || a != 0 || bb != 0 {
			return Request{}, ErrValue
		}
	default:
		return Request{}, ErrOp
	}
	return r, nil
}

// Encode writes r into b, which must hold ResponseLen bytes, and returns
// them.
func (r Response) Encode(b []byte) []byte {
	b = b[:ResponseLen]
	clear(b)
	b[0], b[1], b[2] = version, byte(r.Op), byte(r.Status)
	binary.BigEndian.PutUint32(b[4:8], r.Seq)
	binary.BigEndian.PutUint64(b[8:16], math.Float64bits(r.FreqPPM))
	return b
}

// DecodeResponse parses a response.
func DecodeResponse(b []byte) (Response, error) {
	if len(b) != ResponseLen {
		return Response{}, ErrSize
	}
	if b[0] != version {
		return Response{}, ErrVersion
	}
	r := Response{Op: Op(b[1]), Status: Status(b[2]), Seq: binary.BigEndian.Uint32(b[4:8]),
		FreqPPM: math.Float64frombits(binary.BigEndian.Uint64(b[8:16]))}
	if r.Op == 0 || r.Op >= opEnd {
		return Response{}, ErrOp
	}
	if r.Status >= statusEnd || b[3] != 0 || math.IsNaN(r.FreqPPM) || math.IsInf(r.FreqPPM, 0) {
		return Response{}, ErrValue
	}
	return r, nil
}
