package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridian-ntp/meridian/internal/clock"
	"github.com/meridian-ntp/meridian/internal/control"
	"github.com/meridian-ntp/meridian/internal/discipline"
	"github.com/meridian-ntp/meridian/internal/drift"
	"github.com/meridian-ntp/meridian/internal/engine"
	"github.com/meridian-ntp/meridian/internal/mono"
	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/query"
	"github.com/meridian-ntp/meridian/internal/server"
	"github.com/meridian-ntp/meridian/internal/source"
	"github.com/meridian-ntp/meridian/internal/steplog"
)

// resolver resolves host names: *net.Resolver, or a test's.
type resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// clientConfig configures runClient.
type clientConfig struct {
	// Engine configures the engine: its sources and names.
	Engine engine.Config
	// Resolver resolves the names; nil: net.DefaultResolver.
	Resolver resolver
	Clock    clock.Clock
	// Served, if set, receives the engine's time state after every
	// update; while the client is not synchronized, Fallback's state if
	// Fallback is set.
	Served   *Served
	Fallback func() *server.State
	Origin   time.Time // zero of the monotonic clock
	Log      *slog.Logger
	// DriftFile, if set, receives the oscillator's frequency error every
	// driftEvery and when the client stops.
	DriftFile string
	// StepFile, if set, receives the discipline's recent steps before
	// every step.
	StepFile string
	// Status, if set, receives the client's status for the control
	// socket after every event.
	Status *atomic.Pointer[clientStatus]
	// ClockName names the clock backend in the status.
	ClockName string
}

// clientStatus is a snapshot of the client for the control socket.
type clientStatus struct {
	Status  control.Status
	Sources []control.Source
}

// driftEvery is how often the drift file is written.
const driftEvery = time.Hour

// clientReply is a datagram from a source, with its kernel receive time
// and the socket it came on.
type clientReply struct {
	src  int
	conn *net.UDPConn
	b    []byte
	rx   time.Time
	at   mono.Instant
}

// resolution is the answer to the resolution of a name.
type resolution struct {
	name  int
	addrs []netip.Addr
	err   error
}

// idleWait is the timer's wait while the engine has nothing scheduled:
// a resolution's answer, not the timer, brings the next event.
const idleWait = time.Hour

// maxPending bounds the replies waiting for the engine: a source that
// floods us loses its datagrams, not our memory.
const maxPending = 64

// runClient runs the client until ctx is done: it polls the sources
// through the engine, each request from a new UDP socket connected to
// its source (so the kernel drops datagrams from any other address or
// port, THREATS C7, and every request has a fresh source port, C8),
// takes the kernel's receive timestamps, resolves the names the engine
// asks for, and carries the engine's adjustments out on the clock.
func runClient(ctx context.Context, c clientConfig) error {
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	now := func() mono.Instant { return mono.Instant(time.Since(c.Origin)) }
	eng := engine.New(c.Engine, func(int) source.Rand { return newSourceRand() }, now())
	l := &clientLoop{c: c, eng: eng, now: now, peers: map[int]*peer{},
		replies: make(chan clientReply, maxPending), resolved: make(chan resolution, len(c.Engine.Names))}
	rctx, cancel := context.WithCancel(ctx)
	// Closing the sockets ends the readers; cancelling rctx the
	// resolutions.
	defer func() {
		cancel()
		for src := range l.peers {
			l.closePeer(src)
		}
		l.wg.Wait()
	}()
	return l.run(ctx, rctx)
}

// newSourceRand returns a generator for a source's transmit values:
// ChaCha8 seeded from crypto/rand, so that the values are unpredictable
// (THREATS C9).
func newSourceRand() *mrand.ChaCha8 {
	var seed [32]byte
	// crypto/rand.Read never fails (it aborts the program if the kernel
	// has no randomness to give).
	_, _ = rand.Read(seed[:])
	return mrand.NewChaCha8(seed)
}

// readReplies reads datagrams from conn until it is closed and queues
// them, dropping them when the queue is full.
func readReplies(conn *net.UDPConn, src int, now func() mono.Instant, out chan<- clientReply) {
	buf := make([]byte, 2048)
	oob := make([]byte, 128)
	for {
		n, oobn, flags, _, err := conn.ReadMsgUDP(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // an ICMP error on a connected socket, say: keep reading
		}
		if flags&query.MsgTrunc != 0 {
			continue
		}
		rx, ok := query.RxTimestamp(oob[:oobn])
		if !ok {
			rx = time.Now()
		}
		r := clientReply{src: src, conn: conn, b: append([]byte(nil), buf[:n]...), rx: rx, at: now()}
		select {
		case out <- r:
		default:
		}
	}
}

