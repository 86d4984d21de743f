package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"runtime"
	"sync"
	"time"
)

// Limits of a Config.
const (
	MaxRate        = 10_000_000
	MaxConcurrency = 1 << 16
	MaxSockets     = maxSockets
	// MaxSourceAddrs is the most source addresses a run sends from:
	// 127.0.0.1 to 127.0.0.254.
	MaxSourceAddrs = 254
	MaxWorkers     = 64
	// MaxServerCPUs bounds the CPU numbers of ServerCPUs (0 to 1023) and
	// their count.
	MaxServerCPUs = 1024
	MaxDuration   = 10 * time.Minute
	MaxWarmup     = time.Minute
	MaxTimeout    = 10 * time.Second
	MinTick       = 10 * time.Microsecond
	MaxTick       = time.Millisecond
	// MaxInFlight bounds Rate × Timeout, the open-loop requests that may
	// be in flight at once, and with it the memory of the rings (16 bytes
	// a request, with a quarter to spare).
	MaxInFlight = 10_000_000
)

// Config describes a run. Exactly one of Rate and Concurrency may be set;
// if neither is, the run is a closed loop with DefaultConcurrency.
type Config struct {
	// Server is the address to load.
	Server netip.AddrPort
	// Rate, if not 0, makes the run an open loop: Rate requests per
	// second, sent on a fixed schedule whatever the replies.
	Rate int
	// Concurrency, if not 0, makes the run a closed loop: Concurrency
	// requests are kept outstanding, each answered or timed-out request
	// replaced at once.
	Concurrency int
	// Duration is the length of the measured window (default 10 s).
	Duration time.Duration
	// Warmup precedes the measured window; its requests and replies are
	// not counted. The zero value means none.
	Warmup time.Duration
	// Sockets is the number of client sockets (default 64), each
	// connected to Server from its own ephemeral port. A closed loop
	// uses at most Concurrency of them.
	Sockets int
	// SourceAddrs, if above 1, binds the sockets round-robin to the
	// source addresses 127.0.0.1 to 127.0.0.SourceAddrs, so that the
	// server sees that many client addresses; Server must then be an
	// IPv4 loopback address, and there must be at least as many sockets
	// as addresses. 0 or 1 leaves the choice of the source address to
	// the kernel.
	SourceAddrs int
	// Workers is the number of goroutines that drive the sockets, each
	// with its own share of them (default: see DefaultWorkers).
	Workers int
	// Timeout is how long a request waits for its reply before it counts
	// as lost (default 1 s).
	Timeout time.Duration
	// Tick is how often an open loop wakes to send the requests due and
	// read the replies that came meanwhile (default 100 µs): requests
	// leave in bursts of up to a tick's worth. A shorter tick spreads
	// them more evenly, at the cost of more CPU time for the generator,
	// and usually for the server too. A closed loop wakes at each reply.
	Tick time.Duration
	// ServerPID, if not 0, is the server's process, whose CPU time over
	// the measured window is reported.
	ServerPID int
	// ServerCPUs, if not empty, are CPUs whose busy time over the
	// measured window is reported: the window less their idle, iowait
	// and steal time, so everything that ran on them, the kernel's
	// interrupt and softirq work and its entries to and exits from idle
	// included. With the server
	// confined to them, and the kernel's receive processing steered to
	// them (receive packet steering), it is the server's whole cost,
	// whether it answers in a process or in the kernel.
	ServerCPUs []int
	// Rand supplies the per-run key mixed into transmit timestamps; nil
	// means crypto/rand.Reader.
	Rand io.Reader
	// Progress, if not nil, receives a line per second while the run
	// goes on.
	Progress io.Writer
}

// Defaults of a Config.
const (
	DefaultConcurrency = 64
	DefaultDuration    = 10 * time.Second
	DefaultSockets     = 64
	DefaultTimeout     = time.Second
	DefaultTick        = 100 * time.Microsecond
)

// DefaultWorkers returns the default number of workers: one per two CPUs
// (GOMAXPROCS), at least one, so that a server on the same machine keeps
// CPUs of its own. A worker handles a few hundred thousand requests a
// second.
func DefaultWorkers() int { return max(1, runtime.GOMAXPROCS(0)/2) }

