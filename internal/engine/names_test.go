package engine

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/meridian-ntp/meridian/internal/mono"
	"github.com/meridian-ntp/meridian/internal/ntp"
	"github.com/meridian-ntp/meridian/internal/server"
	"github.com/meridian-ntp/meridian/internal/source"
)

func newNamed(names ...NameConfig) *Engine {
	return New(Config{Names: names, Precision: -22}, func(i int) source.Rand { return rand.New(rand.NewPCG(uint64(i), 7)) }, 0)
}

// addrs returns n IPv4 addresses from 198.51.100.first on.
func addrs(first, n int) []netip.Addr {
	var a []netip.Addr
	for i := range n {
		a = append(a, netip.AddrFrom4([4]byte{198, 51, byte(100 + (first+i)/256), byte(first + i)}))
	}
	return a
}

// live returns the addresses of the engine's sources.
func live(e *Engine) []netip.AddrPort {
	var out []netip.AddrPort
	for i := range e.Len() {
		if c, _, ok := e.Source(i); ok {
			out = append(out, c.Addr)
		}
	}
	return out
}

// kinds returns the kinds of the engine's events since the last call.
func kinds(e *Engine) []EventKind {
	var k []EventKind
	for _, ev := range e.Events(nil) {
		k = append(k, ev.Kind)
	}
	return k
}

// TestResolveBackOff: THREATS F3. A name that fails to resolve is tried
// again after 8 s, then 16 s, 32 s ... never more often, up to 1024 s;
// nothing is pending twice; a success ends the back-off.
func TestResolveBackOff(t *testing.T) {
	e := newNamed(NameConfig{Name: "ntp.example", Host: "ntp.example", Port: 123})
	if next, ok := e.Next(); !ok || next != 0 {
		t.Fatalf("Next at start = %v, %v; want 0 (a name due now)", next, ok)
	}
	if due := e.DueNames(0, nil); !slices.Equal(due, []int{0}) {
		t.Fatalf("names due at start: %v; want [0]", due)
	}
	// Only a resolution pending: nothing scheduled (a caller's timer
	// must not spin).
	if next, ok := e.Next(); ok {
		t.Fatalf("Next with only a resolution pending = %v, true; want nothing", next)
	}
	if due := e.DueNames(0, nil); len(due) != 0 {
		t.Fatalf("names due while pending: %v; want none", due)
	}
	now := mono.Instant(0)
	var waits []time.Duration
	for range 10 {
		e.HandleResolved(now, 0, nil, errors.New("no such host"))
		ev := e.Events(nil)
		if len(ev) != 1 || ev[0].Kind != EventResolveFailed || ev[0].Name != "ntp.example" {
			t.Fatalf("events after a failure: %+v", ev)
		}
		waits = append(waits, ev[0].Retry)
		next, _ := e.Next()
		if due := e.DueNames(next.Add(-1), nil); len(due) != 0 {
			t.Fatalf("due before the retry: %v", due)
		}
		if due := e.DueNames(next, nil); len(due) != 1 {
			t.Fatalf("not due at the retry")
		}
		now = next
	}
	want := []time.Duration{8, 16, 32, 64, 128, 256, 512, 1024, 1024, 1024}
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(waits, want) {
		t.Errorf("waits %v; want %v", waits, want)
	}
	// No address at all is a failure too; then one comes.
	e.HandleResolved(now, 0, []netip.Addr{}, nil)
	if k := kinds(e); !slices.Equal(k, []EventKind{EventResolveFailed}) {
		t.Errorf("events after an empty answer: %v; want a failure", k)
	}
	now, _ = e.Next()
	e.DueNames(now, nil)
	e.HandleResolved(now, 0, addrs(1, 3), nil)
	if got := live(e); len(got) != 1 || got[0] != netip.MustParseAddrPort("198.51.100.1:123") {
		t.Errorf("sources after the answer: %v; want the first address only", got)
	}
	if k := kinds(e); !slices.Equal(k, []EventKind{EventAdded}) {
		t.Errorf("events: %v; want one added", k)
	}
	if due := e.DueNames(now.Add(24*time.Hour), nil); len(due) != 0 {
		t.Errorf("a resolved name due again: %v", due)
	}
}

