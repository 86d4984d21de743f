// Package engine is the client's whole decision-making: one association
// per source (package source), the clock discipline (package discipline),
// and the time state the server hands out (package server's State), glued
// together. The daemon and the simulator drive the same Engine: the daemon
// with sockets and the kernel's clock, the simulator in virtual time.
//
// The package performs no I/O: it reads no clock and sends nothing. Times
// and packets come in as arguments; requests to send and clock
// adjustments go out as values.
package engine

import (
	"errors"
	"math"
	"slices"
	"time"

	"github.com/meridian-ntp/meridian/internal/discipline"
	"github.com/meridian-ntp/meridian/internal/mono"
	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/server"
	"github.com/meridian-ntp/meridian/internal/source"
)

// SourceConfig configures one source.
type SourceConfig struct {
	// RefID is the reference ID the server serves while synchronized to
	// this source: its IPv4 address, or the first four bytes of the MD5
	// of its IPv6 address (RFC 5905 §7.3); the caller computes it.
	RefID ntp.RefID
	// IBurst starts the source with a burst of requests.
	IBurst bool
	// Group names the source's network (its IPv4 /24 or IPv6 /48): the
	// sources of one group count as one in selection (THREATS D7).
	Group string
}

// Config configures an Engine.
type Config struct {
	Sources    []SourceConfig
	Discipline discipline.Config
	// Poll, if not zero, fixes every source's poll interval (tests and
	// simulations); zero lets the discipline choose.
	Poll time.Duration
	// Precision of the local clock, log2 s, for the served state.
	Precision int8
	// OwnRefIDs are the reference IDs other servers would use for this
	// one (its addresses): a source that says it is synchronized to one
	// of them is synchronized to us, and its samples are refused
	// (THREATS D10).
	OwnRefIDs []ntp.RefID
}

// ErrLoop: the source is synchronized to this server.
var ErrLoop = errors.New("engine: the source is synchronized to this server (a loop)")

// Send is a request to send to a source.
type Send struct {
	Src    int
	Packet []byte // aliases the Engine's buffer for that source until its next HandleTimer
}

// Engine is not safe for concurrent use.
type Engine struct {
	cfg    Config
	d      *discipline.Discipline
	assocs []*source.Association
	bufs   [][]byte
	last   []ntp.Header // the last valid reply's header per source
	delays []time.Duration
	wake   mono.Instant // the discipline's wake, 0 if none
	// refTime is the local clock's time at the last clock update.
	refTime ntp.Time
}

// New returns an Engine at now. rands gives each source its randomness
// (the daemon: independent cryptographically strong generators).
func New(cfg Config, rands func(src int) source.Rand, now mono.Instant) *Engine {
	dc := cfg.Discipline
	if dc.Sources == 0 {
		dc.Sources = len(cfg.Sources)
	}
	e := &Engine{cfg: cfg, d: discipline.New(dc, now)}
	for i, sc := range cfg.Sources {
		e.assocs = append(e.assocs, source.NewAssociation(source.AssocConfig{IBurst: sc.IBurst}, rands(i), now))
		e.bufs = append(e.bufs, make([]byte, ntp.HeaderLen))
	}
	e.last = make([]ntp.Header, len(cfg.Sources))
	e.delays = make([]time.Duration, len(cfg.Sources))
	return e
}

// Next returns when HandleTimer must next be called.
func (e *Engine) Next() mono.Instant {
	next := e.wake
	for _, a := range e.assocs {
		if next == 0 || a.Next() < next {
			next = a.Next()
		}
	}
	return next
}

