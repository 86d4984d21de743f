// Package privsep splits the daemon into processes so that the only one
// able to change the clock never touches the network: the parent, the
// clock keeper, keeps CAP_SYS_TIME and takes fixed-size binary requests
// from the engine over a socketpair; it checks each against its own
// policy (largest step, a step budget kept across restarts, the largest
// frequency correction, a leap second only on a month's last day) before
// it carries it out, so that a compromised engine cannot move the clock
// as it likes.
//
// This file set holds the keeper's protocol (Request, Response: fixed
// size, big-endian, versioned), its policy (Policy: pure, given the time)
// and the two ends of the socketpair: Keeper, which serves requests on a
// clock backend, and KeeperClock, the clock.Clock the engine steers
// through it.
package privsep
