package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-ntp/meridian/internal/bench"
	"github.com/meridian-ntp/meridian/internal/query"
)

const benchUsage = `Usage: meridian bench [flags] SERVER

Load an NTP server with client requests and report how many it answered,
how fast, and how much CPU it used. SERVER is a host name, an IPv4 or
IPv6 address, HOST:PORT or [IPv6]:PORT; the port defaults to 123.

Two ways to load:
  --rate N         open loop: N requests per second on a fixed schedule,
                   sent whether or not replies come back. Shows what the
                   server does when offered more than it can take; to
                   find its peak, raise N until the loss passes a limit.
  --concurrency N  closed loop: N requests outstanding at all times; each
                   answered or timed-out request is replaced at once.
                   Finds the most the server can answer. The default,
                   with N = 64.
Give at most one of them.

Requests come from --sockets connected UDP sockets, each with its own
random source port, so the server sees that many clients, all on one IP
address (a closed loop uses at most N sockets). A server that limits the
rate per client address (chronyd's ratelimit, ntpd's limited, Meridian's
rate limiter) therefore limits the whole run: benchmarking a rate-limited
server measures its limiter, and the kiss-o'-death replies show up as
rejected requests. A server that shares its work out by client address,
as Meridian steers each address to one worker, also uses only one of its
workers. --source-addrs N (N above 1, an IPv4 loopback SERVER only)
binds the sockets round-robin to 127.0.0.1 to 127.0.0.N instead, so that
the server sees N client addresses; there must be at least N sockets.

The run warms up for --warmup, then measures for --duration, then waits
at most --timeout for the last replies: it always ends by itself. Only
requests due (open loop) or sent (closed loop) in the measured window
are counted, however late their replies come. Ctrl-C stops sending at
once and still prints the report; requests that are then still
unanswered are reported as unfinished, not lost.

Each request carries only version 4, mode 3 and a transmit timestamp
that encodes its socket and sequence number under a random per-run key;
a reply is matched to its request by its origin timestamp and then
validated as "meridian query" does. A request is lost if no reply
reaches the kernel within --timeout of its sending; a reply that comes
later is invalid (late), not an answer. Replies that match a request but
refuse it (kiss-o'-death, by code), report an unsynchronized server, or
have a bad version or inconsistent timestamps are rejected. Replies that
match no request are invalid: malformed, wrong mode, wrong origin, late
or duplicate. The loss is the share of lost requests among those sent,
unfinished ones aside. Round-trip times run from just before the send
call to the kernel's receive timestamp (SO_TIMESTAMPNS) of the reply,
and are reported as percentiles in microseconds, to about 0.4%.

An open loop wakes every --tick to send what is due, so its requests
leave in bursts of up to a tick's worth; replies do not wake it, since
their kernel timestamps make the time they are read irrelevant. A longer
tick costs the generator, and usually the server, less CPU time per
request, but makes the load burstier. If the loop falls behind its
schedule by more than 10 ms, it skips the requests it missed and reports
them as skipped: then the generator, not the server, was the bottleneck,
and the run measures nothing about the server. Use more --workers, or a
longer --tick. A closed loop wakes at each reply.

While running, a progress line per second goes to standard error: rates
over the last second, and loss among the requests decided in it. --quiet
turns it off. The report goes to standard output, as text or, with
--json, as one JSON object; progress never mixes with it. With
--server-pid, the server's CPU time (user plus system, all threads, from
/proc/PID/stat, 10 ms resolution) over the measured window is reported,
in total, as a share of one CPU, and per reply received in the window.
With --server-cpus, the busy time of those CPUs (the window less their
idle, iowait and steal time from /proc/stat) is reported the same way: with the server confined to them and the kernel's
receive processing steered there too, it is the server's whole cost,
including the work the kernel does for it, or instead of it (an XDP
program). Anything else that runs on those CPUs counts too.
The generator's own CPU time is always reported the same way, per
request sent in the window: if it nears the number of workers times
100%, the generator is the bottleneck.

Exit status: 0 if any valid reply was measured and the run did not fail;
1 if none was, or the run could not start or failed; 2 for a bad command
line.

Flags:
`

// benchFlags are the command line of "meridian bench".
type benchFlags struct {
	rate, concurrency, sockets, sourceAddrs, workers, serverPID int
	duration, warmup, timeout, tick                             time.Duration
	json, quiet, only4, only6                                   bool
	serverCPUs                                                  cpuList
	set                                                         map[string]bool // flags given
}

