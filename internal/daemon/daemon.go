package daemon

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridian-ntp/meridian/internal/clock"
	"github.com/meridian-ntp/meridian/internal/config"
	"github.com/meridian-ntp/meridian/internal/control"
	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/privsep"
	"github.com/meridian-ntp/meridian/internal/server"
	"github.com/meridian-ntp/meridian/internal/udp"
	"github.com/meridian-ntp/meridian/internal/xdp"
)

// Daemon is a running server: its workers and its state provider.
type Daemon struct {
	log     *slog.Logger
	conns   []batchConn
	workers []*worker
	served  Served
	xdp     *xdp.Program // the fast path, if loaded here
	xdpMaps *xdp.Maps    // the fast path's served state and counts, or nil

	// status is the client's last status, for the control socket.
	status atomic.Pointer[clientStatus]

	// xdpMu guards xdpFinal, the fast path's counts when it was closed.
	xdpMu    sync.Mutex
	xdpFinal map[server.Verdict]uint64
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// Start opens the configured sockets and starts serving. It returns once
// every socket is bound; Wait blocks until ctx is done and everything has
// stopped.
func Start(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Daemon, error) {
	return StartWith(ctx, cfg, log, Options{})
}

// Options change what Start does, for the processes of privilege
// separation: the server serves sockets it was given and the states
// that come from the engine; the engine runs the client (or mirror, or
// local clock), the control socket on a listener it was given, and
// steers the clock through the keeper.
type Options struct {
	// Role is the part of the daemon to run: all of it (privsep.RoleAll, the
	// zero value), the server or the engine.
	Role privsep.Role
	// Conns are the server's sockets, handed over (Role server).
	Conns []*udp.Conn
	// States brings the engine's served states (Role server); once it is
	// closed, the last state stays served.
	States <-chan *server.State
	// XDPMaps are the maps of the XDP fast path that the parent loaded
	// and attached (Role server); nil: none.
	XDPMaps *xdp.Maps
	// Control is the control socket's listener, handed over (Role
	// engine); nil: none.
	Control net.Listener
	// Clock, if set, is the clock the client steers instead of the
	// kernel's (Role engine: the keeper's).
	Clock clock.Clock
	// Publish receives every served state (Role engine: for the server).
	Publish func(*server.State)
	// Confine is called once everything is open, before anything is
	// served or asked: it locks the process in.
	Confine func() error
}

// StartWith is Start with options.
func StartWith(ctx context.Context, cfg *config.Config, log *slog.Logger, o Options) (*Daemon, error) {
	ctx, cancel := context.WithCancel(ctx)
	d := &Daemon{log: log, cancel: cancel}
	fail := func(err error) (*Daemon, error) {
		d.close()
		cancel()
		d.wg.Wait()
		return nil, err
	}
	conns := o.Conns
	if o.Role == privsep.RoleAll {
		var err error
		if conns, err = listenConns(cfg, log); err != nil {
			return fail(err)
		}
	}
	for _, c := range conns {
		d.conns = append(d.conns, c)
	}
	ensureProcs(len(d.conns), log)
	acl := server.NewACL(cfg.Server.Access.Allow, cfg.Server.Access.Deny)
	switch {
	case o.Role == privsep.RoleServer && o.XDPMaps != nil:
		d.useXDP(o.XDPMaps)
	case o.Role == privsep.RoleAll && len(cfg.Server.XDP.Interfaces) > 0:
		p, err := loadXDP(cfg, acl)
		if err != nil {
			return fail(err)
		}
		d.xdp = p
		d.useXDP(&p.Maps)
	}
	origin := time.Now()
	precision := measurePrecision()
	var client *clientConfig
	if cfg.Client.Enabled() && o.Role != privsep.RoleServer {
		cc := newClientConfig(cfg, precision, log)
		cc.Origin = origin
		cc.Status = &d.status
		cc.ClockName = cfg.Client.Clock.String()
		if cfg.Client.Clock == config.ClockKernel {
			clk := o.Clock
			if clk == nil {
				// One process: the keeper is a goroutine, behind the same
				// socketpair and policy as in a split daemon.
				var err error
				if clk, err = d.startKeeper(ctx, cfg, log); err != nil {
					return fail(err)
				}
			}
			cc.Clock = clk
		}
		client = &cc
	}
	ln := o.Control
	if cfg.Control.Socket != "" && o.Role == privsep.RoleAll {
		var err error
		if ln, err = control.Listen(cfg.Control.Socket); err != nil {
			return fail(err)
		}
	}
	if o.Confine != nil {
		if err := o.Confine(); err != nil {
			if ln != nil {
				// The listener goes with the failure.
				_ = ln.Close()
			}
			return fail(err)
		}
	}
	if ln != nil {
		d.wg.Add(1)
		// Serve returns when ctx is done.
		go func() {
			defer d.wg.Done()
			control.Serve(ctx, ln, d.handleControl)
		}()
		log.Info("control socket", "path", cfg.Control.Socket)
	}
	switch o.Role {
	case privsep.RoleServer:
		// Unsynchronized until the engine's first state comes (the
		// fast path, if any, is told too).
		d.served.Store(server.Unsynchronized(precision))
		d.wg.Add(1)
		// The relay returns when States is closed or ctx is done.
		go func() {
			defer d.wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case st, ok := <-o.States:
					if !ok {
						return
					}
					d.served.Store(st)
				}
			}
		}()
	default:
		if o.Publish != nil { // the engine's: no fast path to publish to here
			d.served.publish = o.Publish
		}
		d.startProviders(ctx, cfg, origin, precision, client)
	}
	if o.Role != privsep.RoleEngine {
		err := d.startWorkers(cfg, acl, origin)
		if err == nil && d.xdp != nil {
			err = attachXDP(d.xdp, cfg, log)
		}
		if err != nil {
			return fail(err)
		}
	}
	// Closing the sockets is what stops the workers.
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		<-ctx.Done()
		d.close()
	}()
	if o.Role != privsep.RoleEngine {
		for _, addr := range cfg.Server.Listen {
			log.Info("serving NTP", "address", addr, "sockets", len(d.conns)/len(cfg.Server.Listen))
		}
	}
	return d, nil
}

