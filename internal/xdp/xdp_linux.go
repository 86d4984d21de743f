package xdp

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/meridian-ntp/meridian/internal/server"
)

// numStats is the size of the per-CPU verdict counters, indexed by
// server.Verdict.
const numStats = 16

// Mode is how the program is attached to an interface.
type Mode uint8

// Attach modes.
const (
	// Auto lets the kernel choose: in the driver if it supports XDP,
	// generic otherwise.
	Auto Mode = iota
	// Native runs the program in the driver, before any socket buffer is
	// allocated; the interface's driver must support it.
	Native
	// Generic runs it on socket buffers, with any driver (loopback too):
	// slower than native, still before the IP stack.
	Generic
)

func (m Mode) flags() link.XDPAttachFlags {
	switch m {
	case Native:
		return link.XDPDriverMode
	case Generic:
		return link.XDPGenericMode
	}
	return 0
}

// Program is the loaded XDP program with its maps. Publish and Counters
// are safe for concurrent use.
type Program struct {
	prog                                        *ebpf.Program
	ctl, state, dests, acl4, acl6, limit, stats *ebpf.Map
	static                                      static

	// mu guards the fields below.
	mu    sync.Mutex
	slot  uint32 // the state slot the program reads
	links []link.Link
}

// Load creates the program's maps and loads the program, which does
// nothing until it is attached. It needs CAP_BPF (root).
func Load(c Config) (*Program, error) {
	p := &Program{static: newStatic(c)}
	if err := p.createMaps(c); err != nil {
		p.Close()
		return nil, err
	}
	if err := p.fillMaps(c); err != nil {
		p.Close()
		return nil, err
	}
	prog, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Name:         "meridian_ntp",
		Type:         ebpf.XDP,
		License:      "Apache-2.0",
		Instructions: program(p.fds()),
	}, ebpf.ProgramOptions{LogSizeStart: 1 << 20})
	if err != nil {
		p.Close()
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load XDP program: %+v", ve)
		}
		return nil, fmt.Errorf("load XDP program: %w", err)
	}
	p.prog = prog
	return p, nil
}

func (p *Program) createMaps(c Config) error {
	var err error
	newMap := func(name string, spec ebpf.MapSpec) *ebpf.Map {
		if err != nil {
			return nil
		}
		spec.Name = name
		var m *ebpf.Map
		if m, err = ebpf.NewMap(&spec); err != nil {
			err = fmt.Errorf("create XDP map %s: %w", name, err)
		}
		return m
	}
	tableSize := 1
	if c.Limit != nil {
		tableSize = c.Limit.WithDefaults().TableSize
	}
	rules, _ := c.ACL.Rules()
	n4, n6 := 1, 1
	for _, r := range rules {
		if r.Prefix.Addr().Is4() {
			n4++
		} else {
			n6++
		}
	}
	p.ctl = newMap("ctl", ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	p.state = newMap("state", ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: stateLen, MaxEntries: 2})
	p.dests = newMap("dests", ebpf.MapSpec{Type: ebpf.Hash, KeySize: 20, ValueSize: 1, MaxEntries: uint32(max(len(c.Dests), 1))})
	p.acl4 = newMap("acl4", ebpf.MapSpec{Type: ebpf.LPMTrie, KeySize: 8, ValueSize: 1, MaxEntries: uint32(n4), Flags: unix.BPF_F_NO_PREALLOC})
	p.acl6 = newMap("acl6", ebpf.MapSpec{Type: ebpf.LPMTrie, KeySize: 20, ValueSize: 1, MaxEntries: uint32(n6), Flags: unix.BPF_F_NO_PREALLOC})
	p.limit = newMap("limit", ebpf.MapSpec{Type: ebpf.LRUHash, KeySize: 16, ValueSize: entryLen, MaxEntries: uint32(tableSize)})
	p.stats = newMap("stats", ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: numStats})
	return err
}