// peer is the daemon's side of one source: the socket of its latest
// request.
type peer struct {
	id      int // the engine's unique number of the source
	conn    *net.UDPConn
	failing bool // the last request could not be sent
}

// clientLoop is the client's event loop.
type clientLoop struct {
	c        clientConfig
	eng      *engine.Engine
	now      func() mono.Instant
	peers    map[int]*peer // by source number
	replies  chan clientReply
	resolved chan resolution
	wg       sync.WaitGroup // the readers and resolutions
	sends    []engine.Send
	due      []int
	events   []engine.Event
	noRxTS   bool // kernel receive timestamps were refused (logged once)
	synced   bool
	alarm    discipline.Alarm
	selected string // the sources' states, as selection returns them
}

// selection returns each source's state as one letter: s selected, f
// falseticker, - no estimate yet, and a space for a free number.
func (l *clientLoop) selection() string {
	d := l.eng.Discipline()
	now := l.now()
	b := make([]byte, l.eng.Len())
	for i := range b {
		_, _, live := l.eng.Source(i)
		switch _, _, ok := d.Estimate(now, i); {
		case !live:
			b[i] = ' '
		case !ok:
			b[i] = '-'
		case d.Truechimer(i):
			b[i] = 's'
		default:
			b[i] = 'f'
		}
	}
	return string(b)
}