func newBenchFlags(e env) (*flag.FlagSet, *benchFlags) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	f := &benchFlags{}
	fs.IntVar(&f.rate, "rate", 0, fmt.Sprintf("open loop: send `N` requests per second (1 to %d)", bench.MaxRate))
	fs.IntVar(&f.concurrency, "concurrency", bench.DefaultConcurrency,
		fmt.Sprintf("closed loop: keep `N` requests outstanding (1 to %d)", bench.MaxConcurrency))
	fs.DurationVar(&f.duration, "duration", bench.DefaultDuration,
		fmt.Sprintf("length of the measured window (at most %v)", bench.MaxDuration))
	fs.DurationVar(&f.warmup, "warmup", time.Second,
		fmt.Sprintf("load before the measured window, not counted (0 to %v)", bench.MaxWarmup))
	fs.IntVar(&f.sockets, "sockets", bench.DefaultSockets,
		fmt.Sprintf("send from `N` client UDP sockets, each its own source port (1 to %d)", bench.MaxSockets))
	fs.IntVar(&f.sourceAddrs, "source-addrs", 1,
		fmt.Sprintf("bind the sockets round-robin to `N` source addresses, 127.0.0.1 to 127.0.0.N (1 to %d; "+
			"above 1, SERVER must be an IPv4 loopback address)", bench.MaxSourceAddrs))
	fs.IntVar(&f.workers, "workers", bench.DefaultWorkers(),
		fmt.Sprintf("drive the sockets from `N` goroutines, each with a share (1 to %d; by default half the CPUs)",
			bench.MaxWorkers))
	fs.DurationVar(&f.timeout, "timeout", bench.DefaultTimeout,
		fmt.Sprintf("wait for a reply before the request counts as lost (at most %v)", bench.MaxTimeout))
	fs.DurationVar(&f.tick, "tick", bench.DefaultTick,
		fmt.Sprintf("open loop: send what is due every `D`, in bursts (%v to %v)", bench.MinTick, bench.MaxTick))
	fs.IntVar(&f.serverPID, "server-pid", 0, "report the CPU time of the server's process `PID` over the measured window")
	fs.Var(&f.serverCPUs, "server-cpus", "report the busy time of the CPUs in `LIST` (like 0 or 0,2-3) over the measured window")
	fs.BoolVar(&f.json, "json", false, "print the report as one JSON object on standard output")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress lines on standard error")
	fs.BoolVar(&f.only4, "4", false, "resolve SERVER to IPv4 only")
	fs.BoolVar(&f.only6, "6", false, "resolve SERVER to IPv6 only")
	return fs, f
}

// check returns what is wrong with the command line, or nil.
func (f *benchFlags) check(servers []string) error {
	switch {
	case len(servers) == 0:
		return errors.New("no server given")
	case len(servers) > 1:
		return fmt.Errorf("one server only, not %d", len(servers))
	case f.set["rate"] && f.set["concurrency"]:
		return errors.New("--rate and --concurrency exclude each other")
	case f.only4 && f.only6:
		return errors.New("-4 and -6 exclude each other")
	case f.set["rate"] && (f.rate < 1 || f.rate > bench.MaxRate):
		return fmt.Errorf("--rate must be between 1 and %d, not %d", bench.MaxRate, f.rate)
	case f.concurrency < 1 || f.concurrency > bench.MaxConcurrency:
		return fmt.Errorf("--concurrency must be between 1 and %d, not %d", bench.MaxConcurrency, f.concurrency)
	case f.duration <= 0 || f.duration > bench.MaxDuration:
		return fmt.Errorf("--duration must be above 0 and at most %v, not %v", bench.MaxDuration, f.duration)
	case f.warmup < 0 || f.warmup > bench.MaxWarmup:
		return fmt.Errorf("--warmup must be between 0 and %v, not %v", bench.MaxWarmup, f.warmup)
	case f.sockets < 1 || f.sockets > bench.MaxSockets:
		return fmt.Errorf("--sockets must be between 1 and %d, not %d", bench.MaxSockets, f.sockets)
	case f.sourceAddrs < 1 || f.sourceAddrs > bench.MaxSourceAddrs:
		return fmt.Errorf("--source-addrs must be between 1 and %d, not %d", bench.MaxSourceAddrs, f.sourceAddrs)
	case f.sourceAddrs > f.sockets:
		return fmt.Errorf("--source-addrs (%d) may not exceed --sockets (%d)", f.sourceAddrs, f.sockets)
	case !f.set["rate"] && f.sourceAddrs > f.concurrency:
		return fmt.Errorf("--source-addrs (%d) may not exceed --concurrency (%d), the sockets a closed loop uses",
			f.sourceAddrs, f.concurrency)
	case f.sourceAddrs > 1 && f.only6:
		return errors.New("--source-addrs above 1 needs an IPv4 loopback server, not -6")
	case f.workers < 1 || f.workers > bench.MaxWorkers:
		return fmt.Errorf("--workers must be between 1 and %d, not %d", bench.MaxWorkers, f.workers)
	case f.timeout <= 0 || f.timeout > bench.MaxTimeout:
		return fmt.Errorf("--timeout must be above 0 and at most %v, not %v", bench.MaxTimeout, f.timeout)
	case f.tick < bench.MinTick || f.tick > bench.MaxTick:
		return fmt.Errorf("--tick must be between %v and %v, not %v", bench.MinTick, bench.MaxTick, f.tick)
	case f.set["tick"] && !f.set["rate"]:
		return errors.New("--tick applies to an open loop only: give --rate")
	case f.serverPID < 0:
		return fmt.Errorf("--server-pid must be a process ID, not %d", f.serverPID)
	case f.set["rate"] && float64(f.rate)*f.timeout.Seconds() > bench.MaxInFlight:
		return fmt.Errorf("--rate times --timeout must be at most %d requests in flight", bench.MaxInFlight)
	}
	return nil
}