// startKeeper starts the clock keeper as a goroutine, serving until ctx
// is done, and returns the clock the client steers through it.
func (d *Daemon) startKeeper(ctx context.Context, cfg *config.Config, log *slog.Logger) (clock.Clock, error) {
	k, err := newKeeper(cfg, log, nil)
	if err != nil {
		return nil, err
	}
	mine, theirs, err := privsep.SocketPair()
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, func() { _ = theirs.Close() })
	d.wg.Add(1)
	// Serve returns when the client's end is closed, at ctx's end.
	go func() {
		defer d.wg.Done()
		defer mine.Close()
		if err := k.Serve(mine); err != nil {
			log.Error("clock keeper: stopped", "err", err)
		}
	}()
	return privsep.NewKeeperClock(theirs), nil
}

// ensureProcs raises GOMAXPROCS to one more than the number of workers.
// Each worker spends most of its time blocked in recvmmsg, holding a P
// while it does; with no P to spare, as when the process is confined to
// one CPU, the runtime takes the P away during each of those calls and
// its monitor thread wakes every 20 µs, which costs more CPU time than the
// worker. A P is not a CPU: the extra ones cost nothing while the workers
// sleep in the kernel.
func ensureProcs(workers int, log *slog.Logger) {
	if have := runtime.GOMAXPROCS(0); have < workers+1 {
		runtime.GOMAXPROCS(workers + 1)
		log.Debug("raised GOMAXPROCS", "from", have, "to", workers+1)
	}
}

