package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"slices"

	"github.com/meridian-ntp/meridian/internal/config"
	"github.com/meridian-ntp/meridian/internal/daemon"
	"github.com/meridian-ntp/meridian/internal/privsep"
)

const daemonUsage = `Usage: meridian daemon --config FILE

Run the NTP daemon with the configuration in FILE (TOML; see
docs/config.md): the server, and with [client] servers or pools the
client that takes time from them and steers the clock. The file must be
named explicitly: nothing is read from the current directory or a
default location. Logs go to standard error. SIGINT or SIGTERM stops the
daemon.

Flags:
`

func runDaemon(ctx context.Context, args []string, e env) int {
	fs := flag.NewFlagSet("daemon", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), daemonUsage)
		fs.PrintDefaults()
	}
	path := fs.String("config", "", "configuration file (required)")
	noPrivsep := fs.Bool("no-privsep", false, "run as one process even when started as root or with capabilities (see privsep in docs/config.md)")
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *path == "" || len(rest) > 0 {
		fmt.Fprintln(e.stderr, "meridian daemon: --config FILE is required and no arguments are taken")
		fs.Usage()
		return exitUsage
	}
	var cfg *config.Config
	var data []byte
	if daemon.ChildRole() != privsep.RoleAll {
		// A child of privilege separation: the configuration its parent
		// read, not the file as it may be now.
		if cfg, err = daemon.ChildConfig(*path); err != nil {
			fmt.Fprintf(e.stderr, "meridian: %v\n", err)
			return exitFailure
		}
	} else {
		var ok bool
		if cfg, data, ok = loadConfig(*path, e); !ok {
			return exitFailure
		}
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: cfg.Log.Level}))
	var d *daemon.Daemon
	switch role := daemon.ChildRole(); {
	case role != privsep.RoleAll:
		log = log.With("process", role.String())
		d, err = daemon.StartChild(ctx, cfg, log)
	case privsepWanted(cfg, *noPrivsep):
		if err := daemon.RunPrivsep(ctx, cfg, *path, data, log.With("process", "keeper")); err != nil {
			log.Error("stopped", "err", err)
			return exitFailure
		}
		return exitOK
	default:
		d, err = daemon.Start(ctx, cfg, log)
	}
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitFailure
	}
	d.Wait()
	if daemon.ChildRole() != privsep.RoleEngine {
		logStats(log, d.Stats())
	}
	return exitOK
}

// privsepWanted reports whether the daemon splits itself: when started
// as root or with capabilities, unless the configuration or the command
// line says not to.
func privsepWanted(cfg *config.Config, off bool) bool {
	return !off && cfg.Privsep.Enabled && privsep.Privileged()
}

// logStats logs what the server did, once it has stopped: every verdict
// with a nonzero count, the send errors and the truncated requests, and
// how many requests the XDP fast path decided on.
func logStats(log *slog.Logger, s daemon.Stats) {
	args := []any{"send_errors", s.SendErrors, "truncated", s.Truncated}
	if s.XDP > 0 {
		args = append(args, "xdp", s.XDP)
	}
	names := make([]string, 0, len(s.Verdicts))
	for name := range s.Verdicts {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if n := s.Verdicts[name]; n > 0 {
			args = append(args, name, n)
		}
	}
	log.Info("stopped", args...)
}

// loadConfig loads and checks a configuration file, printing warnings and
// errors.
func loadConfig(path string, e env) (*config.Config, []byte, bool) {
	cfg, data, warnings, err := config.LoadData(path)
	for _, w := range warnings {
		fmt.Fprintf(e.stderr, "meridian: warning: %s\n", w)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "meridian: %v\n", err)
		return nil, nil, false
	}
	return cfg, data, true
}

const checkConfigUsage = `Usage: meridian check-config FILE...

Check configuration files without starting anything: each error is
printed as FILE:LINE: KEY: REASON. The exit status is 0 when every file
is valid, 1 otherwise.
`

func runCheckConfig(args []string, e env) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), checkConfigUsage) }
	files, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if len(files) == 0 {
		fmt.Fprintln(e.stderr, "meridian check-config: no file given")
		fs.Usage()
		return exitUsage
	}
	code := exitOK
	for _, f := range files {
		if _, _, ok := loadConfig(f, e); !ok {
			code = exitFailure
			continue
		}
		fmt.Fprintf(e.stdout, "%s: OK\n", f)
	}
	return code
}