func (l *clientLoop) run(ctx, rctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	driftTick := time.NewTicker(driftEvery)
	defer driftTick.Stop()
	for {
		l.startResolutions(rctx)
		l.handleEvents()
		l.snapshot()
		// With nothing scheduled (only resolutions pending), the timer
		// waits for the next event of another kind.
		wait := idleWait
		if next, ok := l.eng.Next(); ok {
			wait = max(next.Sub(l.now()), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			l.writeDrift()
			return nil
		case <-driftTick.C:
			l.writeDrift()
		case <-timer.C:
			l.timer()
		case r := <-l.replies:
			l.reply(r)
		case r := <-l.resolved:
			l.eng.HandleResolved(l.now(), r.name, r.addrs, r.err)
		}
	}
}

// startResolutions resolves the names that are due, each in its own
// goroutine, so that a slow resolver never holds up the loop.
func (l *clientLoop) startResolutions(ctx context.Context) {
	l.due = l.eng.DueNames(l.now(), l.due[:0])
	for _, n := range l.due {
		host := l.eng.Name(n).Host
		l.wg.Add(1)
		// The resolution ends within resolveWait, or when ctx is done;
		// l.resolved has room for one answer per name, and a name has
		// one resolution at a time, so the send never blocks.
		go func() {
			defer l.wg.Done()
			rctx, cancel := context.WithTimeout(ctx, resolveWait)
			defer cancel()
			addrs, err := lookup(rctx, l.c.Resolver, host)
			l.resolved <- resolution{name: n, addrs: addrs, err: err}
		}()
	}
}

// lookup resolves host with r; an IP literal is its own answer, with its
// zone (which the resolver drops).
func lookup(ctx context.Context, r resolver, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	return r.LookupNetIP(ctx, "ip", host)
}

// handleEvents logs the engine's changes of its sources and closes the
// sockets of the sources it dropped.
func (l *clientLoop) handleEvents() {
	l.events = l.eng.Events(l.events[:0])
	for _, ev := range l.events {
		switch ev.Kind {
		case engine.EventAdded:
			l.c.Log.Info("source added", "name", ev.Name, "address", ev.Addr)
		case engine.EventRemoved:
			l.closePeer(ev.Src)
			l.c.Log.Info("source dropped", "name", ev.Name, "address", ev.Addr, "reason", ev.Reason)
		case engine.EventResolveFailed:
			l.c.Log.Warn("cannot resolve", "name", ev.Name, "err", ev.Reason, "retry in", ev.Retry)
		}
	}
}

// closePeer closes the socket of source src's last request, if any.
func (l *clientLoop) closePeer(src int) {
	if p := l.peers[src]; p != nil {
		if p.conn != nil {
			// Close errors are ignored: the socket is gone either way.
			_ = p.conn.Close()
		}
		delete(l.peers, src)
	}
}

// timer sends the requests that are due.
func (l *clientLoop) timer() {
	var adj discipline.Adjustment
	var changed bool
	wall := ntp.TimeFrom(l.c.Clock.Now())
	l.sends, adj, changed = l.eng.HandleTimer(l.now(), wall, l.sends[:0])
	for _, s := range l.sends {
		l.send(s)
	}
	if changed {
		l.apply(adj)
	}
}

// send sends a request from a new socket connected to its source; the
// socket of the source's previous request is closed, so that a reply to
// it is never read.
func (l *clientLoop) send(s engine.Send) {
	cfg, id, _ := l.eng.Source(s.Src)
	p := l.peers[s.Src]
	if p != nil && p.id != id {
		l.closePeer(s.Src)
		p = nil
	}
	if p == nil {
		p = &peer{id: id}
		l.peers[s.Src] = p
	}
	if p.conn != nil {
		// Close errors are ignored: the socket is gone either way.
		_ = p.conn.Close()
		p.conn = nil
	}
	conn, err := l.dial(cfg.Addr, s.Packet, func() { l.eng.Sent(s.Src, ntp.TimeFrom(l.c.Clock.Now())) })
	if err != nil {
		// A request not sent is a request lost: the association counts
		// it as unanswered. Logged when sending starts failing, and when
		// it works again.
		if !p.failing {
			l.c.Log.Warn("cannot send to source", "name", cfg.Name, "address", cfg.Addr, "err", err)
		}
		p.failing = true
		return
	}
	if p.failing {
		l.c.Log.Info("sending to source again", "name", cfg.Name, "address", cfg.Addr)
	}
	p.conn, p.failing = conn, false
	l.wg.Add(1)
	// The reader exits when conn is closed: at the source's next
	// request, when it is dropped, or when the client stops.
	go func() {
		defer l.wg.Done()
		readReplies(conn, s.Src, l.now, l.replies)
	}()
}

// dial opens a UDP socket connected to addr, with kernel receive
// timestamps, and sends b from it, calling sending (if set) just before:
// opening the socket takes long enough to matter to the measurement.
func (l *clientLoop) dial(addr netip.AddrPort, b []byte, sending func()) (*net.UDPConn, error) {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, err
	}
	if err := query.EnableRxTimestamps(conn); err != nil && !l.noRxTS {
		l.noRxTS = true
		l.c.Log.Warn("no kernel receive timestamps; replies are stamped when read", "err", err)
	}
	if sending != nil {
		sending()
	}
	if _, err := conn.Write(b); err != nil {
		// Close errors are ignored: the socket is gone either way.
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}

// reply hands a reply to the engine, if it came on the socket of its
// source's latest request.
func (l *clientLoop) reply(r clientReply) {
	p := l.peers[r.src]
	if p == nil || p.conn != r.conn {
		return
	}
	// The receive timestamp is the system clock's; the request's send
	// time is the steered clock's: take both on the same clock.
	rx := l.c.Clock.FromSystem(r.rx)
	adj, err := l.eng.HandleResponse(r.at, r.src, r.b, ntp.TimeFrom(rx), rx)
	if err != nil {
		cfg, _, _ := l.eng.Source(r.src)
		l.c.Log.Debug("reply refused", "source", cfg.Name, "address", cfg.Addr, "err", err)
		return
	}
	l.apply(adj)
}

// apply carries out an adjustment, publishes the served state and logs
// what changed.
func (l *clientLoop) apply(a discipline.Adjustment) {
	ck := l.c.Clock
	var errs []error
	if a.Step != 0 {
		// The step is on record before it is made, so that no crash
		// between the two lets a restart step again for free.
		if l.c.StepFile != "" {
			if err := steplog.Write(l.c.StepFile, l.eng.Discipline().Steps()); err != nil {
				l.c.Log.Error("cannot write the step file", "err", err)
			}
		}
		errs = append(errs, ck.Step(a.Step))
		l.c.Log.Info("clock stepped", "by", a.Step)
	}
	errs = append(errs, ck.SetFrequency(a.FreqPPM), ck.SetLeap(a.Leap))
	d := l.eng.Discipline()
	now := l.now()
	st := l.eng.State(now)
	// The kernel's maximum error is the served root distance; its
	// estimated error the combined estimate's standard deviation.
	maxErr := st.RootDelay.Duration()/2 + st.RootDisp.Duration()
	_, sd := l.combined(now)
	errs = append(errs, ck.SetStatus(d.Synced(), maxErr, min(maxErr, time.Duration(sd*1e9))))
	if err := errors.Join(errs...); err != nil {
		l.c.Log.Error("cannot adjust the clock", "err", err)
	}
	if l.c.Served != nil {
		if !d.Synced() && l.c.Fallback != nil {
			st = l.c.Fallback()
		}
		l.c.Served.Store(st)
	}
	// Logged: every change of synchronization or alarm, and while
	// synchronized every change of a source's state (the line lists
	// them all); unsynchronized, the reason alone, once.
	selected := l.selection()
	synced := d.Synced()
	if synced != l.synced || d.Alarm() != l.alarm || synced && selected != l.selected {
		l.synced, l.alarm = synced, d.Alarm()
		l.logState(now)
	}
	l.selected = selected
}

// snapshot publishes the client's status for the control socket.
func (l *clientLoop) snapshot() {
	if l.c.Status == nil {
		return
	}
	now := l.now()
	d := l.eng.Discipline()
	st := l.eng.State(now)
	cs := &clientStatus{Status: control.Status{Synchronized: d.Synced(), Clock: l.c.ClockName, Stratum: int(st.Stratum),
		RefID: refIDText(st.RefID), Leap: st.Leap.String(), RootDelay: st.RootDelay.Duration().Seconds(),
		RootDisp: st.RootDisp.Duration().Seconds()}}
	if a := d.Alarm(); a != discipline.AlarmNone {
		cs.Status.Alarm = a.String()
	}
	if ppm, sd, ok := d.Drift(now); ok {
		cs.Status.Frequency, cs.Status.FrequencySD = ppm, sd
	}
	for i := range l.eng.Len() {
		s, _, live := l.eng.Source(i)
		if !live {
			continue
		}
		src := control.Source{Name: s.Name, Address: s.Addr.String(), State: "none",
			Reach: uint8(l.eng.Association(i).Reach()), Poll: pollLog2(d.Poll(i))}
		if h, ok := l.eng.Last(i); ok {
			src.Stratum = int(h.Stratum)
		}
		if theta, sd, ok := d.Estimate(now, i); ok {
			src.Offset, src.OffsetSD = theta, sd
			src.State = sourceState(d, s, i, now)
			if d.Combined(i) && st.RefID == s.RefID {
				cs.Status.Reference = s.Addr.String()
			}
		}
		cs.Sources = append(cs.Sources, src)
	}
	cs.Status.Offset, _ = l.combined(now)
	l.c.Status.Store(cs)
}

// combined returns the combined sources' offset estimate at now and its
// standard deviation, in seconds (inverse-variance weighted, as the
// discipline combines them); zeros if no source is combined.
func (l *clientLoop) combined(now mono.Instant) (offset, sd float64) {
	d := l.eng.Discipline()
	var sw, off float64
	for i := range l.eng.Len() {
		theta, s, ok := d.Estimate(now, i)
		if !ok || !d.Combined(i) {
			continue
		}
		w := 1 / max(s*s, 1e-24)
		sw, off = sw+w, off+w*theta
	}
	if sw == 0 {
		return 0, 0
	}
	return off / sw, math.Sqrt(1 / sw)
}

// sourceState names the selection's verdict on source src, which has an
// estimate: selected (combined into the clock's estimate), unpreferred
// (a truechimer left out because preferred sources are), falseticker,
// noselect, or smearing (suspected of smearing a leap second, and left
// out until its smear is over).
func sourceState(d *discipline.Discipline, s engine.SourceConfig, src int, now mono.Instant) string {
	switch {
	case s.Options.NoSelect:
		return "noselect"
	case d.Smearing(now, src):
		return "smearing"
	case d.Combined(src):
		return "selected"
	case d.Truechimer(src):
		return "unpreferred"
	}
	return "falseticker"
}

func pollLog2(d time.Duration) int {
	n := 0
	for s := d / time.Second; s > 1; s >>= 1 {
		n++
	}
	return n
}

// refIDText writes a reference ID as a dotted quad.
func refIDText(r ntp.RefID) string {
	return netip.AddrFrom4(r).String()
}

// writeDrift writes the drift file, if there is one and an estimate.
func (l *clientLoop) writeDrift() {
	if l.c.DriftFile == "" {
		return
	}
	ppm, sd, ok := l.eng.Discipline().Drift(l.now())
	if !ok {
		return
	}
	d := drift.Drift{FreqPPM: max(-drift.MaxFreqPPM, min(drift.MaxFreqPPM, ppm)), SDPPM: min(sd, drift.MaxSDPPM)}
	if err := drift.Write(l.c.DriftFile, d); err != nil {
		l.c.Log.Error("cannot write the drift file", "err", err)
	}
}

// logState logs the client's state after a change of synchronization.
func (l *clientLoop) logState(now mono.Instant) {
	d := l.eng.Discipline()
	if !l.synced {
		l.c.Log.Warn("clock not synchronized", "reason", d.Alarm().String())
		return
	}
	args := []any{}
	for i := range l.eng.Len() {
		s, _, live := l.eng.Source(i)
		if !live {
			continue
		}
		if theta, sd, ok := d.Estimate(now, i); ok {
			args = append(args, s.Addr.String(), fmt.Sprintf("%s offset %+.6f s ± %.6f", sourceState(d, s, i, now), theta, sd))
		} else {
			args = append(args, s.Addr.String(), "no reply")
		}
	}
	l.c.Log.Info("clock synchronized", args...)
}
