// Package bench is a load generator for NTP servers: it sends NTPv4 client
// requests (RFC 5905 §8) from many connected UDP sockets, either on a fixed
// schedule (open loop, a given rate) or keeping a given number of requests
// outstanding (closed loop, a given concurrency), and measures how many are
// answered, how many are lost or rejected, and how long the answers take.
//
// Replies are matched to requests through their origin timestamp: the
// transmit timestamp of each request encodes its socket and sequence number,
// XORed with a random key drawn once per run, and each socket keeps the send
// times of its outstanding requests in a ring indexed by sequence number.
// A matched reply is then validated with [source.CheckReply].
//
// This is an adapter: it opens sockets, reads clocks and spawns goroutines.
// In the steady state it allocates nothing per request: every buffer is
// owned by a worker and reused, and send and receive go through batched
// system calls (sendmmsg, recvmmsg) on Linux, with kernel receive timestamps
// (SO_TIMESTAMPNS).
package bench
