package daemon

import (
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/meridian-ntp/meridian/internal/clock"
	"github.com/meridian-ntp/meridian/internal/config"
	"github.com/meridian-ntp/meridian/internal/discipline"
	"github.com/meridian-ntp/meridian/internal/drift"
	"github.com/meridian-ntp/meridian/internal/engine"
	"github.com/meridian-ntp/meridian/internal/leapfile"
	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/steplog"
)

// resolveWait bounds the resolution of one name.
const resolveWait = 10 * time.Second

// newClientConfig builds the client's configuration from cfg: its
// servers and pools (resolved as the client runs), the drift file and
// the leap-seconds.list, and the clock.
func newClientConfig(cfg *config.Config, precision int8, log *slog.Logger) clientConfig {
	c := cfg.Client
	cc := clientConfig{Log: log, DriftFile: c.DriftFile}
	var names []engine.NameConfig
	for _, s := range c.Servers {
		names = append(names, nameConfig(s, false))
	}
	for _, s := range c.Pools {
		names = append(names, nameConfig(s, true))
	}
	dc := discipline.Config{MinSources: c.MinSources, MakeStep: c.MakeStep, MakeStepLimit: c.MakeStepLimit, Panic: c.Panic}
	if c.MakeStepLimit == 0 {
		dc.MakeStepLimit = -1 // never
	}
	if c.Panic == 0 {
		dc.Panic = -1 // no limit
	}
	dc.StepBudget = c.StepBudget
	if c.StepBudget == 0 {
		dc.StepBudget = -1 // no limit
	}
	if c.StepFile != "" {
		cc.StepFile = c.StepFile
		switch steps, err := steplog.Read(c.StepFile); {
		case err == nil:
			dc.Steps = steps
			log.Info("step file read", "file", c.StepFile, "steps", len(steps))
		case errors.Is(err, os.ErrNotExist):
			log.Info("no step file yet", "file", c.StepFile)
		default:
			log.Warn("step file ignored", "err", err)
		}
	}
	switch c.Clock {
	case config.ClockNone:
		cc.Clock = clock.None{}
		dc.Observe = true
	default:
		cc.Clock = clock.Kernel{}
	}
	if c.DriftFile != "" {
		switch d, err := drift.Read(c.DriftFile); {
		case err == nil:
			dc.SetDrift(d.FreqPPM, d.SDPPM)
			log.Info("drift file read", "file", c.DriftFile, "ppm", d.FreqPPM)
		case errors.Is(err, os.ErrNotExist):
			log.Info("no drift file yet", "file", c.DriftFile)
		default:
			log.Warn("drift file ignored", "err", err)
		}
	}
	if c.LeapFile != "" {
		if b, err := os.ReadFile(c.LeapFile); err != nil {
			log.Warn("leap-seconds.list ignored", "file", c.LeapFile, "err", err)
		} else if lf, err := leapfile.Parse(b); err != nil {
			log.Warn("leap-seconds.list ignored", "file", c.LeapFile, "err", err)
		} else {
			if lf.Expired(time.Now()) {
				log.Warn("leap-seconds.list has expired: the sources decide leap seconds", "file", c.LeapFile, "expired", lf.Expires)
			}
			dc.Leaps = lf
		}
	}
	cc.Engine = engine.Config{Names: names, Discipline: dc, Precision: precision}
	for _, ap := range cfg.Server.Listen {
		if !ap.Addr().IsUnspecified() {
			cc.Engine.OwnRefIDs = append(cc.Engine.OwnRefIDs, ntp.RefIDFromAddr(ap.Addr()))
		}
	}
	return cc
}

// nameConfig returns the engine's configuration of a server or pool.
func nameConfig(s config.ServerSpec, pool bool) engine.NameConfig {
	return engine.NameConfig{Name: s.HostPort(), Host: s.Host, Port: s.Port, Pool: pool, MaxSources: s.MaxSources,
		Options: engine.SourceOptions{IBurst: s.IBurst,
			Options: discipline.Options{MinPoll: s.MinPoll, MaxPoll: s.MaxPoll, Prefer: s.Prefer, NoSelect: s.NoSelect}}}
}