// config returns the run's configuration, all but the server.
func (f *benchFlags) config(e env) bench.Config {
	cfg := bench.Config{Duration: f.duration, Warmup: f.warmup, Sockets: f.sockets, SourceAddrs: f.sourceAddrs, Workers: f.workers,
		Timeout: f.timeout, Tick: f.tick, ServerPID: f.serverPID, ServerCPUs: f.serverCPUs, Rand: e.rand}
	if f.set["rate"] {
		cfg.Rate = f.rate
	} else {
		cfg.Concurrency = f.concurrency
	}
	if !f.quiet {
		cfg.Progress = e.stderr
	}
	return cfg
}

func (f *benchFlags) network() string {
	switch {
	case f.only4:
		return "ip4"
	case f.only6:
		return "ip6"
	}
	return "ip"
}

func runBench(ctx context.Context, args []string, e env) int {
	fs, f := newBenchFlags(e)
	servers, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	if err := f.check(servers); err != nil {
		fmt.Fprintf(e.stderr, "meridian bench: %v\n", err)
		fs.Usage()
		return exitUsage
	}
	cfg := f.config(e)
	cfg.Server, err = query.Resolve(ctx, &net.Resolver{PreferGo: true}, f.network(), servers[0])
	if err != nil {
		fmt.Fprintf(e.stderr, "meridian bench: %s: %v\n", servers[0], err)
		return exitFailure
	}
	if a := cfg.Server.Addr(); f.sourceAddrs > 1 && !(a.Is4() && a.IsLoopback()) {
		fmt.Fprintf(e.stderr, "meridian bench: --source-addrs above 1 needs an IPv4 loopback server, not %v\n", a)
		fs.Usage()
		return exitUsage
	}
	r, err := bench.Run(ctx, cfg)
	if r == nil {
		fmt.Fprintf(e.stderr, "meridian bench: %v\n", err)
		return exitFailure
	}
	return printBench(r, err, f.json, e)
}

// printBench prints the report of a run that ended with error runErr
// and returns the exit status.
func printBench(r *bench.Report, runErr error, asJSON bool, e env) int {
	code := exitOK
	if runErr != nil {
		fmt.Fprintf(e.stderr, "meridian bench: %v (the report is partial)\n", runErr)
		code = exitFailure
	}
	var err error
	if asJSON {
		err = r.WriteJSON(e.stdout)
	} else {
		err = r.WriteText(e.stdout)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "meridian bench: %v\n", err)
		return exitFailure
	}
	if r.Answered == 0 {
		fmt.Fprintf(e.stderr, "meridian bench: no valid reply from %s\n", r.Config.Server)
		return exitFailure
	}
	return code
}

// cpuList is the value of --server-cpus: CPU numbers and ranges, separated
// by commas, as taskset -c takes them.
type cpuList []int

func (l *cpuList) String() string {
	s := make([]string, len(*l))
	for i, c := range *l {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}

func (l *cpuList) Set(v string) error {
	var cpus []int
	seen := map[int]bool{}
	for _, part := range strings.Split(v, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, errA := strconv.Atoi(lo)
		b, errB := a, error(nil)
		if isRange {
			b, errB = strconv.Atoi(hi)
		}
		if errA != nil || errB != nil || a < 0 || b < a || b >= bench.MaxServerCPUs {
			return fmt.Errorf("%q is not a CPU number or range like 0 or 2-3 (CPUs 0 to %d)", part, bench.MaxServerCPUs-1)
		}
		for c := a; c <= b; c++ {
			if seen[c] {
				return fmt.Errorf("CPU %d is listed twice", c)
			}
			seen[c] = true
			cpus = append(cpus, c)
		}
	}
	*l = cpus
	return nil
}
