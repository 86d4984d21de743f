// Package query performs one-shot NTP queries, like sntp or ntpdig: resolve
// a server name with the pure-Go resolver, send each request from a fresh
// socket (so a new random source port) with a random transmit timestamp,
// take the kernel receive timestamp of the reply, and validate the reply
// with package source. It also renders results as text or JSON.
//
// This is an adapter: it does the I/O that package source leaves out.
package query