func (p *Program) fillMaps(c Config) error {
	for _, d := range c.Dests {
		if d.Addr().Unmap().IsUnspecified() {
			return fmt.Errorf("XDP: %v: a wildcard address must be expanded into the interfaces' addresses", d)
		}
		if err := p.dests.Put(destKey(d), uint8(1)); err != nil {
			return fmt.Errorf("XDP dests: %w", err)
		}
	}
	rules, _ := c.ACL.Rules()
	for _, r := range rules {
		m := p.acl6
		if r.Prefix.Addr().Is4() {
			m = p.acl4
		}
		if err := m.Put(aclKey(r.Prefix), uint8(r.Access)); err != nil {
			return fmt.Errorf("XDP access list %v: %w", r.Prefix, err)
		}
	}
	// Until the first Publish, the program passes everything on.
	off := static{}
	if err := p.state.Put(uint32(0), encodeState(off, server.Unsynchronized(0), 0)); err != nil {
		return fmt.Errorf("XDP state: %w", err)
	}
	return p.ctl.Put(uint32(0), uint32(0))
}

func (p *Program) fds() mapFDs {
	return mapFDs{ctl: p.ctl.FD(), state: p.state.FD(), dests: p.dests.FD(), acl4: p.acl4.FD(),
		acl6: p.acl6.FD(), limit: p.limit.FD(), stats: p.stats.FD()}
}

// Publish makes the program serve st. The state is double-buffered: the
// slot the program does not read is written, then the program is pointed
// at it, so that no response mixes two states.
func (p *Program) Publish(st *server.State) error {
	tai, err := taiOffset()
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	next := p.slot ^ 1
	if err := p.state.Put(next, encodeState(p.static, st, tai)); err != nil {
		return fmt.Errorf("XDP state: %w", err)
	}
	if err := p.ctl.Put(uint32(0), next); err != nil {
		return fmt.Errorf("XDP state: %w", err)
	}
	p.slot = next
	return nil
}

// taiOffset reads CLOCK_TAI - CLOCK_REALTIME from the kernel, without
// changing anything (adjtimex with no mode bits only reads).
func taiOffset() (time.Duration, error) {
	var tx unix.Timex
	if _, err := unix.Adjtimex(&tx); err != nil {
		return 0, fmt.Errorf("read the TAI offset: %w", err)
	}
	return time.Duration(tx.Tai) * time.Second, nil
}

// Attach attaches the program to the named interface. It is detached by
// Close, or by the kernel when the process exits.
func (p *Program) Attach(ifname string, mode Mode) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return fmt.Errorf("XDP on %s: %w", ifname, err)
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: p.prog, Interface: ifi.Index, Flags: mode.flags()})
	if err != nil {
		return fmt.Errorf("XDP on %s: %w", ifname, err)
	}
	p.mu.Lock()
	p.links = append(p.links, l)
	p.mu.Unlock()
	return nil
}

// Counters returns the number of requests the program decided on, by
// verdict, summed over all CPUs. Requests passed to the sockets are
// counted there.
func (p *Program) Counters() (map[server.Verdict]uint64, error) {
	c := map[server.Verdict]uint64{}
	var perCPU []uint64
	for i := range uint32(numStats) {
		if err := p.stats.Lookup(i, &perCPU); err != nil {
			return nil, fmt.Errorf("XDP counters: %w", err)
		}
		for _, n := range perCPU {
			if n != 0 {
				c[server.Verdict(i)] += n
			}
		}
	}
	return c, nil
}

// Close detaches the program and frees it and its maps.
func (p *Program) Close() error {
	p.mu.Lock()
	links := p.links
	p.links = nil
	p.mu.Unlock()
	var errs []error
	for _, l := range links {
		errs = append(errs, l.Close())
	}
	if p.prog != nil {
		errs = append(errs, p.prog.Close())
	}
	for _, m := range []*ebpf.Map{p.ctl, p.state, p.dests, p.acl4, p.acl6, p.limit, p.stats} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}
