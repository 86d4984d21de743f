package server

import (
	"hash/maphash"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/meridian-ntp/meridian/internal/mono"
)

// LimitConfig configures a Limiter. Zero fields take the documented
// defaults, which suit a public server.
type LimitConfig struct {
	// Interval is the average interval at which a client may send
	// requests (default 2 s).
	Interval time.Duration
	// Burst is how many requests a client may send back to back before
	// the interval applies (default 16).
	Burst int
	// Leak makes a limited client still get an answer to 1 in Leak of its
	// requests on average, so that a victim whose address an attacker
	// spoofs keeps some service (default 4; negative: never).
	Leak int
	// KoD answers limited requests with a kiss-o'-death RATE instead of
	// silence, at most one per client per Interval.
	KoD bool
	// TableSize is how many clients are tracked at once (default 65536);
	// memory is about 32 bytes per client.
	TableSize int
	// IPv4Prefix and IPv6Prefix group client addresses: all addresses in one
	// prefix share one budget (defaults 32 and 64).
	IPv4Prefix, IPv6Prefix int
}

// WithDefaults returns c with the defaults in place of its zero fields.
func (c LimitConfig) WithDefaults() LimitConfig {
	c.defaults()
	return c
}

func (c *LimitConfig) defaults() {
	if c.Interval <= 0 {
		c.Interval = 2 * time.Second
	}
	if c.Burst <= 0 {
		c.Burst = 16
	}
	if c.Leak == 0 {
		c.Leak = 4
	}
	if c.TableSize <= 0 {
		c.TableSize = 65536
	}
	if c.IPv4Prefix <= 0 || c.IPv4Prefix > 32 {
		c.IPv4Prefix = 32
	}
	if c.IPv6Prefix <= 0 || c.IPv6Prefix > 128 {
		c.IPv6Prefix = 64
	}
}

// Limit is a Limiter's decision on one request.
type Limit uint8

// Limiter decisions.
const (
	LimitPass Limit = iota // within the client's budget
	LimitLeak              // over the budget, answered by the leak lottery
	LimitKiss              // over the budget: send a kiss-o'-death RATE
	LimitDrop              // over the budget: send nothing
)

// ways is the associativity of the client table: a client is kept in one
// of the ways slots of the bucket its address hashes to.
const ways = 4

// entry is one tracked client. tat is the theoretical arrival time of the
// generic cell rate algorithm: the client is within its budget while
// tat <= now + (Burst-1)*Interval. An entry with tat <= now holds no
// information (the client has its full burst) and is free to reuse.
type entry struct {
	key   [16]byte
	tat   mono.Instant
	kodAt mono.Instant // no kiss-o'-death before this
	used  bool
}

// Limiter is a per-client request budget with bounded memory: a
// set-associative table of TableSize entries whose bucket index is a keyed
// hash of the client's address prefix, so an attacker cannot aim addresses
// at one bucket. When a bucket is full, the entry with the most budget left
// is replaced. A Limiter is not safe for concurrent use: each server worker
// owns one.
type Limiter struct {
	cfg     LimitConfig
	seed    maphash.Seed
	rng     *rand.Rand
	table   []entry
	mask    uint64 // number of buckets - 1
	burstNS time.Duration
}

// NewLimiter returns a limiter. seed keys the table hash (make it with
// maphash.MakeSeed at start); rng draws the leak lottery.
func NewLimiter(cfg LimitConfig, seed maphash.Seed, rng *rand.Rand) *Limiter {
	cfg.defaults()
	buckets := 1
	for buckets*ways < cfg.TableSize {
		buckets <<= 1
	}
	return &Limiter{cfg: cfg, seed: seed, rng: rng,
		table:   make([]entry, buckets*ways),
		mask:    uint64(buckets - 1),
		burstNS: time.Duration(cfg.Burst-1) * cfg.Interval}
}

// Config returns the limiter's configuration with defaults applied.
func (l *Limiter) Config() LimitConfig { return l.cfg }

// key returns the client's grouping key: the address masked to its
// configured prefix, IPv4 in IPv4-mapped form.
func (l *Limiter) key(addr netip.Addr) [16]byte {
	addr = addr.Unmap()
	bits := l.cfg.IPv6Prefix
	if addr.Is4() {
		bits = l.cfg.IPv4Prefix
	}
	p, err := addr.WithZone("").Prefix(bits)
	if err != nil {
		return addr.As16()
	}
	return p.Addr().As16()
}

// Check decides on one request from addr at now.
func (l *Limiter) Check(now mono.Instant, addr netip.Addr) Limit {
	e := l.lookup(now, l.key(addr))
	if e.tat < now {
		e.tat = now
	}
	if e.tat.Sub(now) <= l.burstNS {
		e.tat = e.tat.Add(l.cfg.Interval)
		return LimitPass
	}
	if l.cfg.Leak > 0 && l.rng.IntN(l.cfg.Leak) == 0 {
		return LimitLeak
	}
	if l.cfg.KoD && !now.Before(e.kodAt) {
		e.kodAt = now.Add(l.cfg.Interval)
		return LimitKiss
	}
	return LimitDrop
}

// lookup returns the entry for k, claiming one if k is not in the table.
func (l *Limiter) lookup(now mono.Instant, k [16]byte) *entry {
	b := maphash.Comparable(l.seed, k) & l.mask
	slots := l.table[b*ways : b*ways+ways]
	victim := &slots[0]
	for i := range slots {
		e := &slots[i]
		if e.used && e.key == k {
			return e
		}
		if !e.used || e.tat < victim.tat && victim.used {
			victim = e
		}
	}
	*victim = entry{key: k, used: true, tat: now}
	return victim
}
