package config

import (
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Config is Meridian's whole configuration. The toml tags name the keys of
// the file; decoding goes through [Parse], never through a reflection codec,
// so that every problem can be reported with its line.
type Config struct {
	Server  Server  `toml:"server"`
	Client  Client  `toml:"client"`
	Mirror  Mirror  `toml:"mirror"`
	Control Control `toml:"control"`
	Privsep Privsep `toml:"privsep"`
	Log     Log     `toml:"log"`
}

// Privsep configures privilege separation: a daemon started as root
// runs its engine and its server as processes of an unprivileged user,
// confined, while the parent keeps only the power to steer the clock.
type Privsep struct {
	// Enabled splits the daemon when it is started as root; otherwise it
	// runs as one process either way.
	Enabled bool `toml:"enabled"`
	// User is the user the engine and the server run as.
	User string `toml:"user"`
	// Filter is what the seccomp filters do with a system call off their
	// lists: kill the process, or let it through and log it.
	Filter FilterMode `toml:"filter"`
	// Restart restarts a child process that died, after a growing wait;
	// false stops the daemon with an error instead.
	Restart bool `toml:"restart"`
	// KeeperStepFile is where the clock keeper keeps the steps it made,
	// for its own step budget, across restarts ("" for none). Its
	// directory must belong to root and be writable by nobody else.
	KeeperStepFile string `toml:"keeper-step-file"`
}

// FilterMode is what a seccomp filter does with a call off its list.
type FilterMode uint8

// Filter modes. The zero value is FilterKill.
const (
	FilterKill FilterMode = iota
	FilterLog
)

// String returns the mode as written in the file.
func (m FilterMode) String() string {
	switch m {
	case FilterKill:
		return "kill"
	case FilterLog:
		return "log"
	}
	return "invalid"
}

// Control configures the local control socket.
type Control struct {
	// Socket is the path of the unix socket that meridian status and
	// meridian sources read from; "" turns it off.
	Socket string `toml:"socket"`
}

// Client configures the client: the servers it takes time from and what
// it does with the clock. With no servers, there is no client.
type Client struct {
	// Servers are the sources, as written in the file: "HOST[:PORT]"
	// and options, parsed.
	Servers []ServerSpec `toml:"servers"`
	// Pools are names that stand for many servers each ("NAME[:PORT]"
	// and options, maxsources among them), parsed.
	Pools []ServerSpec `toml:"pools"`
	// Clock is the clock the client steers: the kernel's, or none
	// (measure and serve, never steer).
	Clock ClockKind `toml:"clock"`
	// MinSources is how many sources must agree before the clock is
	// steered.
	MinSources int `toml:"min-sources"`
	// MakeStep and MakeStepLimit: an offset above MakeStep is stepped
	// during the first MakeStepLimit updates (0: never); slewed otherwise.
	MakeStep      time.Duration `toml:"makestep"`
	MakeStepLimit int           `toml:"makestep-limit"`
	// Panic is the largest offset corrected; 0 means no limit.
	Panic time.Duration `toml:"panic"`
	// StepBudget bounds the steps of the last 24 hours added up; 0
	// means no bound. StepFile ("" for none) keeps the steps across
	// restarts.
	StepBudget time.Duration `toml:"step-budget"`
	StepFile   string        `toml:"step-file"`
	// DriftFile and LeapFile are paths ("" for none): the drift file the
	// client reads at start and writes, and a leap-seconds.list.
	DriftFile string `toml:"drift-file"`
	LeapFile  string `toml:"leap-file"`
}

// Enabled reports whether there is a client: servers or pools to take
// time from.
func (c Client) Enabled() bool { return len(c.Servers)+len(c.Pools) > 0 }

// ServerSpec is one entry of client.servers or client.pools.
type ServerSpec struct {
	Host string // a DNS name or an IP literal, without brackets
	Port uint16
	// The options: iburst, prefer, noselect; minpoll and maxpoll (log2
	// seconds, 0 if not given); maxsources (pools only, 0 if not given).
	IBurst, Prefer, NoSelect bool
	MinPoll, MaxPoll         int8
	MaxSources               int
}

// String returns the spec as the file would write it.
func (s ServerSpec) String() string {
	h := s.HostPort()
	for _, o := range []struct {
		on   bool
		text string
	}{{s.IBurst, " iburst"}, {s.Prefer, " prefer"}, {s.NoSelect, " noselect"},
		{s.MinPoll != 0, " minpoll " + strconv.Itoa(int(s.MinPoll))},
		{s.MaxPoll != 0, " maxpoll " + strconv.Itoa(int(s.MaxPoll))},
		{s.MaxSources != 0, " maxsources " + strconv.Itoa(s.MaxSources)}} {
		if o.on {
			h += o.text
		}
	}
	return h
}

// HostPort returns "HOST:PORT", brackets around an IPv6 host.
func (s ServerSpec) HostPort() string {
	return net.JoinHostPort(s.Host, strconv.Itoa(int(s.Port)))
}

// ClockKind is the clock backend.
type ClockKind uint8

// Clock backends. The zero value is ClockKernel.
const (
	ClockKernel ClockKind = iota
	ClockNone
)

// String returns the backend as written in the file.
func (k ClockKind) String() string {
	switch k {
	case ClockKernel:
		return "kernel"
	case ClockNone:
		return "none"
	}
	return "invalid"
}

// Server configures the NTP responder.
type Server struct {
	// Listen holds the UDP addresses to serve: IP literals with a port,
	// IPv4-mapped IPv6 addresses already converted to IPv4. At least one.
	Listen []netip.AddrPort `toml:"listen"`
	// Workers is the number of sockets, each with its worker thread, per
	// listen address; 0 means one per CPU.
	Workers int `toml:"workers"`
	// LocalStratum, when not 0, makes the server answer with the local clock
	// at this stratum while no synchronized source is available, instead of
	// answering as unsynchronized (leap 3, stratum 16).
	LocalStratum int `toml:"local-stratum"`

	RateLimit RateLimit `toml:"rate-limit"`
	Access    Access    `toml:"access"`
	XDP       XDP       `toml:"xdp"`
}

// RateLimit configures the per-client token bucket of the server.
type RateLimit struct {
	Enabled bool `toml:"enabled"`
	// Interval is the average interval at which a client may send requests:
	// one token is added to its bucket per Interval.
	Interval time.Duration `toml:"interval"`
	// Burst is the number of requests a client may send back to back: the
	// size of its bucket.
	Burst int `toml:"burst"`
	// Leak makes the server still answer, on average, one request in Leak
	// from a client over its limit, so that the victim of spoofed requests
	// keeps some service. 0 means never.
	Leak int `toml:"leak"`
	// Action is what an over-limit request gets (KoD: a RATE kiss-o'-death,
	// itself limited to one per client per Interval).
	Action Action `toml:"action"`
	// TableSize bounds the number of clients tracked at once.
	TableSize int `toml:"table-size"`
	// IPv4Prefix and IPv6Prefix are the prefix lengths by which client
	// addresses are grouped into one client.
	IPv4Prefix int `toml:"ipv4-prefix"`
	IPv6Prefix int `toml:"ipv6-prefix"`
}

// Access is the server's access control list. The most specific prefix of
// Allow and Deny that contains a client's address decides; when Allow is not
// empty, an address that no prefix contains is denied.
type Access struct {
	// Allow and Deny hold masked prefixes; IPv4-mapped IPv6 prefixes are
	// converted to IPv4.
	Allow []netip.Prefix `toml:"allow"`
	Deny  []netip.Prefix `toml:"deny"`
	// DenyAction is what a denied request gets (KoD: a DENY kiss-o'-death).
	DenyAction Action `toml:"deny-action"`
}

// XDP configures the server's fast path: an XDP program, attached to the
// named network interfaces, that answers plain requests in the kernel's
// receive hook, before the IP stack (Linux, root).
type XDP struct {
	// Interfaces are the interfaces to attach the program to; empty turns
	// the fast path off.
	Interfaces []string `toml:"interfaces"`
	// Mode is how the program is attached.
	Mode XDPMode `toml:"mode"`
}

// XDPMode is how the XDP program is attached to an interface.
type XDPMode uint8

// XDP modes. The zero value is XDPAuto.
const (
	// XDPAuto lets the kernel choose: in the driver if it supports XDP,
	// generic otherwise.
	XDPAuto XDPMode = iota
	// XDPNative runs the program in the driver.
	XDPNative
	// XDPGeneric runs it on socket buffers, with any driver.
	XDPGeneric
)

var xdpModes = [...]string{XDPAuto: "auto", XDPNative: "native", XDPGeneric: "generic"}

// String returns the mode as it is written in the file.
func (m XDPMode) String() string {
	if int(m) < len(xdpModes) {
		return xdpModes[m]
	}
	return "invalid"
}

// Mirror configures mirror mode, in which Meridian serves the time of one
// upstream server (typically chronyd or ntpd on the loopback interface).
type Mirror struct {
	// Upstream is the server to mirror, "host:port" as written in the file;
	// "" turns mirror mode off. Host and Port are its parts, filled in by
	// Parse: Host is a DNS name or an IP literal without brackets.
	Upstream string `toml:"upstream"`
	Host     string `toml:"-"`
	Port     uint16 `toml:"-"`
	// Poll is the interval between two queries to the upstream.
	Poll time.Duration `toml:"poll"`
	// UnsyncAfter is how long the server keeps serving after the last valid
	// sample before it answers as unsynchronized.
	UnsyncAfter time.Duration `toml:"unsync-after"`
}

// Enabled reports whether mirror mode is on.
func (m *Mirror) Enabled() bool { return m.Upstream != "" }

// Log configures logging.
type Log struct {
	// Level is the least severe level logged: debug, info, warn or error.
	Level slog.Level `toml:"level"`
}

// Action is what the server does with a request it will not answer
// normally.
type Action uint8

// Actions. The zero value is Drop.
const (
	// Drop sends nothing.
	Drop Action = iota
	// KoD sends a kiss-o'-death packet (RFC 5905 §7.4): RATE for the rate
	// limiter, DENY for the access list.
	KoD
)

// String returns the action as it is written in the file.
func (a Action) String() string {
	switch a {
	case Drop:
		return "drop"
	case KoD:
		return "kod"
	}
	return "invalid"
}

// Defaults of the keys whose default is not the zero value.
const (
	defaultInterval      = 2 * time.Second
	defaultBurst         = 16
	defaultLeak          = 4
	defaultTableSize     = 65536
	defaultIPv4Prefix    = 32
	defaultIPv6Prefix    = 64
	defaultPoll          = 2 * time.Second
	defaultMakeStep      = 100 * time.Millisecond
	defaultMakeStepLimit = 3
	defaultPanic         = 1000 * time.Second
	defaultStepBudget    = 1000 * time.Second
	defaultUnsyncAfter   = 60 * time.Second
)

// Default returns the configuration an empty file produces: serve on UDP
// port 123 of every address with one worker per CPU, rate limiting on, no
// access list, mirror mode off, log level info. Each call returns a new
// value that the caller may modify.
func Default() *Config {
	return &Config{
		Server: Server{
			Listen: []netip.AddrPort{
				netip.AddrPortFrom(netip.IPv4Unspecified(), 123),
				netip.AddrPortFrom(netip.IPv6Unspecified(), 123),
			},
			RateLimit: RateLimit{
				Enabled:    true,
				Interval:   defaultInterval,
				Burst:      defaultBurst,
				Leak:       defaultLeak,
				Action:     Drop,
				TableSize:  defaultTableSize,
				IPv4Prefix: defaultIPv4Prefix,
				IPv6Prefix: defaultIPv6Prefix,
			},
			Access: Access{DenyAction: Drop},
		},
		Client: Client{MinSources: 1, MakeStep: defaultMakeStep, MakeStepLimit: defaultMakeStepLimit, Panic: defaultPanic,
			StepBudget: defaultStepBudget},
		Privsep: Privsep{Enabled: true, User: "meridian", Restart: true},
		Mirror:  Mirror{Poll: defaultPoll, UnsyncAfter: defaultUnsyncAfter},
		Log:     Log{Level: slog.LevelInfo},
	}
}
