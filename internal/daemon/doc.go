// Package daemon runs Meridian's event loops: the server workers that
// answer NTP requests on batched sockets, and the providers that publish
// the served time state (the local clock, mirror mode). It feeds the pure
// core packages with time and bytes and carries out what they decide.
package daemon
