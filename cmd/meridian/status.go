package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/meridian-ntp/meridian/internal/control"
)

const statusUsage = `Usage: meridian status --socket PATH [--json]
       meridian sources --socket PATH [--json]

Ask a running daemon, over its control socket (control.socket in its
configuration), for the client's state. status shows what chronyc
tracking shows: whether the clock is synchronized (and if not, why), the
stratum, reference ID and leap indicator served, the offset of the
sources' time from the clock's, the oscillator's frequency error and the
root delay and dispersion. sources shows what chronyc sources shows: each
source's state (selected; unpreferred, a truechimer left out for a
prefer source; falseticker; noselect; smearing, suspected of smearing
a leap second; or none yet), name as configured (a pool's name for each
of its members), address, stratum, poll interval (log2 s), reach
register (octal) and offset with its standard deviation. Nothing is
changed.

Flags:
`

func runStatusCommand(cmd string, args []string, e env) int {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), statusUsage)
		fs.PrintDefaults()
	}
	socket := fs.String("socket", "", "the daemon's control socket `PATH` (control.socket)")
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	rest, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	switch {
	case err != nil:
	case len(rest) > 0:
		err = fmt.Errorf("unexpected arguments %q", rest)
	case *socket == "":
		err = errors.New("--socket is required: the daemon's control.socket")
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "meridian %s: %v\n\n", cmd, err)
		fs.Usage()
		return exitUsage
	}
	var out any
	if cmd == "status" {
		out = &control.Status{}
	} else {
		out = &[]control.Source{}
	}
	if err := control.Query(*socket, cmd, out); err != nil {
		fmt.Fprintf(e.stderr, "meridian %s: %v\n", cmd, err)
		return exitFailure
	}
	if *asJSON {
		b, _ := json.MarshalIndent(out, "", "  ") // plain values: cannot fail
		fmt.Fprintf(e.stdout, "%s\n", b)
		return exitOK
	}
	if st, ok := out.(*control.Status); ok {
		writeStatus(e, st)
	} else {
		writeSources(e, *out.(*[]control.Source))
	}
	return exitOK
}

func writeStatus(e env, s *control.Status) {
	yes := map[bool]string{true: "yes", false: "no"}[s.Synchronized]
	if s.Alarm != "" {
		yes += " (" + s.Alarm + ")"
	}
	ref := s.RefID
	if s.Reference != "" {
		ref += " (" + s.Reference + ")"
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "synchronized\t%s\n", yes)
	fmt.Fprintf(tw, "clock\t%s\n", s.Clock)
	fmt.Fprintf(tw, "stratum\t%d\n", s.Stratum)
	fmt.Fprintf(tw, "reference ID\t%s\n", ref)
	fmt.Fprintf(tw, "leap\t%s\n", s.Leap)
	fmt.Fprintf(tw, "offset\t%+.9f s\n", s.Offset)
	fmt.Fprintf(tw, "frequency\t%+.3f ppm ± %.3f\n", s.Frequency, s.FrequencySD)
	fmt.Fprintf(tw, "root delay\t%.6f s\n", s.RootDelay)
	fmt.Fprintf(tw, "root dispersion\t%.6f s\n", s.RootDisp)
	tw.Flush()
}

func writeSources(e env, ss []control.Source) {
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tNAME\tADDRESS\tSTRATUM\tPOLL\tREACH\tOFFSET\tSD")
	for _, s := range ss {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%03o\t%+.9f s\t%.9f s\n", s.State, s.Name, s.Address, s.Stratum, s.Poll, s.Reach, s.Offset, s.OffsetSD)
	}
	tw.Flush()
}
