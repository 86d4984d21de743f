package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/meridian-ntp/meridian/internal/query"
)

const queryUsage = `Usage: meridian query [flags] SERVER...

Query each NTP server once (or --count times) and print its time, the
offset of the local clock from it and the round-trip delay. SERVER is a
host name, an IPv4 or IPv6 address, HOST:PORT or [IPv6]:PORT; the port
defaults to 123. Names are resolved with Meridian's own (pure Go) resolver
and the first address of the chosen family (-4, -6, or either) is queried.

Each request comes from a new socket (a fresh random source port) and
carries only a random transmit timestamp: nothing about the local clock is
revealed. Datagrams that cannot be the answer (malformed, not in server
mode, origin timestamp not matching the request: spoofed or stale) are
discarded and the wait goes on. The answer itself must come from a
synchronized server, with version 1-4 and consistent timestamps; a
kiss-o'-death (RATE, DENY, RSTR, NTSN) ends the queries to that server.
The local clock is never changed.

Exit status: 0 if every server gave a valid reply, 1 if any did not (the
reason is printed: timeout, kiss-o'-death code, unsynchronized server,
invalid reply, resolution failure), 2 for a bad command line.

Flags:
`

func runQuery(ctx context.Context, args []string, e env) int {
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), queryUsage)
		fs.PrintDefaults()
	}
	var (
		jsonOut  = fs.Bool("json", false, "print results as a JSON array (including failures) on standard output")
		count    = fs.Int("count", 1, "requests per server; the sample with the lowest delay is kept")
		interval = fs.Duration("interval", 2*time.Second, "time between requests to one server (minimum 100ms)")
		timeout  = fs.Duration("timeout", 5*time.Second, "how long to wait for each reply")
		only4    = fs.Bool("4", false, "use IPv4 only")
		only6    = fs.Bool("6", false, "use IPv6 only")
	)
	servers, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(e.stderr, "meridian query: "+format+"\n", a...)
		fs.Usage()
		return exitUsage
	}
	switch {
	case len(servers) == 0:
		return usageErr("no server given")
	case *only4 && *only6:
		return usageErr("-4 and -6 exclude each other")
	case *count < 1 || *count > 1000:
		return usageErr("--count must be between 1 and 1000, not %d", *count)
	case *interval < 100*time.Millisecond:
		return usageErr("--interval must be at least 100ms, not %v", *interval)
	case *timeout <= 0 || *timeout > time.Hour:
		return usageErr("--timeout must be above 0 and at most 1h, not %v", *timeout)
	}
	cfg := query.Config{Network: "ip", Count: *count, Interval: *interval, Timeout: *timeout, Rand: e.rand}
	if *only4 {
		cfg.Network = "ip4"
	} else if *only6 {
		cfg.Network = "ip6"
	}
	results := query.All(ctx, servers, cfg)
	now := time.Now()
	if *jsonOut {
		err = query.WriteJSON(e.stdout, results, now)
	} else {
		err = query.WriteText(e.stdout, e.stderr, results, now)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "meridian query: %v\n", err)
		return exitFailure
	}
	for _, r := range results {
		if r.Err != nil {
			return exitFailure
		}
	}
	return exitOK
}
