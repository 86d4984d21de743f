package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
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
)

// clientSource is one source of the client.
type clientSource struct {
	Name   string // as configured, for the log
	Addr   netip.AddrPort
	Engine engine.SourceConfig
}

// clientConfig configures runClient.
type clientConfig struct {
	Sources []clientSource
	// Engine configures the engine; its Sources are filled in from
	// Sources.
	Engine engine.Config
	Clock  clock.Clock
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

// clientReply is a datagram from a source, with its kernel receive time.
type clientReply struct {
	src int
	b   []byte
	rx  time.Time
	at  mono.Instant
}

// maxPending bounds the replies waiting for the engine: a source that
// floods us loses its datagrams, not our memory.
const maxPending = 64

// runClient runs the client until ctx is done: it polls the sources
// through the engine, each over a UDP socket connected to it (so the
// kernel drops datagrams from any other address or port, THREATS C7),
// takes the kernel's receive timestamps, and carries the engine's
// adjustments out on the clock.
func runClient(ctx context.Context, c clientConfig) error {
	conns := make([]*net.UDPConn, len(c.Sources))
	var wg sync.WaitGroup
	// Closing the sockets ends the readers.
	defer func() {
		for _, conn := range conns {
			if conn != nil {
				// Close errors are ignored: the socket is gone either way.
				_ = conn.Close()
			}
		}
		wg.Wait()
	}()
	for i, s := range c.Sources {
		conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.Addr))
		if err != nil {
			return fmt.Errorf("source %s: %w", s.Name, err)
		}
		conns[i] = conn
		if err := query.EnableRxTimestamps(conn); err != nil {
			c.Log.Warn("no kernel receive timestamps; replies are stamped when read", "source", s.Name, "err", err)
		}
		c.Engine.Sources = append(c.Engine.Sources, s.Engine)
	}
	rands, err := sourceRands(len(c.Sources))
	if err != nil {
		return err
	}
	now := func() mono.Instant { return mono.Instant(time.Since(c.Origin)) }
	eng := engine.New(c.Engine, func(i int) source.Rand { return rands[i] }, now())
	replies := make(chan clientReply, maxPending)
	for i, conn := range conns {
		wg.Add(1)
		// The reader exits when its socket is closed, on return.
		go func() {
			defer wg.Done()
			readReplies(conn, i, now, replies)
		}()
	}
	l := clientLoop{c: c, eng: eng, conns: conns, now: now}
	return l.run(ctx, replies)
}

// sourceRands returns one generator per source for the transmit values:
// ChaCha8, each seeded from crypto/rand, so that the values are
// unpredictable (THREATS C9).
func sourceRands(n int) ([]*mrand.ChaCha8, error) {
	var rs []*mrand.ChaCha8
	for range n {
		var seed [32]byte
		if _, err := rand.Read(seed[:]); err != nil {
			return nil, fmt.Errorf("seed the transmit values: %w", err)
		}
		rs = append(rs, mrand.NewChaCha8(seed))
	}
	return rs, nil
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
		r := clientReply{src: src, b: append([]byte(nil), buf[:n]...), rx: rx, at: now()}
		select {
		case out <- r:
		default:
		}
	}
}

// clientLoop is the client's event loop.
type clientLoop struct {
	c        clientConfig
	eng      *engine.Engine
	conns    []*net.UDPConn
	now      func() mono.Instant
	sends    []engine.Send
	synced   bool
	alarm    discipline.Alarm
	selected string // the sources' states, as selection returns them
}