// HandleTimer sends the requests that are due, appending them to sends,
// and ends a slew that has run its course. wall is the local clock's time
// now. The adjustment, if changed, must be applied.
func (e *Engine) HandleTimer(now mono.Instant, wall ntp.Time, sends []Send) ([]Send, discipline.Adjustment, bool) {
	for i, a := range e.assocs {
		poll := e.cfg.Poll
		if poll == 0 {
			poll = e.d.Poll(i)
		}
		if req := a.HandleTimer(now, wall, poll, e.bufs[i]); req != nil {
			sends = append(sends, Send{Src: i, Packet: req})
		}
	}
	if e.wake != 0 && !now.Before(e.wake) {
		adj := e.d.HandleTimer(now)
		e.wake = adj.Wake
		return sends, adj, true
	}
	return sends, discipline.Adjustment{}, false
}

// HandleResponse takes reply b from source src, received at now and at
// local time t4 (the kernel's receive timestamp; utc is the same reading
// as a time). If the reply is valid, it returns the clock's new
// adjustment; otherwise the error says why it was refused.
func (e *Engine) HandleResponse(now mono.Instant, src int, b []byte, t4 ntp.Time, utc time.Time) (discipline.Adjustment, error) {
	if src < 0 || src >= len(e.assocs) {
		return discipline.Adjustment{}, source.ErrNoRequest
	}
	s, err := e.assocs[src].HandleResponse(now, b, t4)
	if err != nil {
		return discipline.Adjustment{}, err
	}
	h := s.Header
	if h.Stratum > 1 && slices.Contains(e.cfg.OwnRefIDs, h.RefID) {
		return discipline.Adjustment{}, ErrLoop
	}
	e.last[src], e.delays[src] = h, s.Delay
	adj := e.d.Sample(now, src, discipline.Measurement{At: now, Offset: s.Offset, Delay: s.Delay,
		RootDistance: h.RootDelay.Duration()/2 + h.RootDisp.Duration(),
		Leap:         h.Leap, UTC: utc, Group: e.cfg.Sources[src].Group})
	e.wake = adj.Wake
	if e.d.Synced() {
		e.refTime = t4
	}
	return adj, nil
}

// Discipline returns the engine's discipline, for status.
func (e *Engine) Discipline() *discipline.Discipline { return e.d }

// Last returns the header of source src's last valid reply, and whether
// there was one.
func (e *Engine) Last(src int) (ntp.Header, bool) {
	h := e.last[src]
	return h, h.Mode != 0
}

// Association returns source src's association, for status.
func (e *Engine) Association(src int) *source.Association { return e.assocs[src] }

// State returns the time state to serve at now: unsynchronized while the
// discipline does not steer; otherwise synchronized to the selected
// source with the smallest root distance, at its stratum + 1, with its
// reference ID, root delay grown by the path's delay and root dispersion
// grown by the estimate's uncertainty, and the leap second the
// truechimers announce.
func (e *Engine) State(now mono.Instant) *server.State {
	if !e.d.Synced() {
		return server.Unsynchronized(e.cfg.Precision)
	}
	best, bestDist := -1, math.Inf(1)
	var bestSD float64
	for i := range e.assocs {
		if !e.d.Truechimer(i) {
			continue
		}
		_, sd, ok := e.d.Estimate(now, i)
		h := e.last[i]
		if !ok || h.Stratum == 0 {
			continue
		}
		dist := (h.RootDelay.Duration()+e.delays[i]).Seconds()/2 + h.RootDisp.Duration().Seconds() + sd
		if dist < bestDist {
			best, bestDist, bestSD = i, dist, sd
		}
	}
	if best < 0 {
		return server.Unsynchronized(e.cfg.Precision)
	}
	h := e.last[best]
	stratum := min(h.Stratum+1, ntp.MaxStratum-1)
	sdShort := ntp.ShortCeil(time.Duration(bestSD * 1e9))
	return &server.State{
		Leap:      e.d.LeapAnnounced(),
		Stratum:   stratum,
		Precision: e.cfg.Precision,
		RefID:     e.cfg.Sources[best].RefID,
		Reference: e.refTime,
		RootDelay: h.RootDelay.AddSat(ntp.ShortCeil(e.delays[best])),
		RootDisp:  h.RootDisp.AddSat(sdShort),
	}
}
