package privsep

import (
	"fmt"

	"kernel.org/pub/linux/libs/security/libcap/cap"
)

// keeperCaps are the capabilities the keeper keeps, each for a reason:
// the clock (SYS_TIME); starting its children as their user (SETUID,
// SETGID); binding the server's port again when a server is restarted
// (NET_BIND_SERVICE); stopping its children, which run as another user
// (KILL).
var keeperCaps = []cap.Value{cap.SYS_TIME, cap.SETUID, cap.SETGID, cap.NET_BIND_SERVICE, cap.KILL}

// DropKeeperCaps shrinks the process's bounding set to keeperCaps (which
// its children inherit) and its permitted and effective sets to those of
// keeperCaps it has; the inheritable and ambient sets are emptied. It
// works on every thread (libcap's cap package keeps them in step). It
// returns the capabilities kept.
func DropKeeperCaps() ([]cap.Value, error) {
	have := cap.GetProc()
	var keep []cap.Value
	for _, v := range keeperCaps {
		if ok, err := have.GetFlag(cap.Permitted, v); err == nil && ok {
			keep = append(keep, v)
		}
	}
	var drop []cap.Value
	for v := cap.Value(0); v < cap.MaxBits(); v++ {
		if !isKeeperCap(v) {
			if on, err := cap.GetBound(v); err == nil && on {
				drop = append(drop, v)
			}
		}
	}
	// Dropping from the bounding set needs SETPCAP, which the second step
	// gives up.
	if err := cap.DropBound(drop...); err != nil {
		return nil, fmt.Errorf("privsep: shrink the bounding set: %w", err)
	}
	if err := cap.ResetAmbient(); err != nil {
		return nil, fmt.Errorf("privsep: clear the ambient set: %w", err)
	}
	c := cap.NewSet()
	if err := c.SetFlag(cap.Permitted, true, keep...); err != nil {
		return nil, err
	}
	if err := c.SetFlag(cap.Effective, true, keep...); err != nil {
		return nil, err
	}
	if err := c.SetProc(); err != nil {
		return nil, fmt.Errorf("privsep: drop capabilities: %w", err)
	}
	return keep, nil
}

func isKeeperCap(v cap.Value) bool {
	for _, k := range keeperCaps {
		if k == v {
			return true
		}
	}
	return false
}
