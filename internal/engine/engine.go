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
	"net/netip"
	"slices"
	"time"

	"github.com/meridian-ntp/meridian/internal/discipline"
	"github.com/meridian-ntp/meridian/internal/mono"
	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/server"
	"github.com/meridian-ntp/meridian/internal/source"
)

// SourceOptions are a source's options, as configured: the
// discipline's, and its start.
type SourceOptions struct {
	discipline.Options
	// IBurst starts the source with a burst of requests.
	IBurst bool
}

// SourceConfig configures one source.
type SourceConfig struct {
	// Name is the source as configured, for status and logs: a server's
	// "HOST:PORT", or a pool's name for each of its members.
	Name string
	// Addr is where the source's requests go.
	Addr netip.AddrPort
	// RefID is the reference ID the server serves while synchronized to
	// this source (ntp.RefIDFromAddr of its address, or any ID in a simulation).
	RefID ntp.RefID
	// Group names the source's network (GroupOf its address): the
	// sources of one group count as one in selection (THREATS D7).
	Group   string
	Options SourceOptions
}

// Config configures an Engine.
type Config struct {
	// Sources are the sources at fixed addresses.
	Sources []SourceConfig
	// Names are the servers and pools given by DNS name (or by address,
	// which resolves to itself): see Engine.DueNames.
	Names      []NameConfig
	Discipline discipline.Config
	// Poll, if not zero, fixes every source's poll interval (tests and
	// simulations); zero lets the discipline choose.
	Poll time.Duration
	// Precision of the local clock, log2 s, for the served state.
	Precision int8
	// ResolveRetry is the wait before a failed resolution is tried
	// again, doubled with every failure in a row up to 1024 s (default
	// 8 s).
	ResolveRetry time.Duration
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
	cfg   Config
	d     *discipline.Discipline
	rands func(id int) source.Rand
	// slots holds the sources by number; nil is a free number.
	slots  []*slot
	nextID int
	names  []nameState
	// shunned holds the pool members dropped lately, with when they may
	// be taken again, so that a pool does not take back at once the
	// member it just dropped.
	shunned map[netip.AddrPort]mono.Instant
	events  []Event
	wake    mono.Instant // the discipline's wake, 0 if none
	// refTime is the local clock's time at the last clock update.
	refTime ntp.Time
}

// slot is one source.
type slot struct {
	cfg   SourceConfig
	id    int
	name  int // the index in Config.Names it was resolved from, or -1
	assoc *source.Association
	buf   []byte
	last  ntp.Header // the last valid reply's header
	delay time.Duration
	// polls counts the requests sent since the source was added or last
	// found unreachable; falseRun the samples in a row it was a
	// falseticker in.
	polls, falseRun int
}

// New returns an Engine at now. rands gives each source its randomness
// (the daemon: independent cryptographically strong generators), by a
// number that grows with every source added, from 0 for Config.Sources[0].
func New(cfg Config, rands func(id int) source.Rand, now mono.Instant) *Engine {
	dc := cfg.Discipline
	if dc.Sources == 0 {
		dc.Sources = len(cfg.Sources)
		for _, n := range cfg.Names {
			dc.Sources += n.max()
		}
	}
	e := &Engine{cfg: cfg, d: discipline.New(dc, now), rands: rands, shunned: map[netip.AddrPort]mono.Instant{}}
	for _, sc := range cfg.Sources {
		e.add(now, sc, -1)
	}
	for _, n := range cfg.Names {
		e.names = append(e.names, nameState{cfg: n, due: now, wanted: true})
	}
	return e
}

// add starts source sc, resolved from name (-1: none), in the first free
// slot, and returns its number.
func (e *Engine) add(now mono.Instant, sc SourceConfig, name int) int {
	i := slices.Index(e.slots, nil)
	if i < 0 {
		i = len(e.slots)
		e.slots = append(e.slots, nil)
	}
	// The association backs off (after a kiss) as far as the poll
	// bounds the discipline settles on.
	o := e.d.SetOptions(i, sc.Options.Options)
	e.slots[i] = &slot{cfg: sc, id: e.nextID, name: name, buf: make([]byte, ntp.HeaderLen),
		assoc: source.NewAssociation(source.AssocConfig{IBurst: sc.Options.IBurst, MaxPoll: o.MaxPoll}, e.rands(e.nextID), now)}
	e.nextID++
	if name >= 0 {
		e.events = append(e.events, Event{Kind: EventAdded, Src: i, Name: sc.Name, Addr: sc.Addr})
	}
	return i
}

// remove drops source src for the reason given.
func (e *Engine) remove(src int, reason string) {
	s := e.slots[src]
	e.slots[src] = nil
	e.d.Remove(src)
	e.events = append(e.events, Event{Kind: EventRemoved, Src: src, Name: s.cfg.Name, Addr: s.cfg.Addr, Reason: reason})
}

// Len returns how many source numbers are in use or free: the sources
// are the numbers below it for which Source reports true.
func (e *Engine) Len() int { return len(e.slots) }

// Source returns source src's configuration and its unique number (see
// New), and whether there is such a source.
func (e *Engine) Source(src int) (SourceConfig, int, bool) {
	s := e.slot(src)
	if s == nil {
		return SourceConfig{}, 0, false
	}
	return s.cfg, s.id, true
}

// slot returns source src's slot, or nil if there is no such source.
func (e *Engine) slot(src int) *slot {
	if src < 0 || src >= len(e.slots) {
		return nil
	}
	return e.slots[src]
}