// TestPoolBounded: THREATS F3. However many addresses a pool's name gives,
// no more than maxsources sources; unusable and duplicate addresses are
// skipped; a second answer adds nothing while the pool is full.
func TestPoolBounded(t *testing.T) {
	e := newNamed(NameConfig{Name: "server", Host: "198.51.100.2", Port: 123},
		NameConfig{Name: "pool", Host: "pool.example", Port: 123, Pool: true, MaxSources: 3})
	e.DueNames(0, nil)
	e.HandleResolved(0, 0, addrs(2, 1), nil)
	many := append([]netip.Addr{netip.IPv4Unspecified(), netip.MustParseAddr("224.0.1.1"), netip.MustParseAddr("::ffff:198.51.100.2"),
		netip.MustParseAddr("fe80::1")},
		addrs(1, 100)...)
	e.HandleResolved(0, 1, many, nil)
	want := []netip.AddrPort{netip.MustParseAddrPort("198.51.100.2:123"), netip.MustParseAddrPort("198.51.100.1:123"),
		netip.MustParseAddrPort("198.51.100.3:123"), netip.MustParseAddrPort("198.51.100.4:123")}
	if got := live(e); !slices.Equal(got, want) {
		t.Errorf("sources: %v; want %v (the server, then three pool members skipping the server's address)", got, want)
	}
	if due := e.DueNames(mono.Instant(time.Hour), nil); len(due) != 0 {
		t.Errorf("due after a full answer: %v", due)
	}
	e.Events(nil)
	e.HandleResolved(0, 1, addrs(50, 10), nil)
	if got := live(e); len(got) != 4 || len(e.Events(nil)) != 0 {
		t.Errorf("a full pool took more: %v", got)
	}
	// Pool members are their own reference IDs and groups.
	c, _, _ := e.Source(1)
	if c.RefID != (ntp.RefID{198, 51, 100, 1}) || c.Group != "198.51.100.0/24" || c.Name != "pool" {
		t.Errorf("pool member %+v", c)
	}
}

// run drives e for d from now: every request due is answered by answer,
// or lost if it returns nil. It returns the time reached.
func run(t *testing.T, e *Engine, now mono.Instant, d time.Duration, answer func(src int) (st *server.State, offset time.Duration)) mono.Instant {
	t.Helper()
	return runAt(t, e, wall0, now, d, func(_ mono.Instant, src int) (*server.State, time.Duration) { return answer(src) })
}

// runAt is run with the local clock reading base at mono time 0, and an
// answer that may change with the time of the request.
func runAt(t *testing.T, e *Engine, base time.Time, now mono.Instant, d time.Duration, answer func(now mono.Instant, src int) (st *server.State, offset time.Duration)) mono.Instant {
	t.Helper()
	resp := server.NewResponder(server.Config{})
	end := now.Add(d)
	for now < end {
		answerDue(t, e, resp, base, now, 500*time.Microsecond, func(src int) (*server.State, time.Duration) { return answer(now, src) })
		// A name due (left for the test to take) keeps Next in the past.
		if next, _ := e.Next(); next > now {
			now = next
		} else {
			now = now.Add(time.Second)
		}
	}
	return now
}

var good = &server.State{Stratum: 2, Precision: -20, RefID: ntp.RefID{'G', 'P', 'S', 0}, RootDisp: ntp.ShortFrom(time.Millisecond)}

