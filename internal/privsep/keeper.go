package privsep

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"time"

	"github.com/meridian-ntp/meridian/internal/clock"
	"github.com/meridian-ntp/meridian/internal/discipline"
	"github.com/meridian-ntp/meridian/internal/steplog"
)

// Keeper carries out the engine's clock requests on a clock backend,
// under its own Policy and step budget. It parses nothing but
// fixed-size requests and reads no network.
type Keeper struct {
	clock  clock.Clock
	policy Policy
	budget *discipline.Budget
	// stepFile, if set, keeps the budget's steps across restarts of the
	// daemon; it is written before every step is made.
	stepFile string
	log      *slog.Logger
	now      func() time.Time
	// bad counts the invalid or refused requests in a row.
	bad int
}

// KeeperConfig configures a Keeper.
type KeeperConfig struct {
	Clock  clock.Clock
	Policy Policy
	// StepBudget bounds the steps of the last 24 hours added up
	// (default: Policy.MaxStep; negative: no bound).
	StepBudget time.Duration
	// StepFile keeps the steps across restarts ("" for none). It must be
	// a file the engine cannot write.
	StepFile string
	Log      *slog.Logger
	// Now reads the keeper's clock for its policy (default: Clock.Now).
	Now func() time.Time
}

// MaxBad is how many invalid or refused requests in a row end a
// session: an engine that keeps asking for what it may not have is
// taken for compromised, and the supervisor restarts it.
const MaxBad = 16

// ErrHostile: the engine sent MaxBad invalid or refused requests in a
// row.
var ErrHostile = errors.New("privsep: too many invalid or refused clock requests in a row")

// NewKeeper returns a Keeper, with the steps of its step file (a missing
// file is no steps; an unreadable one is an error: the budget must not be
// reset by damaging the file).
func NewKeeper(c KeeperConfig) (*Keeper, error) {
	c.Policy.defaults()
	if c.StepBudget == 0 {
		c.StepBudget = c.Policy.MaxStep
	}
	if c.Now == nil {
		c.Now = c.Clock.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	var steps []discipline.Step
	if c.StepFile != "" {
		var err error
		steps, err = steplog.Read(c.StepFile)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("privsep: keeper step file: %w", err)
		}
	}
	return &Keeper{clock: c.Clock, policy: c.Policy, budget: discipline.NewBudget(c.StepBudget, steps),
		stepFile: c.StepFile, log: c.Log, now: c.Now}, nil
}

// Handle answers one request datagram b, writing the response into out
// (ResponseLen bytes) and returning it. An invalid request is answered
// StatusInvalid with what could be read of it; one against the policy
// StatusRefused, and logged; both count toward MaxBad, and bad reports
// that the session must end.
func (k *Keeper) Handle(b, out []byte) (resp []byte, bad bool) {
	r, err := DecodeRequest(b)
	if err != nil {
		var seq uint32
		op := OpGetFrequency // an op a response may carry
		if len(b) >= 8 {
			seq = binary.BigEndian.Uint32(b[4:8])
		}
		k.log.Warn("invalid clock request refused", "err", err, "size", len(b))
		return Response{Op: op, Status: StatusInvalid, Seq: seq}.Encode(out), k.strike()
	}
	if err := k.policy.check(r, k.now(), k.budget); err != nil {
		k.log.Warn("clock request refused by the keeper's policy", "op", r.Op, "reason", err)
		return Response{Op: r.Op, Status: StatusRefused, Seq: r.Seq}.Encode(out), k.strike()
	}
	k.bad = 0
	rs := Response{Op: r.Op, Seq: r.Seq}
	if err := k.apply(r, &rs); err != nil {
		k.log.Error("clock request failed", "op", r.Op, "err", err)
		rs.Status = StatusFailed
	}
	return rs.Encode(out), false
}

// strike counts a bad request and reports whether the session must end.
func (k *Keeper) strike() bool {
	k.bad++
	return k.bad >= MaxBad
}

// apply carries out an allowed request.
func (k *Keeper) apply(r Request, resp *Response) error {
	switch r.Op {
	case OpFrequency:
		return k.clock.SetFrequency(r.FreqPPM)
	case OpStep:
		// The step is on record before it is made: no crash between the
		// two lets a restart step again for free.
		k.budget.Record(k.now(), r.Step)
		if k.stepFile != "" {
			if err := steplog.Write(k.stepFile, k.budget.Steps()); err != nil {
				return fmt.Errorf("step not made: %w", err)
			}
		}
		k.log.Info("clock stepped", "by", r.Step)
		return k.clock.Step(r.Step)
	case OpLeap:
		return k.clock.SetLeap(r.Leap)
	case OpStatus:
		return k.clock.SetStatus(r.Synced, r.MaxErr, r.EstErr)
	case OpGetFrequency:
		f, err := k.clock.Frequency()
		resp.FreqPPM = f
		return err
	}
	return nil
}

// Serve answers the requests that come on conn, one datagram each (a
// SOCK_SEQPACKET socket), until the engine closes it (nil), or sends
// MaxBad bad requests in a row (ErrHostile), or conn fails. One Serve
// runs at a time: the budget is the keeper's, across the sessions of
// every engine it serves.
func (k *Keeper) Serve(conn net.Conn) error {
	k.bad = 0                        // a new engine starts with a clean record
	in := make([]byte, RequestLen+1) // one more, so that a longer datagram is seen as such
	out := make([]byte, ResponseLen)
	for {
		n, err := conn.Read(in)
		if errors.Is(err, io.EOF) || n == 0 && err == nil {
			return nil
		}
		if err != nil {
			return err
		}
		resp, bad := k.Handle(in[:n], out)
		if _, err := conn.Write(resp); err != nil {
			return err
		}
		if bad {
			return ErrHostile
		}
	}
}