// listenConns opens the sockets of every listen address; on an error it
// closes those it opened. The steering prefixes are the rate limiter's,
// so that each worker sees every request of the clients it limits.
func listenConns(cfg *config.Config, log *slog.Logger) ([]*udp.Conn, error) {
	rl := cfg.Server.RateLimit
	lc := udp.ListenConfig{Sockets: cfg.Server.Workers, IPv4Prefix: rl.IPv4Prefix, IPv6Prefix: rl.IPv6Prefix}
	var all []*udp.Conn
	for _, addr := range cfg.Server.Listen {
		conns, err := lc.Listen(addr)
		if err != nil {
			for _, c := range all {
				_ = c.Close() // the error below is what matters
			}
			return nil, fmt.Errorf("listen on %v: %w", addr, err)
		}
		if len(conns) > 1 && !conns[0].Steered() {
			log.Warn("clients cannot be steered to one socket each: a client may get up to one rate-limit budget per socket",
				"address", addr, "sockets", len(conns))
		}
		all = append(all, conns...)
	}
	return all, nil
}

func (d *Daemon) startProviders(ctx context.Context, cfg *config.Config, origin time.Time, precision int8, client *clientConfig) {
	// The first state is in place before any worker starts, so that no
	// request is answered from an unset state or as unsynchronized by a
	// server configured with a local stratum.
	if n := cfg.Server.LocalStratum; n > 0 && !cfg.Mirror.Enabled() {
		d.served.Store(server.Local(uint8(n), precision, ntp.TimeFrom(time.Now())))
	} else {
		d.served.Store(server.Unsynchronized(precision))
	}
	// What is served is logged before the provider starts, so that the
	// log says it before any request is answered.
	switch {
	case client != nil:
		d.log.Info("client", "servers", len(cfg.Client.Servers), "pools", len(cfg.Client.Pools), "clock", cfg.Client.Clock, "local_stratum_fallback", cfg.Server.LocalStratum)
	case cfg.Mirror.Enabled():
		d.log.Info("mirror mode", "upstream", cfg.Mirror.Upstream, "poll", cfg.Mirror.Poll,
			"unsync_after", cfg.Mirror.UnsyncAfter)
	case cfg.Server.LocalStratum > 0:
		d.log.Info("serving the local clock", "stratum", cfg.Server.LocalStratum, "precision", precision)
	default:
		d.log.Warn("no time source configured: answering as unsynchronized (leap 3); set server.local-stratum or mirror.upstream")
	}
	d.wg.Add(1)
	// The provider exits when ctx is done.
	go func() {
		defer d.wg.Done()
		if client != nil {
			client.Served = &d.served
			if n := cfg.Server.LocalStratum; n > 0 {
				client.Fallback = func() *server.State { return server.Local(uint8(n), precision, ntp.TimeFrom(time.Now())) }
			}
			if err := runClient(ctx, *client); err != nil {
				d.log.Error("client stopped", "err", err)
			}
			return
		}
		if cfg.Mirror.Enabled() {
			runMirror(ctx, &d.served, mirrorConfig{Upstream: cfg.Mirror.Upstream, Poll: cfg.Mirror.Poll,
				UnsyncAfter: cfg.Mirror.UnsyncAfter, Precision: precision, Origin: origin, Log: d.log})
			return
		}
		runLocal(ctx, &d.served, cfg.Server.LocalStratum, precision)
	}()
}

func (d *Daemon) startWorkers(cfg *config.Config, acl *server.ACL, origin time.Time) error {
	rl := cfg.Server.RateLimit
	seed := maphash.MakeSeed()
	perWorker := max(rl.TableSize/max(len(d.conns), 1), 64)
	for _, c := range d.conns {
		sc := server.Config{ACL: acl, DenyKoD: cfg.Server.Access.DenyAction == config.KoD}
		if rl.Enabled {
			var s [16]byte
			if _, err := rand.Read(s[:]); err != nil {
				return fmt.Errorf("seed the rate limiter: %w", err)
			}
			rng := mrand.New(mrand.NewPCG(binary.LittleEndian.Uint64(s[:8]), binary.LittleEndian.Uint64(s[8:])))
			sc.Limiter = server.NewLimiter(server.LimitConfig{Interval: rl.Interval, Burst: rl.Burst, Leak: limiterLeak(rl.Leak),
				KoD: rl.Action == config.KoD, TableSize: perWorker, IPv4Prefix: rl.IPv4Prefix, IPv6Prefix: rl.IPv6Prefix},
				seed, rng)
		}
		w := newWorker(c, server.NewResponder(sc), &d.served, origin)
		d.workers = append(d.workers, w)
		d.wg.Add(1)
		// The worker exits when its socket is closed.
		go func() {
			defer d.wg.Done()
			if err := w.run(); err != nil {
				d.log.Error("worker stopped", "address", c.LocalAddr(), "err", err)
			}
		}()
	}
	return nil
}

