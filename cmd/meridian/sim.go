package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/meridian-ntp/meridian/internal/sim"
)

const simUsage = `Usage: meridian sim [flags] [SCENARIO...]

Run the clock discipline in the simulator, in virtual time, and print for
each scenario the RMS and largest offset of the clock from true time, the
RMS of its frequency error and the time it took to converge: the mean and
standard deviation over --seeds runs, seeds 1 to N, each repeatable.
Where chrony's published comparison has a figure for the scenario, chrony
4.3's RMS offset is printed beside it. SCENARIO is a name, or a prefix of
names ("chrony-test1"); without one, every scenario runs. --list prints
the names. The simulator never touches the system clock.

Flags:
`

// maxSeeds bounds --seeds.
const maxSeeds = 10000

func runSim(ctx context.Context, args []string, e env) int {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), simUsage)
		fs.PrintDefaults()
	}
	seeds := fs.Int("seeds", 100, fmt.Sprintf("runs per scenario, seeds 1 to `N` (1 to %d)", maxSeeds))
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "run `N` simulations at once")
	asJSON := fs.Bool("json", false, "print one JSON object per scenario, one per line")
	list := fs.Bool("list", false, "list the scenarios and exit")
	names, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err == nil && (*seeds < 1 || *seeds > maxSeeds) {
		err = fmt.Errorf("--seeds must be between 1 and %d, not %d", maxSeeds, *seeds)
	}
	if err == nil && (*workers < 1 || *workers > 1024) {
		err = fmt.Errorf("--workers must be between 1 and 1024, not %d", *workers)
	}
	var chosen []sim.Named
	if err == nil {
		chosen, err = pickScenarios(names)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "meridian sim: %v\n\n", err)
		fs.Usage()
		return exitUsage
	}
	if *list {
		for _, n := range chosen {
			fmt.Fprintf(e.stdout, "%-26s %s\n", n.Name, n.Description)
		}
		return exitOK
	}
	if !*asJSON {
		fmt.Fprintf(e.stdout, "%-26s %-22s %-22s %-18s %-18s %s\n", "scenario", "RMS offset µs", "max offset µs", "freq error ppb", "converged s", "chrony 4.3 RMS µs")
	}
	for i, n := range chosen {
		if ctx.Err() != nil {
			return exitFailure
		}
		start := time.Now()
		s := sim.Study(n, *seeds, *workers)
		fmt.Fprintf(e.stderr, "[%d/%d] %s: %d runs in %.1f s\n", i+1, len(chosen), n.Name, *seeds, time.Since(start).Seconds())
		if *asJSON {
			writeSimJSON(e, n, s)
			continue
		}
		chrony := "–"
		if n.Chrony > 0 {
			chrony = fmt.Sprintf("%.0f", n.Chrony.Seconds()*1e6)
		}
		conv := pm(s.Converged, 1, 0)
		if s.NotConverged > 0 {
			conv += fmt.Sprintf(" (%d never)", s.NotConverged)
		}
		fmt.Fprintf(e.stdout, "%-26s %-22s %-22s %-18s %-18s %s\n", n.Name, pm(s.RMSOffset, 1e6, 1), pm(s.MaxOffset, 1e6, 1),
			pm(s.FreqRMS, 1e9, 2), conv, chrony)
	}
	return exitOK
}

// pm formats a Stat scaled by scale as "mean ± sd" with prec decimals.
func pm(s sim.Stat, scale float64, prec int) string {
	return fmt.Sprintf("%.*f ± %.*f", prec, s.Mean*scale, prec, s.SD*scale)
}

// simJSON is one scenario's line of --json output; times in seconds.
type simJSON struct {
	Scenario     string   `json:"scenario"`
	Seeds        int      `json:"seeds"`
	RMSOffset    sim.Stat `json:"rms_offset_s"`
	MaxOffset    sim.Stat `json:"max_offset_s"`
	FreqRMS      sim.Stat `json:"freq_error_rms"`
	Converged    sim.Stat `json:"converged_s"`
	NotConverged int      `json:"not_converged"`
	ChronyRMS    *float64 `json:"chrony_rms_offset_s,omitempty"`
}

func writeSimJSON(e env, n sim.Named, s sim.Summary) {
	j := simJSON{Scenario: n.Name, Seeds: s.Seeds, RMSOffset: s.RMSOffset, MaxOffset: s.MaxOffset, FreqRMS: s.FreqRMS,
		Converged: s.Converged, NotConverged: s.NotConverged}
	if n.Chrony > 0 {
		c := n.Chrony.Seconds()
		j.ChronyRMS = &c
	}
	b, _ := json.Marshal(j) // cannot fail: plain numbers and strings
	fmt.Fprintf(e.stdout, "%s\n", b)
}

// pickScenarios returns the scenarios named, or whose names start with
// one of names; all of them without names.
func pickScenarios(names []string) ([]sim.Named, error) {
	all := sim.Scenarios()
	if len(names) == 0 {
		return all, nil
	}
	var out []sim.Named
	taken := map[string]bool{}
	for _, want := range names {
		found := false
		for _, n := range all {
			if n.Name == want || strings.HasPrefix(n.Name, want) {
				found = true
				if !taken[n.Name] {
					taken[n.Name] = true
					out = append(out, n)
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("no scenario is called %q or starts with it (see --list)", want)
		}
	}
	return out, nil
}
