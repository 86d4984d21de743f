package privsep

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"sync"
	"time"

	"github.com/meridian-ntp/meridian/internal/clock"
	"github.com/meridian-ntp/meridian/internal/discipline"
	"github.com/meridian-ntp/meridian/internal/steplog"
)

// Keeper carries out the engine's clock requests on a clock backend,
// under its own Policy and step budget. It parses nothing but
// fixed-size requests and reads no network. It is safe for concurrent
// use (its slew timer runs on its own), though one Serve runs at a time.
type Keeper struct {
	clock  clock.Clock
	policy Policy
	// stepFile, if set, keeps the budget's steps across restarts of the
	// daemon; it is written before every step is made.
	stepFile string
	log      *slog.Logger
	now      func() time.Time
	mono     func() time.Duration

	// mu guards the fields below.
	mu     sync.Mutex
	budget *discipline.Budget
	// bad counts the invalid or refused requests, less one for each good
	// one: a session ends when it reaches MaxBad.
	bad int
	// freq is the frequency correction last set (ppm), counted against
	// the budget up to freqAt on the monotonic clock; slewTimer brings it
	// back within DriftPPM when the budget runs out.
	freq      float64
	freqAt    time.Duration
	slewTimer *time.Timer
	// Refusals are logged at most logBurst times per logEvery; the rest
	// are counted in quiet.
	logged  int
	logFrom time.Duration
	quiet   int
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
	// Mono reads a monotonic clock, for how long a frequency ran
	// (default: the time since NewKeeper).
	Mono func() time.Duration
}

// MaxBad is how many invalid or refused requests (less one for each
// good one) end a session: an engine that keeps asking for what it may
// not have is taken for compromised, and the supervisor restarts it.
const MaxBad = 16

// ErrHostile: the engine sent too many invalid or refused requests.
var ErrHostile = errors.New("privsep: too many invalid or refused clock requests")

// Logging of refusals: at most logBurst lines per logEvery.
const (
	logBurst = 10
	logEvery = time.Minute
)

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
	if c.Mono == nil {
		start := time.Now()
		c.Mono = func() time.Duration { return time.Since(start) }
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
		stepFile: c.StepFile, log: c.Log, now: c.Now, mono: c.Mono}, nil
}

// handle answers one request datagram b, writing the response into out
// (ResponseLen bytes) and returning it. An invalid request is answered
// StatusInvalid with what could be read of it; one against the policy
// StatusRefused, and logged; both count toward MaxBad, and bad reports
// that the session must end.
func (k *Keeper) handle(b, out []byte) (resp []byte, bad bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.settle()
	r, err := DecodeRequest(b)
	if err != nil {
		var seq uint32
		op := OpGetFrequency // an op a response may carry
		if len(b) >= 8 {
			seq = binary.BigEndian.Uint32(b[4:8])
		}
		k.warn("invalid clock request refused", "err", err, "size", len(b))
		return Response{Op: op, Status: StatusInvalid, Seq: seq}.Encode(out), k.strike()
	}
	if err := k.policy.check(r, k.now(), k.budget); err != nil {
		k.warn("clock request refused by the keeper's policy", "op", r.Op, "reason", err)
		return Response{Op: r.Op, Status: StatusRefused, Seq: r.Seq}.Encode(out), k.strike()
	}
	k.bad = max(k.bad-1, 0)
	rs := Response{Op: r.Op, Seq: r.Seq}
	if err := k.apply(r, &rs); err != nil {
		k.log.Error("clock request failed", "op", r.Op, "err", err)
		rs.Status = StatusFailed
	}
	return rs.Encode(out), false
}

// warn logs a refusal, at most logBurst a logEvery; the lines held back
// are counted in the next one. k.mu is held.
func (k *Keeper) warn(msg string, args ...any) {
	if now := k.mono(); now-k.logFrom >= logEvery {
		k.logFrom, k.logged = now, 0
	}
	if k.logged >= logBurst {
		k.quiet++
		return
	}
	k.logged++
	if k.quiet > 0 {
		args = append(args, "not_logged_before", k.quiet)
		k.quiet = 0
	}
	k.log.Warn(msg, args...)
}