func (c *Config) check() error {
	switch {
	case !c.Server.IsValid() || c.Server.Port() == 0:
		return fmt.Errorf("bench: invalid server address %v", c.Server)
	case c.Rate != 0 && c.Concurrency != 0:
		return errors.New("bench: rate and concurrency exclude each other")
	case c.Rate < 0 || c.Rate > MaxRate:
		return fmt.Errorf("bench: rate %d out of range 1..%d", c.Rate, MaxRate)
	case c.Concurrency < 0 || c.Concurrency > MaxConcurrency:
		return fmt.Errorf("bench: concurrency %d out of range 1..%d", c.Concurrency, MaxConcurrency)
	case c.Duration < 0 || c.Duration > MaxDuration:
		return fmt.Errorf("bench: duration %v out of range (0, %v]", c.Duration, MaxDuration)
	case c.Warmup < 0 || c.Warmup > MaxWarmup:
		return fmt.Errorf("bench: warmup %v out of range [0, %v]", c.Warmup, MaxWarmup)
	case c.Sockets < 0 || c.Sockets > MaxSockets:
		return fmt.Errorf("bench: sockets %d out of range 1..%d", c.Sockets, MaxSockets)
	case c.Workers < 0 || c.Workers > MaxWorkers:
		return fmt.Errorf("bench: workers %d out of range 1..%d", c.Workers, MaxWorkers)
	case c.SourceAddrs < 0 || c.SourceAddrs > MaxSourceAddrs:
		return fmt.Errorf("bench: source addresses %d out of range 1..%d", c.SourceAddrs, MaxSourceAddrs)
	case c.SourceAddrs > 1 && !(c.Server.Addr().Is4() && c.Server.Addr().IsLoopback()):
		return fmt.Errorf("bench: several source addresses need an IPv4 loopback server, not %v", c.Server.Addr())
	case c.Timeout < 0 || c.Timeout > MaxTimeout:
		return fmt.Errorf("bench: timeout %v out of range (0, %v]", c.Timeout, MaxTimeout)
	case c.Tick != 0 && (c.Tick < MinTick || c.Tick > MaxTick):
		return fmt.Errorf("bench: tick %v out of range [%v, %v]", c.Tick, MinTick, MaxTick)
	case c.ServerPID < 0:
		return fmt.Errorf("bench: invalid server PID %d", c.ServerPID)
	case len(c.ServerCPUs) > MaxServerCPUs:
		return fmt.Errorf("bench: at most %d server CPUs, not %d", MaxServerCPUs, len(c.ServerCPUs))
	}
	seen := map[int]bool{}
	for _, cpu := range c.ServerCPUs {
		if cpu < 0 || cpu >= MaxServerCPUs || seen[cpu] {
			return fmt.Errorf("bench: server CPUs %v: each must be a distinct number in 0..%d", c.ServerCPUs, MaxServerCPUs-1)
		}
		seen[cpu] = true
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	if float64(c.Rate)*timeout.Seconds() > MaxInFlight {
		return fmt.Errorf("bench: rate × timeout is above %d requests in flight", MaxInFlight)
	}
	if n := c.sockets(); c.SourceAddrs > n {
		return fmt.Errorf("bench: %d source addresses need at least as many sockets, not %d", c.SourceAddrs, n)
	}
	return nil
}

// sockets returns the number of sockets the run opens.
func (c *Config) sockets() int {
	n := c.Sockets
	if n == 0 {
		n = DefaultSockets
	}
	if c.Concurrency > 0 {
		n = min(n, c.Concurrency)
	} else if c.Rate == 0 {
		n = min(n, DefaultConcurrency)
	}
	return n
}

func (c *Config) defaults() {
	if c.Rate == 0 && c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	c.Sockets = c.sockets()
	if c.SourceAddrs == 0 {
		c.SourceAddrs = 1
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers()
	}
	c.Workers = min(c.Workers, c.Sockets)
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Tick == 0 {
		c.Tick = DefaultTick
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
}

// Run loads cfg.Server and reports what it measured. It returns when the
// warmup, the measured window and the wait for the last replies (at most
// the timeout) are over, or soon after ctx is cancelled: sending then
// stops at once, and requests still unanswered after min(timeout, 250 ms)
// are reported as unfinished. A cancelled run still returns its report.
// The error is about setting up the run (a socket, the random key, the
// server's process), or about waiting for replies failing, in which case
// the report is partial. When Run returns, the goroutines it started
// have done their work and are exiting.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg.defaults()
	var kb [8]byte
	if _, err := io.ReadFull(cfg.Rand, kb[:]); err != nil {
		return nil, fmt.Errorf("bench: random key: %w", err)
	}
	if cfg.ServerPID != 0 {
		if _, err := procCPU(cfg.ServerPID); err != nil {
			return nil, fmt.Errorf("bench: server process: %w", err)
		}
	}
	if len(cfg.ServerCPUs) > 0 {
		if _, err := cpusIdle(cfg.ServerCPUs); err != nil {
			return nil, fmt.Errorf("bench: server CPUs: %w", err)
		}
	}
	p := newPlan(&cfg)
	workers, err := newWorkers(p, &cfg, binary.BigEndian.Uint64(kb[:])|keyTopBit)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, w := range workers {
			w.c.close()
		}
	}()
	o := &orchestra{p: p, cfg: &cfg, workers: workers, measuring: cfg.Warmup == 0}
	if o.measuring {
		o.before = takeSnapshot(&cfg)
	}
	o.run(ctx, start(p, workers))
	return o.report()
}