// TestPoolReplacesMembers: a pool member that stops answering, and one
// that stays a falseticker, are dropped and replaced by new addresses;
// the dropped ones are not taken back at once.
func TestPoolReplacesMembers(t *testing.T) {
	e := newNamed(NameConfig{Name: "pool", Host: "pool.example", Port: 123, Pool: true, MaxSources: 4,
		Options: SourceOptions{IBurst: true}})
	e.DueNames(0, nil)
	e.HandleResolved(0, 0, addrs(1, 4), nil)
	e.Events(nil)
	dead, liar := netip.MustParseAddrPort("198.51.100.1:123"), netip.MustParseAddrPort("198.51.100.2:123")
	answer := func(src int) (*server.State, time.Duration) {
		c, _, _ := e.Source(src)
		switch c.Addr {
		case dead:
			return nil, 0
		case liar:
			return good, 2 * time.Second
		}
		return good, 0
	}
	now := run(t, e, 0, 30*time.Minute, answer)
	var removed []string
	for _, ev := range e.Events(nil) {
		if ev.Kind == EventRemoved {
			removed = append(removed, fmt.Sprintf("%v %s", ev.Addr, ev.Reason))
		}
	}
	if want := []string{"198.51.100.1:123 unreachable", "198.51.100.2:123 a falseticker"}; !slices.Equal(removed, want) {
		t.Errorf("dropped %v; want %v", removed, want)
	}
	due := e.DueNames(now, nil)
	if len(due) != 1 {
		t.Fatalf("pool not due after dropping members: %v", due)
	}
	// The same four addresses again: the dropped two are shunned.
	e.HandleResolved(now, 0, addrs(1, 4), nil)
	if got := live(e); len(got) != 2 {
		t.Errorf("sources after the same answer: %v; want the two good ones only", got)
	}
	if k := kinds(e); !slices.Equal(k, []EventKind{EventResolveFailed}) {
		t.Errorf("events: %v; want too few addresses", k)
	}
	now, _ = e.Next()
	e.DueNames(now, nil)
	e.HandleResolved(now, 0, addrs(1, 8), nil)
	got := live(e)
	slices.SortFunc(got, func(a, b netip.AddrPort) int { return a.Compare(b) })
	want := []netip.AddrPort{netip.MustParseAddrPort("198.51.100.3:123"), netip.MustParseAddrPort("198.51.100.4:123"),
		netip.MustParseAddrPort("198.51.100.5:123"), netip.MustParseAddrPort("198.51.100.6:123")}
	if !slices.Equal(got, want) {
		t.Errorf("sources after a fresh answer: %v; want %v", got, want)
	}
}

// TestPoolKeepsSmearingMember: a pool member suspected of smearing a
// leap second is left out of selection, not dropped as a falseticker.
func TestPoolKeepsSmearingMember(t *testing.T) {
	e := newNamed(NameConfig{Name: "pool", Host: "pool.example", Port: 123, Pool: true, MaxSources: 4,
		Options: SourceOptions{IBurst: true}})
	e.DueNames(0, nil)
	e.HandleResolved(0, 0, addrs(1, 4), nil)
	e.Events(nil)
	smearer := netip.MustParseAddrPort("198.51.100.4:123")
	announcing := *good
	announcing.Leap = ntp.LeapInsert
	// Noon on the last day of June: three members announce the leap,
	// the fourth does not and drifts away as a smear would.
	base := time.Date(2026, 6, 30, 12, 0, 0, 0, time.UTC)
	// (A smear over a day: the offset grows by a second over 86400 s.)
	now := runAt(t, e, base, 0, 10*time.Hour, func(at mono.Instant, src int) (*server.State, time.Duration) {
		c, _, _ := e.Source(src)
		if c.Addr == smearer {
			return good, -time.Duration(at) / 86400
		}
		return &announcing, 0
	})
	for _, ev := range e.Events(nil) {
		if ev.Kind == EventRemoved {
			t.Errorf("dropped %v (%s); want every member kept", ev.Addr, ev.Reason)
		}
	}
	for i := range e.Len() {
		if c, _, _ := e.Source(i); c.Addr == smearer && !e.Discipline().Smearing(now, i) {
			t.Errorf("%v not suspected of smearing", smearer)
		}
	}
}