// selection returns each source's state as one letter: s selected, f
// falseticker, - no estimate yet.
func (l *clientLoop) selection() string {
	d := l.eng.Discipline()
	now := l.now()
	b := make([]byte, len(l.c.Sources))
	for i := range b {
		switch _, _, ok := d.Estimate(now, i); {
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

func (l *clientLoop) run(ctx context.Context, replies <-chan clientReply) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	driftTick := time.NewTicker(driftEvery)
	defer driftTick.Stop()
	for {
		select {
		case <-ctx.Done():
			l.writeDrift()
			return nil
		case <-driftTick.C:
			l.writeDrift()
		case <-timer.C:
			l.timer()
		case r := <-replies:
			l.reply(r)
		}
		l.snapshot()
		wait := l.eng.Next().Sub(l.now())
		timer.Reset(max(wait, 0))
	}
}

// timer sends the requests that are due.
func (l *clientLoop) timer() {
	var adj discipline.Adjustment
	var changed bool
	wall := ntp.TimeFrom(l.c.Clock.Now())
	l.sends, adj, changed = l.eng.HandleTimer(l.now(), wall, l.sends[:0])
	for _, s := range l.sends {
		// A failed send is a lost request; the association counts it
		// as unanswered.
		_, _ = l.conns[s.Src].Write(s.Packet)
	}
	if changed {
		l.apply(adj)
	}
}

// reply hands a reply to the engine.
func (l *clientLoop) reply(r clientReply) {
	// The receive timestamp is the system clock's; the request's send
	// time is the steered clock's: take both on the same clock.
	rx := l.c.Clock.FromSystem(r.rx)
	adj, err := l.eng.HandleResponse(r.at, r.src, r.b, ntp.TimeFrom(rx), rx)
	if err != nil {
		l.c.Log.Debug("reply refused", "source", l.c.Sources[r.src].Name, "err", err)
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
		errs = append(errs, ck.Step(a.Step))
		l.c.Log.Info("clock stepped", "by", a.Step)
	}
	errs = append(errs, ck.SetFrequency(a.FreqPPM), ck.SetLeap(a.Leap))
	d := l.eng.Discipline()
	now := l.now()
	st := l.eng.State(now)
	maxErr := st.RootDelay.Duration()/2 + st.RootDisp.Duration()
	errs = append(errs, ck.SetStatus(d.Synced(), maxErr, maxErr))
	if err := errors.Join(errs...); err != nil {
		l.c.Log.Error("cannot adjust the clock", "err", err)
	}
	if l.c.Served != nil {
		if !d.Synced() && l.c.Fallback != nil {
			st = l.c.Fallback()
		}
		l.c.Served.Store(st)
	}
	selected := l.selection()
	if synced := d.Synced(); synced != l.synced || d.Alarm() != l.alarm || selected != l.selected {
		l.synced, l.alarm, l.selected = synced, d.Alarm(), selected
		l.logState(now)
	}
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
	var sw, off float64
	for i, s := range l.c.Sources {
		src := control.Source{Name: s.Name, Address: s.Addr.String(), State: "none",
			Reach: uint8(l.eng.Association(i).Reach()), Poll: pollLog2(d.Poll(i))}
		if h, ok := l.eng.Last(i); ok {
			src.Stratum = int(h.Stratum)
		}
		if theta, sd, ok := d.Estimate(now, i); ok {
			src.Offset, src.OffsetSD = theta, sd
			src.State = "falseticker"
			if d.Truechimer(i) {
				src.State = "selected"
				w := 1 / max(sd*sd, 1e-24)
				sw, off = sw+w, off+w*theta
				if st.RefID == s.Engine.RefID {
					cs.Status.Reference = s.Name
				}
			}
		}
		cs.Sources = append(cs.Sources, src)
	}
	if sw > 0 {
		cs.Status.Offset = off / sw
	}
	l.c.Status.Store(cs)
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
	for i, s := range l.c.Sources {
		state := "falseticker"
		if d.Truechimer(i) {
			state = "selected"
		}
		if theta, sd, ok := d.Estimate(now, i); ok {
			args = append(args, s.Name, fmt.Sprintf("%s offset %+.6f s ± %.6f", state, theta, sd))
		} else {
			args = append(args, s.Name, "no reply")
		}
	}
	l.c.Log.Info("clock synchronized", args...)
}
