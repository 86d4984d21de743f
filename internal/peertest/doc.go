// Package peertest starts real NTP daemons on this machine for interop tests:
// Debian's chronyd and NTPsec's ntpd (unpacked by .ci/install-peers into
// .peers/ntpsec at the repository root, or MERIDIAN_NTPSEC_ROOT) as servers,
// chronyd as a client ([StartChronyClient]), and the server under test itself
// ([StartServer]). It also finds client programs ([Tool]) and a BusyBox with
// its ntpd applet ([Busybox], built by .ci/install-peers into .peers/busybox).
//
// Each peer serves time on loopback from a local reference clock and has no
// upstream sources. chronyd listens on a free UDP port of 127.0.0.1 in the
// test's own network namespace. ntpd cannot listen on any port but 123, so it
// runs in a network namespace of its own, created for it, and is reached with
// [Peer.Command]; a server under test can run in one too, for clients that
// know no other port.
//
// A peer can never change the system clock: chronyd runs with -x, and when
// the test runs as root both daemons are started under setpriv with
// CAP_SYS_TIME removed from the bounding and inheritable sets (ntpd calls
// ntp_adjtime at start whatever its configuration says). So are the server
// under test and, by way of [Peer.ClientCommand], client programs.
//
// A peer is stopped, and its files removed, when the test that started it
// ends. If the test binary dies without running its cleanups, the kernel kills
// the peer (parent-death signal).
//
// A missing daemon or tool skips the test with a hint to run
// `sudo .ci/install-peers`, except in CI (CI=true), where it fails the test.
//
// The package is meant for _test.go files only, and holds no NTP codec.
package peertest