// TestServerFollowsName: THREATS F4. A server given by name that stops
// answering is looked up again; when its name has moved to another
// address, the source moves with it; while it has not, the source stays.
func TestServerFollowsName(t *testing.T) {
	e := newNamed(NameConfig{Name: "ntp.example:123", Host: "ntp.example", Port: 123})
	e.DueNames(0, nil)
	e.HandleResolved(0, 0, addrs(1, 1), nil)
	e.Events(nil)
	silent := func(int) (*server.State, time.Duration) { return nil, 0 }
	now := run(t, e, 0, 10*64*time.Second, silent)
	if due := e.DueNames(now, nil); len(due) != 1 {
		t.Fatalf("an unreachable server's name is not looked up again")
	}
	e.HandleResolved(now, 0, addrs(1, 1), nil)
	if k := kinds(e); len(k) != 0 || len(live(e)) != 1 {
		t.Errorf("same address: events %v, sources %v; want no change", k, live(e))
	}
	now = run(t, e, now, 10*64*time.Second, silent)
	e.DueNames(now, nil)
	e.HandleResolved(now, 0, addrs(7, 2), nil)
	if got := live(e); !slices.Equal(got, []netip.AddrPort{netip.MustParseAddrPort("198.51.100.7:123")}) {
		t.Errorf("sources after the name moved: %v; want 198.51.100.7:123", got)
	}
	if k := kinds(e); !slices.Equal(k, []EventKind{EventRemoved, EventAdded}) {
		t.Errorf("events: %v; want removed, added", k)
	}
	// It answers at the new address: the client synchronizes.
	run(t, e, now, 10*time.Minute, func(int) (*server.State, time.Duration) { return good, 0 })
	if !e.Discipline().Synced() {
		t.Error("not synchronized to the server at its new address")
	}
}

func TestGroupOf(t *testing.T) {
	for _, tt := range []struct {
		addr  string
		group string
	}{
		{"192.0.2.33", "192.0.2.0/24"},
		{"::ffff:198.51.100.7", "198.51.100.0/24"},
		{"127.0.0.1", ""},
		{"10.1.2.3", ""},
		{"fe80::1%eth0", ""},
		{"2001:db8:1:2::3", "2001:db8:1::/48"},
	} {
		a := netip.MustParseAddr(tt.addr)
		if g := GroupOf(a); g != tt.group {
			t.Errorf("GroupOf(%s) = %q; want %q", tt.addr, g, tt.group)
		}
	}
}

// TestShunnedBound: with the list of dropped addresses full, a drop
// removes the expired entries, or else the oldest one (the lowest address
// among those dropped at once), whatever the map's order.
func TestShunnedBound(t *testing.T) {
	now := mono.Instant(time.Hour)
	addr := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 123+uint16(i/256))
	}
	fill := func(e *Engine, until func(i int) mono.Instant) {
		clear(e.shunned)
		for i := range maxShunned {
			e.shunned[addr(i)] = until(i)
		}
	}
	for range 20 { // map order differs from run to run
		e := newEngine(2)
		// All live, two of them the oldest, at the same time.
		fill(e, func(i int) mono.Instant {
			if i == 7 || i == 3 {
				return now
			}
			return now.Add(time.Duration(i+1) * time.Second)
		})
		e.drop(now.Add(-time.Second), 0, "test")
		if _, ok := e.shunned[addr(3)]; ok || len(e.shunned) != maxShunned {
			t.Fatalf("%d shunned, %v still there; want %d, the oldest lowest address (%v) gone",
				len(e.shunned), addr(3), maxShunned, addr(3))
		}
		if _, ok := e.shunned[addr(7)]; !ok {
			t.Fatalf("%v gone too; want only %v", addr(7), addr(3))
		}
		// Expired ones go first, all of them.
		fill(e, func(i int) mono.Instant {
			if i < 10 {
				return now - 1
			}
			return now.Add(time.Minute)
		})
		e.drop(now, 1, "test")
		if len(e.shunned) != maxShunned-10+1 {
			t.Fatalf("%d shunned after a drop with 10 expired; want %d", len(e.shunned), maxShunned-9)
		}
	}
}
