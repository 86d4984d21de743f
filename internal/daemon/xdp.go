package daemon

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/meridian-ntp/meridian/internal/config"
	"github.com/meridian-ntp/meridian/internal/server"
	"github.com/meridian-ntp/meridian/internal/xdp"
)

// loadXDP loads the XDP fast path for cfg. It is attached by attachXDP.
func loadXDP(cfg *config.Config, acl *server.ACL) (*xdp.Program, error) {
	dests, err := xdpDests(cfg.Server.Listen, cfg.Server.XDP.Interfaces)
	if err != nil {
		return nil, err
	}
	return xdp.Load(xdpConfig(cfg, acl, dests))
}

// xdpConfig returns the fast path's configuration, answering on dests.
func xdpConfig(cfg *config.Config, acl *server.ACL, dests []netip.AddrPort) xdp.Config {
	xc := xdp.Config{Dests: dests, ACL: acl, DenyKoD: cfg.Server.Access.DenyAction == config.KoD}
	if rl := cfg.Server.RateLimit; rl.Enabled {
		xc.Limit = &server.LimitConfig{Interval: rl.Interval, Burst: rl.Burst, Leak: limiterLeak(rl.Leak),
			KoD: rl.Action == config.KoD, TableSize: rl.TableSize, IPv4Prefix: rl.IPv4Prefix, IPv6Prefix: rl.IPv6Prefix}
	}
	return xc
}

// startXDP loads the fast path and attaches it, for a parent of
// privilege separation: it passes every request on until a state is
// published through its maps.
func startXDP(cfg *config.Config, log *slog.Logger) (*xdp.Program, error) {
	p, err := loadXDP(cfg, server.NewACL(cfg.Server.Access.Allow, cfg.Server.Access.Deny))
	if err != nil {
		return nil, err
	}
	if err := attachXDP(p, cfg, log); err != nil {
		_ = p.Close() // the error at hand is what matters
		return nil, err
	}
	return p, nil
}

// useXDP makes every stored state reach the fast path through m, and the
// fast path's counts the daemon's.
func (d *Daemon) useXDP(m *xdp.Maps) {
	d.xdpMaps = m
	var failing atomic.Bool
	d.served.publish = func(st *server.State) {
		err := m.Publish(st)
		if err == nil {
			if failing.Swap(false) {
				d.log.Info("XDP fast path: serving again")
			}
			return
		}
		// The program must not serve the state before this one: it
		// passes requests on to the sockets, which have this one, until
		// an update succeeds. A run of failures is logged once.
		offErr := m.Off()
		if !failing.Swap(true) {
			d.log.Error("XDP fast path: cannot update the served state; the sockets answer meanwhile", "err", err, "off_err", offErr)
		}
	}
}

// attachXDP attaches p to the configured interfaces.
func attachXDP(p *xdp.Program, cfg *config.Config, log *slog.Logger) error {
	mode := map[config.XDPMode]xdp.Mode{config.XDPAuto: xdp.Auto, config.XDPNative: xdp.Native,
		config.XDPGeneric: xdp.Generic}[cfg.Server.XDP.Mode]
	for _, name := range cfg.Server.XDP.Interfaces {
		if err := p.Attach(name, mode); err != nil {
			return err
		}
		log.Info("XDP fast path attached", "interface", name, "mode", cfg.Server.XDP.Mode)
	}
	return nil
}

// xdpDests returns the addresses the program answers on: the specific
// listen addresses, and for a wildcard one the addresses of its family that
// the interfaces have now.
func xdpDests(listen []netip.AddrPort, interfaces []string) ([]netip.AddrPort, error) {
	var local []netip.Addr
	for _, name := range interfaces {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return nil, fmt.Errorf("XDP on %s: %w", name, err)
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil, fmt.Errorf("XDP on %s: %w", name, err)
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					local = append(local, ip.Unmap())
				}
			}
		}
	}
	var dests []netip.AddrPort
	for _, ap := range listen {
		if !ap.Addr().IsUnspecified() {
			dests = append(dests, ap)
			continue
		}
		for _, a := range local {
			if a.Is4() == ap.Addr().Is4() {
				dests = append(dests, netip.AddrPortFrom(a, ap.Port()))
			}
		}
	}
	return dests, nil
}

// limiterLeak converts the configured leak (0: never) to the limiter's
// (negative: never).
func limiterLeak(leak int) int {
	if leak == 0 {
		return -1
	}
	return leak
}