// close detaches the fast path (or lets go of its maps, if another
// process loaded it) and closes the sockets.
func (d *Daemon) close() {
	if d.xdpMaps != nil {
		d.xdpMu.Lock()
		if d.xdpFinal == nil {
			d.xdpFinal = d.xdpCounters()
			var err error
			if d.xdp != nil {
				err = d.xdp.Close()
			} else {
				err = d.xdpMaps.Close()
			}
			if err != nil {
				d.log.Warn("XDP fast path: close", "err", err)
			}
		}
		d.xdpMu.Unlock()
	}
	d.closeConns()
}

func (d *Daemon) closeConns() {
	for _, c := range d.conns {
		// Close errors are ignored: the socket is gone either way.
		_ = c.Close()
	}
}

// Addrs returns the bound address of every socket.
func (d *Daemon) Addrs() []netip.AddrPort {
	var as []netip.AddrPort
	for _, c := range d.conns {
		as = append(as, c.LocalAddr())
	}
	return as
}

// Stop stops the daemon and waits until it has stopped.
func (d *Daemon) Stop() {
	d.cancel()
	d.wg.Wait()
}

// Wait blocks until the daemon has stopped (its context is done).
func (d *Daemon) Wait() { d.wg.Wait() }

// Stats sums the counters of all workers.
type Stats struct {
	Verdicts   map[string]uint64
	Modes      [8]uint64
	SendErrors uint64
	Truncated  uint64 // requests larger than the receive buffer, dropped
	XDP        uint64 // requests decided on by the XDP fast path (in the counts above too)
}

// Stats returns the counters summed over all workers.
func (d *Daemon) Stats() Stats {
	s := Stats{Verdicts: map[string]uint64{}}
	for _, w := range d.workers {
		v, m := w.resp.Counters.Snapshot()
		for i, n := range v {
			s.Verdicts[server.Verdict(i).String()] += n
		}
		for i, n := range m {
			s.Modes[i] += n
		}
		s.SendErrors += w.sendErrors.Load()
		s.Truncated += w.truncated.Load()
	}
	if d.xdpMaps != nil {
		d.xdpMu.Lock()
		c := d.xdpFinal
		if c == nil {
			c = d.xdpCounters()
		}
		d.xdpMu.Unlock()
		// The program decides only on mode 3 requests.
		for v, n := range c {
			s.Verdicts[v.String()] += n
			s.Modes[3] += n
			s.XDP += n
		}
	}
	return s
}

// xdpCounters reads the fast path's counts; it never returns nil.
func (d *Daemon) xdpCounters() map[server.Verdict]uint64 {
	c, err := d.xdpMaps.Counters()
	if err != nil {
		d.log.Warn("XDP fast path: counters", "err", err)
		return map[server.Verdict]uint64{}
	}
	return c
}

// handleControl answers the control socket's commands.
func (d *Daemon) handleControl(cmd string) (any, error) {
	cs := d.status.Load()
	switch cmd {
	case "status":
		if cs != nil {
			return cs.Status, nil
		}
		// No client: what the server hands out.
		st := d.served.Load()
		return control.Status{Synchronized: st.Leap != ntp.LeapUnsync, Alarm: "no client configured", Clock: "none",
			Stratum: int(st.Stratum), RefID: netip.AddrFrom4(st.RefID).String(), Leap: st.Leap.String(),
			RootDelay: st.RootDelay.Duration().Seconds(), RootDisp: st.RootDisp.Duration().Seconds()}, nil
	case "sources":
		if cs != nil {
			return cs.Sources, nil
		}
		return []control.Source{}, nil
	}
	return nil, fmt.Errorf("unknown command %q (status, sources)", cmd)
}