// strike counts a bad request and reports whether the session must end.
// k.mu is held.
func (k *Keeper) strike() bool {
	k.bad++
	return k.bad >= MaxBad
}

// settle counts what the frequency in force moved the clock beyond
// DriftPPM since it was last counted against the budget, and brings the
// frequency back within DriftPPM once the budget is spent. k.mu is held.
func (k *Keeper) settle() {
	now := k.mono()
	if x := excess(k.freq) * (now - k.freqAt).Seconds(); x > 0 {
		d := time.Duration(x * 1e9)
		if k.freq < 0 {
			d = -d
		}
		k.budget.Record(k.now(), d)
		if x >= 1e-3 {
			// A slew of a millisecond or more is on record across
			// restarts too; a failure leaves it on record here only.
			if err := k.saveSteps(); err != nil {
				k.log.Error("clock keeper: cannot write the step file", "err", err)
			}
		}
	}
	k.freqAt = now
	if excess(k.freq) == 0 {
		return
	}
	if budgetSpent(k.budget, k.now()) {
		f := math.Copysign(DriftPPM, k.freq)
		if err := k.clock.SetFrequency(f); err != nil {
			k.log.Error("clock keeper: cannot end a slew", "err", err)
			return
		}
		k.log.Warn("clock keeper: the step budget is spent: slew ended", "from_ppm", k.freq, "to_ppm", f)
		k.freq = f
	}
}

// setFrequency sets the frequency correction and, if it slews beyond
// DriftPPM, arms the timer that ends the slew when the budget runs out.
// k.mu is held.
func (k *Keeper) setFrequency(ppm float64) error {
	if err := k.clock.SetFrequency(ppm); err != nil {
		return err
	}
	k.freq, k.freqAt = ppm, k.mono()
	if k.slewTimer != nil {
		k.slewTimer.Stop()
		k.slewTimer = nil
	}
	if left, limited := k.budget.Remaining(k.now()); limited && excess(ppm) > 0 {
		k.slewTimer = time.AfterFunc(time.Duration(left.Seconds()/excess(ppm)*1e9)+time.Millisecond, func() {
			k.mu.Lock()
			defer k.mu.Unlock()
			k.settle()
		})
	}
	return nil
}

// endSession ends the engine's session (it hung up, died, or was taken
// for hostile): a slew under way is ended, the frequency brought back
// within DriftPPM, so that no slew outlives the engine that asked for it.
func (k *Keeper) endSession() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.settle()
	if excess(k.freq) > 0 {
		if err := k.setFrequency(math.Copysign(DriftPPM, k.freq)); err != nil {
			k.log.Error("clock keeper: cannot end a slew", "err", err)
		}
	}
}

// apply carries out an allowed request. k.mu is held.
func (k *Keeper) apply(r Request, resp *Response) error {
	switch r.Op {
	case OpFrequency:
		return k.setFrequency(r.FreqPPM)
	case OpStep:
		// The step is on record before it is made: no crash between the
		// two lets a restart step again for free.
		k.budget.Record(k.now(), r.Step)
		if err := k.saveSteps(); err != nil {
			return fmt.Errorf("step not made: %w", err)
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

// saveSteps writes the budget's steps to the step file, if there is one.
// k.mu is held.
func (k *Keeper) saveSteps() error {
	if k.stepFile == "" {
		return nil
	}
	return steplog.Write(k.stepFile, k.budget.Steps())
}

// Serve answers the requests that come on conn, one datagram each (a
// SOCK_SEQPACKET socket), until the engine closes it (nil), or sends
// MaxBad bad requests in a row (ErrHostile), or conn fails. One Serve
// runs at a time: the budget is the keeper's, across the sessions of
// every engine it serves.
func (k *Keeper) Serve(conn net.Conn) error {
	k.mu.Lock()
	k.bad = 0 // a new engine starts with a clean record
	k.mu.Unlock()
	defer k.endSession()
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
		resp, bad := k.handle(in[:n], out)
		if _, err := conn.Write(resp); err != nil {
			return err
		}
		if bad {
			return ErrHostile
		}
	}
}
