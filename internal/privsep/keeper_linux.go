package privsep

import (
	"fmt"
	"os"
	"slices"

	"kernel.org/pub/linux/libs/security/libcap/cap"
)

// keeperCaps are the capabilities the keeper keeps, each for a reason:
// the clock (SYS_TIME); starting its children as their user (SETUID,
// SETGID); binding the server's port again when a server is restarted
// (NET_BIND_SERVICE); stopping its children, which run as another user
// (KILL).
var keeperCaps = []cap.Value{cap.SYS_TIME, cap.SETUID, cap.SETGID, cap.NET_BIND_SERVICE, cap.KILL}

// Privileged reports whether this process has privileges worth
// separating: it runs as root, or holds a capability (as a service of
// another user does that systemd gives AmbientCapabilities=).
func Privileged() bool {
	if os.Geteuid() == 0 {
		return true
	}
	have := cap.GetProc()
	for v := cap.Value(0); v < cap.MaxBits(); v++ {
		if on, err := have.GetFlag(cap.Permitted, v); err == nil && on {
			return true
		}
	}
	return false
}

// DropKeeperCaps shrinks the process's bounding set to keeperCaps (which
// its children inherit), if it may (CAP_SETPCAP: as root), and its
// permitted and effective sets to those of keeperCaps it has; the
// inheritable and ambient sets are emptied. It works on every thread
// (libcap's cap package keeps them in step). It returns the capabilities
// kept, and whether the bounding set was shrunk.
func DropKeeperCaps() (kept []cap.Value, bounded bool, err error) {
	have := cap.GetProc()
	var keep []cap.Value
	for _, v := range keeperCaps {
		if ok, err := have.GetFlag(cap.Permitted, v); err == nil && ok {
			keep = append(keep, v)
		}
	}
	var drop []cap.Value
	for v := cap.Value(0); v < cap.MaxBits(); v++ {
		if !slices.Contains(keeperCaps, v) {
			if on, err := cap.GetBound(v); err == nil && on {
				drop = append(drop, v)
			}
		}
	}
	// Dropping from the bounding set needs SETPCAP, which the second step
	// gives up. A service started with capabilities of its own lacks it:
	// its bounding set is what it was given (systemd's
	// CapabilityBoundingSet=), and its children, with no capability and no
	// new privileges, cannot use it.
	if ok, _ := have.GetFlag(cap.Effective, cap.SETPCAP); ok {
		if err := cap.DropBound(drop...); err != nil {
			return nil, false, fmt.Errorf("privsep: shrink the bounding set: %w", err)
		}
		bounded = true
	}
	if err := cap.ResetAmbient(); err != nil {
		return nil, false, fmt.Errorf("privsep: clear the ambient set: %w", err)
	}
	c := cap.NewSet()
	if err := c.SetFlag(cap.Permitted, true, keep...); err != nil {
		return nil, false, err
	}
	if err := c.SetFlag(cap.Effective, true, keep...); err != nil {
		return nil, false, err
	}
	if err := c.SetProc(); err != nil {
		return nil, false, fmt.Errorf("privsep: drop capabilities: %w", err)
	}
	return keep, bounded, nil
}