// Next returns when HandleTimer must next be called (or DueNames, for
// a name due to be resolved), and false if nothing is scheduled: no
// source and no name due, only resolutions pending.
func (e *Engine) Next() (mono.Instant, bool) {
	var next mono.Instant
	ok := false
	earlier := func(t mono.Instant) {
		if !ok || t < next {
			next, ok = t, true
		}
	}
	if e.wake != 0 {
		earlier(e.wake)
	}
	for _, s := range e.slots {
		if s != nil {
			earlier(s.assoc.Next())
		}
	}
	for _, n := range e.names {
		if n.wanted && !n.pending {
			earlier(n.due)
		}
	}
	return next, ok
}

// unreachPolls is how many requests in a row must go unanswered before
// a source is unreachable: a pool then replaces it, and a server given
// by name is looked up again in case its address changed.
const unreachPolls = 8

// HandleTimer sends the requests that are due, appending them to sends,
// and ends a slew that has run its course. wall is the local clock's time
// now. The adjustment, if changed, must be applied.
func (e *Engine) HandleTimer(now mono.Instant, wall ntp.Time, sends []Send) ([]Send, discipline.Adjustment, bool) {
	for i, s := range e.slots {
		if s == nil {
			continue
		}
		poll := e.cfg.Poll
		if poll == 0 {
			poll = e.d.Poll(i)
		}
		req := s.assoc.HandleTimer(now, wall, poll, s.buf)
		if req == nil {
			continue
		}
		if s.polls++; s.polls > unreachPolls && s.assoc.Reach() == 0 {
			e.unreachable(now, i)
			if e.slots[i] == nil {
				continue
			}
		}
		sends = append(sends, Send{Src: i, Packet: req})
	}
	if e.wake != 0 && !now.Before(e.wake) {
		adj := e.d.HandleTimer(now)
		e.wake = adj.Wake
		return sends, adj, true
	}
	return sends, discipline.Adjustment{}, false
}

// Sent records the local clock's time t1 just before source src's
// request, handed out by HandleTimer, actually left: the time that the
// reply's offset and delay are measured from.
func (e *Engine) Sent(src int, t1 ntp.Time) {
	if s := e.slot(src); s != nil {
		s.assoc.Sent(t1)
	}
}

// HandleResponse takes reply b from source src, received at now and at
// local time t4 (the kernel's receive timestamp; utc is the same reading
// as a time). If the reply is valid, it returns the clock's new
// adjustment; otherwise the error says why it was refused.
func (e *Engine) HandleResponse(now mono.Instant, src int, b []byte, t4 ntp.Time, utc time.Time) (discipline.Adjustment, error) {
	sl := e.slot(src)
	if sl == nil {
		return discipline.Adjustment{}, source.ErrNoRequest
	}
	s, err := sl.assoc.HandleResponse(now, b, t4)
	if err != nil {
		return discipline.Adjustment{}, err
	}
	h := s.Header
	if h.Stratum > 1 && slices.Contains(e.cfg.OwnRefIDs, h.RefID) {
		return discipline.Adjustment{}, ErrLoop
	}
	sl.last, sl.delay = h, s.Delay
	adj := e.d.Sample(now, src, discipline.Measurement{At: now, Offset: s.Offset, Delay: s.Delay,
		RootDistance: h.RootDelay.Duration()/2 + h.RootDisp.Duration(),
		Leap:         h.Leap, UTC: utc, Group: sl.cfg.Group})
	e.wake = adj.Wake
	if e.d.Synced() {
		e.refTime = t4
		e.judge(now, src)
	}
	return adj, nil
}

// Discipline returns the engine's discipline, for status.
func (e *Engine) Discipline() *discipline.Discipline { return e.d }

// Last returns the header of source src's last valid reply, and whether
// there was one.
func (e *Engine) Last(src int) (ntp.Header, bool) {
	s := e.slot(src)
	if s == nil {
		return ntp.Header{}, false
	}
	return s.last, s.last.Mode != 0
}

// Association returns source src's association, for status, or nil if
// there is no such source.
func (e *Engine) Association(src int) *source.Association {
	if s := e.slot(src); s != nil {
		return s.assoc
	}
	return nil
}

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
	for i, s := range e.slots {
		if s == nil || !e.d.Combined(i) {
			continue
		}
		_, sd, ok := e.d.Estimate(now, i)
		h := s.last
		if !ok || h.Stratum == 0 {
			continue
		}
		dist := (h.RootDelay.Duration()+s.delay).Seconds()/2 + h.RootDisp.Duration().Seconds() + sd
		if dist < bestDist {
			best, bestDist, bestSD = i, dist, sd
		}
	}
	if best < 0 {
		return server.Unsynchronized(e.cfg.Precision)
	}
	b := e.slots[best]
	h := b.last
	stratum := min(h.Stratum+1, ntp.MaxStratum-1)
	sdShort := ntp.ShortCeil(time.Duration(bestSD * 1e9))
	return &server.State{
		Leap:      e.d.LeapAnnounced(),
		Stratum:   stratum,
		Precision: e.cfg.Precision,
		RefID:     b.cfg.RefID,
		Reference: e.refTime,
		RootDelay: h.RootDelay.AddSat(ntp.ShortCeil(b.delay)),
		RootDisp:  h.RootDisp.AddSat(sdShort),
	}
}