// start starts the run's clock and its workers, and returns a channel
// closed once every worker has finished.
func start(p *plan, workers []*worker) <-chan struct{} {
	p.base = time.Now()
	p.baseWall = p.base.UnixNano()
	var wg sync.WaitGroup
	for _, w := range workers {
		w.t.baseWall = p.baseWall
		wg.Add(1)
		// The goroutine exits when its worker's run is over, which the
		// plan bounds in time.
		go func() {
			defer wg.Done()
			w.run()
		}()
	}
	done := make(chan struct{})
	// The goroutine exits once every worker has.
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}

func newPlan(cfg *Config) *plan {
	p := &plan{
		start:   int64(cfg.Warmup),
		end:     int64(cfg.Warmup + cfg.Duration),
		timeout: int64(cfg.Timeout),
		tick:    int64(cfg.Tick),
		sockets: uint64(cfg.Sockets),
		rate:    uint64(cfg.Rate),
	}
	if p.rate > 0 {
		p.kStart, p.kEnd = p.kAt(p.start), p.kAt(p.end)
	}
	return p
}

// newWorkers opens the sockets and shares them out among the workers.
func newWorkers(p *plan, cfg *Config, key uint64) ([]*worker, error) {
	var workers []*worker
	perSocket := float64(cfg.Rate) / float64(cfg.Sockets) * (cfg.Timeout + lateLimit).Seconds()
	ringSize := int(math.Ceil(perSocket*1.25)) + 2*batchSize
	g := 0
	for i := range cfg.Workers {
		n := cfg.Sockets / cfg.Workers
		if i < cfg.Sockets%cfg.Workers {
			n++
		}
		c, err := dial(cfg.Server, n, func(j int) netip.Addr { return sourceAddr(cfg.SourceAddrs, g+j) })
		if err != nil {
			for _, w := range workers {
				w.c.close()
			}
			return nil, fmt.Errorf("bench: %w", err)
		}
		socks := make([]sock, n)
		for j := range socks {
			s := &socks[j]
			s.idx = g
			if cfg.Rate > 0 {
				s.ring = newRing(ringSize)
				s.measuredLo, s.measuredHi = p.jAt(p.kStart, g), p.jAt(p.kEnd, g)
			} else {
				s.conc = cfg.Concurrency / cfg.Sockets
				if g < cfg.Concurrency%cfg.Sockets {
					s.conc++
				}
				s.ring = newRing(4*s.conc + 2*batchSize)
			}
			g++
		}
		workers = append(workers, newWorker(p, c, socks, key))
	}
	return workers, nil
}

// snapshot is the CPU time used up to one edge of the measured window.
type snapshot struct {
	ok      bool
	self    time.Duration // this process's CPU time
	server  time.Duration // the server's CPU time
	cpuIdle time.Duration // the server CPUs' idle time
	at      time.Time     // when the snapshot was taken
}

func takeSnapshot(cfg *Config) snapshot {
	s := snapshot{ok: true, self: selfCPU(), at: time.Now()}
	if cfg.ServerPID != 0 {
		var err error
		if s.server, err = procCPU(cfg.ServerPID); err != nil {
			s.ok = false // the server has exited
		}
	}
	if len(cfg.ServerCPUs) > 0 {
		var err error
		if s.cpuIdle, err = cpusIdle(cfg.ServerCPUs); err != nil {
			s.ok = false // checked at start: cannot happen
		}
	}
	return s
}

func (t *totals) add(o totals) {
	t.sent += o.sent
	t.answered += o.answered
	t.rejected += o.rejected
	t.lost += o.lost
	t.replies += o.replies
	t.skipped += o.skipped
}

// orchestra runs beside the workers: it prints the progress lines, takes
// the CPU snapshots at the edges of the measured window, passes a
// cancellation on to the workers, and assembles the report.
type orchestra struct {
	p         *plan
	cfg       *Config
	workers   []*worker
	before    snapshot
	after     snapshot
	measuring bool // the measured window has begun
	ended     bool // the measured window is over
	last      totals
	lastAt    time.Time
}

