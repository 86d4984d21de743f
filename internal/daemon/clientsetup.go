package daemon

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/meridian-ntp/meridian/internal/clock"
	"github.com/meridian-ntp/meridian/internal/config"
	"github.com/meridian-ntp/meridian/internal/discipline"
	"github.com/meridian-ntp/meridian/internal/drift"
	"github.com/meridian-ntp/meridian/internal/engine"
	"github.com/meridian-ntp/meridian/internal/leapfile"
	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/query"
)

// resolveWait bounds the resolution of one server's name at start.
const resolveWait = 5 * time.Second

// newClientConfig builds the client's configuration from cfg: it
// resolves the servers, reads the drift file and the leap-seconds.list,
// and picks the clock.
func newClientConfig(ctx context.Context, cfg *config.Config, precision int8, log *slog.Logger) (clientConfig, error) {
	c := cfg.Client
	cc := clientConfig{Log: log, DriftFile: c.DriftFile}
	for _, s := range c.Servers {
		rctx, cancel := context.WithTimeout(ctx, resolveWait)
		addr, err := query.Resolve(rctx, net.DefaultResolver, "ip", net.JoinHostPort(s.Host, fmt.Sprint(s.Port)))
		cancel()
		if err != nil {
			return cc, fmt.Errorf("client server %s: %w", s, err)
		}
		cc.Sources = append(cc.Sources, clientSource{Name: s.String(), Addr: addr,
			Engine: engine.SourceConfig{RefID: refID(addr.Addr()), IBurst: s.IBurst, Group: group(addr.Addr())}})
	}
	dc := discipline.Config{MinSources: c.MinSources, MakeStep: c.MakeStep, MakeStepLimit: c.MakeStepLimit, Panic: c.Panic}
	if c.MakeStepLimit == 0 {
		dc.MakeStepLimit = -1 // never
	}
	if c.Panic == 0 {
		dc.Panic = -1 // no limit
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
			dc.DriftPPM, dc.DriftSDPPM = d.FreqPPM, max(d.SDPPM, 0.01)
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
	cc.Engine = engine.Config{Discipline: dc, Precision: precision}
	for _, ap := range cfg.Server.Listen {
		if !ap.Addr().IsUnspecified() {
			cc.Engine.OwnRefIDs = append(cc.Engine.OwnRefIDs, refID(ap.Addr()))
		}
	}
	return cc, nil
}

// refID returns the reference ID a server synchronized to addr sends:
// the IPv4 address, or the first four bytes of the MD5 digest of the IPv6
// address (RFC 5905 §7.3).
func refID(addr netip.Addr) ntp.RefID {
	addr = addr.Unmap()
	if addr.Is4() {
		return ntp.RefID(addr.As4())
	}
	b := addr.As16()
	sum := md5.Sum(b[:])
	return ntp.RefID(sum[:4])
}

// group names the network of addr for the selection's diversity rule:
// its IPv4 /24 or IPv6 /48 for a public address; none (a group of its
// own) for loopback, private and link-local ones, which an operator
// configures one by one, often several on one host.
func group(addr netip.Addr) string {
	addr = addr.Unmap()
	if !addr.IsGlobalUnicast() || addr.IsPrivate() {
		return ""
	}
	bits := 48
	if addr.Is4() {
		bits = 24
	}
	p, _ := addr.WithZone("").Prefix(bits) // cannot fail: bits fit both families
	return p.String()
}
