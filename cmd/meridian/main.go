// Command meridian is the Meridian NTP daemon and its tools.
//
// Usage:
//
//	meridian daemon --config FILE
//	meridian check-config FILE...
//	meridian query [flags] HOST[:PORT]...
//	meridian bench [flags] SERVER
//	meridian sim [flags] [SCENARIO...]
//	meridian status --socket PATH [--json]
//	meridian sources --socket PATH [--json]
//	meridian version
//	meridian help [COMMAND]
//
// Run "meridian help COMMAND" for the flags of a command.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "devel"

const usage = `meridian: an NTP client and server

Usage:
  meridian COMMAND [flags] [arguments]

Commands:
  daemon        run the NTP server (--config FILE)
  check-config  check configuration files
  query         query NTP servers once and print their time and offset
  bench         load an NTP server with requests and report its throughput
  sim           run the clock discipline in the simulator and report its accuracy
  status        show a running daemon's client state (--socket PATH)
  sources       show a running daemon's sources (--socket PATH)
  version       print the version
  help          show help for a command

Run "meridian help COMMAND" or "meridian COMMAND -h" for a command's flags.
`

// env is what a command needs from the process, so tests can run commands
// in-process.
type env struct {
	stdout, stderr io.Writer
	rand           io.Reader
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{stdout: os.Stdout, stderr: os.Stderr, rand: rand.Reader})
	stop()
	os.Exit(code)
}

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran but did not fully succeed
	exitUsage   = 2 // bad command line
)

func run(ctx context.Context, args []string, e env) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return exitUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "query":
		return runQuery(ctx, rest, e)
	case "bench":
		return runBench(ctx, rest, e)
	case "daemon":
		return runDaemon(ctx, rest, e)
	case "sim":
		return runSim(ctx, rest, e)
	case "status", "sources":
		return runStatusCommand(cmd, rest, e)
	case "check-config":
		return runCheckConfig(rest, e)
	case "version", "--version", "-version":
		fmt.Fprintf(e.stdout, "meridian %s\n", version)
		return exitOK
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && rest[0] != "help" {
			// Help that was asked for goes to standard output.
			return run(ctx, []string{rest[0], "-h"}, env{stdout: e.stdout, stderr: e.stdout, rand: e.rand})
		}
		fmt.Fprint(e.stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(e.stderr, "meridian: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}

// parseInterleaved parses flags that may appear before, between or after
// positional arguments, and returns the positional ones. Everything after
// "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var tail []string
	for i, a := range args {
		if a == "--" {
			args, tail = args[:i], args[i+1:]
			break
		}
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return append(pos, tail...), nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