// run returns when done is closed, once every worker has finished.
func (o *orchestra) run(ctx context.Context, done <-chan struct{}) {
	p := o.p
	startTimer := time.NewTimer(time.Until(p.base.Add(time.Duration(p.start))))
	defer startTimer.Stop()
	endTimer := time.NewTimer(time.Until(p.base.Add(time.Duration(p.end))))
	defer endTimer.Stop()
	var tick <-chan time.Time
	if o.cfg.Progress != nil {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		tick = t.C
	}
	o.lastAt = p.base
	ctxDone := ctx.Done()
	for {
		select {
		case <-done:
			o.closeWindow()
			return
		case <-ctxDone:
			p.stop.Store(max(p.now(), 0) + 1)
			o.closeWindow()
			ctxDone = nil
		case <-startTimer.C:
			if !o.ended && !o.measuring {
				o.before = takeSnapshot(o.cfg)
				o.measuring = true
			}
		case <-endTimer.C:
			o.closeWindow()
		case now := <-tick:
			o.progress(now)
		}
	}
}

func (o *orchestra) closeWindow() {
	if o.measuring && !o.ended {
		o.after = takeSnapshot(o.cfg)
	}
	o.ended = true
}

// progress writes the progress line for the interval since the last one.
func (o *orchestra) progress(now time.Time) {
	var cur totals
	for _, w := range o.workers {
		cur.add(w.pub.load())
	}
	// The interval is labelled by its middle, so that a tick that comes
	// a little after the end of the warmup or of the measured window
	// still labels the second before it right.
	mid := int64(o.lastAt.Sub(o.p.base)+now.Sub(o.p.base)) / 2
	phase := ""
	switch _, cancelled := o.p.stopped(); {
	case cancelled || mid >= o.p.end:
		phase = "  (waiting for the last replies)"
	case mid < o.p.start:
		phase = "  (warmup)"
	}
	writeProgress(o.cfg.Progress, now.Sub(o.p.base), now.Sub(o.lastAt), cur, o.last, phase)
	o.last, o.lastAt = cur, now
}

// report assembles the report once every worker has finished.
func (o *orchestra) report() (*Report, error) {
	r := &Report{Config: *o.cfg}
	var err error
	var win window
	for _, w := range o.workers {
		if w.err != nil && err == nil {
			err = fmt.Errorf("bench: wait for replies: %w", w.err)
		}
		r.Counts.add(&w.t.c)
		r.RTT.Merge(&w.t.rtt)
		win.sent += w.t.win.sent
		win.replies += w.t.win.replies
	}
	end := o.p.end
	if stop, ok := o.p.stopped(); ok {
		r.Cancelled = true
		end = min(end, stop)
	}
	r.Duration = time.Duration(max(end-o.p.start, 0))
	if o.before.ok && o.after.ok {
		r.CPU = &CPU{
			Generator: o.after.self - o.before.self,
			Server:    o.after.server - o.before.server,
			CPUs: max(0, time.Duration(len(o.cfg.ServerCPUs))*o.after.at.Sub(o.before.at)-
				(o.after.cpuIdle-o.before.cpuIdle)),
			Requests: win.sent,
			Replies:  win.replies,
		}
	}
	return r, err
}

// writeProgress writes one progress line: the rates over the last
// interval, and the share of requests lost among those whose fate was
// decided in it.
func writeProgress(w io.Writer, elapsed, interval time.Duration, cur, last totals, phase string) {
	secs := interval.Seconds()
	if secs <= 0 {
		return
	}
	rate := func(now, then uint64) float64 { return float64(now-then) / secs }
	lost := cur.lost - last.lost
	decided := lost + cur.answered - last.answered + cur.rejected - last.rejected
	loss := 0.0
	if decided > 0 {
		loss = 100 * float64(lost) / float64(decided)
	}
	line := fmt.Sprintf("%5.0fs  sent %9.0f/s  answered %9.0f/s  rejected %7.0f/s  loss %6.2f%%",
		elapsed.Seconds(), rate(cur.sent, last.sent), rate(cur.answered, last.answered),
		rate(cur.rejected, last.rejected), loss)
	if n := cur.skipped - last.skipped; n > 0 {
		line += fmt.Sprintf("  skipped %d", n)
	}
	// Progress is best effort: a failed write must not stop the run.
	_, _ = io.WriteString(w, line+phase+"\n")
}

// sourceAddr returns the source address of socket i among n source
// addresses: the zero Addr (the kernel's choice) if n is at most 1, else
// 127.0.0.(1 + i mod n).
func sourceAddr(n, i int) netip.Addr {
	if n <= 1 {
		return netip.Addr{}
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + i%n)})
}
