package xdp

import (
	"errors"
	"fmt"
	"net"
	"os"
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
	Maps
	prog                     *ebpf.Program
	dests, acl4, acl6, limit *ebpf.Map

	// mu guards links.
	mu    sync.Mutex
	links []link.Link
}

// Maps are the maps a server needs of a loaded program: the served state
// (with the control word that points the program at one of its two
// slots) and the counters. A process that did not load the program gets
// them with MapFiles and OpenMaps. Publish and Counters are safe for
// concurrent use.
type Maps struct {
	ctl, state, stats *ebpf.Map
	static            static

	// mu orders this process's writes of the state.
	mu sync.Mutex
}

// Load creates the program's maps and loads the program, which does
// nothing until it is attached. It needs CAP_BPF (root).
func Load(c Config) (*Program, error) {
	p := &Program{Maps: Maps{static: newStatic(c)}}
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
	p.ctl = newMap("ctl", ctlSpec)
	p.state = newMap("state", stateSpec)
	p.dests = newMap("dests", ebpf.MapSpec{Type: ebpf.Hash, KeySize: 20, ValueSize: 1, MaxEntries: uint32(max(len(c.Dests), 1))})
	p.acl4 = newMap("acl4", ebpf.MapSpec{Type: ebpf.LPMTrie, KeySize: 8, ValueSize: 1, MaxEntries: uint32(n4), Flags: unix.BPF_F_NO_PREALLOC})
	p.acl6 = newMap("acl6", ebpf.MapSpec{Type: ebpf.LPMTrie, KeySize: 20, ValueSize: 1, MaxEntries: uint32(n6), Flags: unix.BPF_F_NO_PREALLOC})
	p.limit = newMap("limit", ebpf.MapSpec{Type: ebpf.LRUHash, KeySize: 16, ValueSize: entryLen, MaxEntries: uint32(tableSize)})
	p.stats = newMap("stats", statsSpec)
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
	return p.Off()
}

func (p *Program) fds() mapFDs {
	return mapFDs{ctl: p.ctl.FD(), state: p.state.FD(), dests: p.dests.FD(), acl4: p.acl4.FD(),
		acl6: p.acl6.FD(), limit: p.limit.FD(), stats: p.stats.FD()}
}

// Publish makes the program serve st. The state is double-buffered: the
// slot the program does not read is written, then the program is pointed
// at it, so that no response mixes two states.
func (m *Maps) Publish(st *server.State) error {
	tai, err := taiOffset()
	if err != nil {
		return err
	}
	return m.put(encodeState(m.static, st, tai))
}

// Off makes the program pass every request on to the sockets, as before
// the first Publish: for when no process publishes states any more.
func (m *Maps) Off() error {
	return m.put(encodeState(static{}, server.Unsynchronized(0), 0))
}

// put writes v to the slot the program does not read, then points the
// program at it. The slot read is asked of the map, not remembered: the
// process that loaded the program and the server it handed the maps to
// both write (the server while it lives, the loader after it died).
func (m *Maps) put(v [stateLen]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var slot uint32
	if err := m.ctl.Lookup(uint32(0), &slot); err != nil {
		return fmt.Errorf("XDP state: %w", err)
	}
	next := (slot & 1) ^ 1
	if err := m.state.Put(next, v); err != nil {
		return fmt.Errorf("XDP state: %w", err)
	}
	if err := m.ctl.Put(uint32(0), next); err != nil {
		return fmt.Errorf("XDP state: %w", err)
	}
	return nil
}

// taiOffset returns CLOCK_TAI - CLOCK_REALTIME, a whole number of
// seconds, from the clocks read one after the other (no call that could
// change the clock, and none a confined server may not make). The
// realtime clock is read before and after the TAI clock: a step between
// the reads would otherwise pass for part of the offset, so the reads
// are made again until they agree.
func taiOffset() (time.Duration, error) {
	for range 8 {
		var rt0, tai, rt1 unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_REALTIME, &rt0); err != nil {
			return 0, fmt.Errorf("read the TAI offset: %w", err)
		}
		if err := unix.ClockGettime(unix.CLOCK_TAI, &tai); err != nil {
			return 0, fmt.Errorf("read the TAI offset: %w", err)
		}
		if err := unix.ClockGettime(unix.CLOCK_REALTIME, &rt1); err != nil {
			return 0, fmt.Errorf("read the TAI offset: %w", err)
		}
		span := time.Duration(rt1.Nano() - rt0.Nano())
		d := time.Duration(tai.Nano() - rt0.Nano())
		if span < 0 || span > time.Millisecond {
			continue // stepped, or preempted: read again
		}
		if off := d.Round(time.Second); (d - off).Abs() <= time.Millisecond+span {
			return off, nil
		}
	}
	return 0, errors.New("read the TAI offset: the clocks did not hold still")
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
func (m *Maps) Counters() (map[server.Verdict]uint64, error) {
	c := map[server.Verdict]uint64{}
	var perCPU []uint64
	for i := range uint32(numStats) {
		if err := m.stats.Lookup(i, &perCPU); err != nil {
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

// MapFiles returns new descriptors of the maps a server needs, to hand
// to another process (OpenMaps takes them there): the control word, the
// state and the counters, in that order.
func (p *Program) MapFiles() ([]*os.File, error) {
	var fs []*os.File
	for _, m := range []*ebpf.Map{p.ctl, p.state, p.stats} {
		fd, err := unix.FcntlInt(uintptr(m.FD()), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			for _, f := range fs {
				_ = f.Close() // the error below is what matters
			}
			return nil, fmt.Errorf("XDP maps: %w", err)
		}
		fs = append(fs, os.NewFile(uintptr(fd), "xdp-map"))
	}
	return fs, nil
}

// The maps a server is handed (MapFiles, OpenMaps): as created, and as
// OpenMaps checks what it is given.
var (
	ctlSpec    = ebpf.MapSpec{Name: "ctl", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1}
	stateSpec  = ebpf.MapSpec{Name: "state", Type: ebpf.Array, KeySize: 4, ValueSize: stateLen, MaxEntries: 2}
	statsSpec  = ebpf.MapSpec{Name: "stats", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: numStats}
	servedMaps = [...]*ebpf.MapSpec{&ctlSpec, &stateSpec, &statsSpec}
)

// OpenMaps takes over the maps of a program loaded by another process
// (MapFiles there), for a server configured with c: it closes the files
// in any case. It checks that they are the program's maps, and reads
// everything it will need from the filesystem now, so that the caller
// can be denied the filesystem afterwards.
func OpenMaps(files []*os.File, c Config) (_ *Maps, err error) {
	var ms [len(servedMaps)]*ebpf.Map
	defer func() {
		for _, f := range files {
			_ = f.Close() // the maps hold descriptors of their own
		}
		if err != nil {
			for _, m := range ms {
				if m != nil {
					_ = m.Close() // the error returned is what matters
				}
			}
		}
	}()
	if len(files) != len(servedMaps) {
		return nil, fmt.Errorf("XDP maps: %d descriptors; want %d", len(files), len(servedMaps))
	}
	for i, f := range files {
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("XDP maps: %w", err)
		}
		spec := servedMaps[i]
		if ms[i], err = ebpf.NewMapFromFD(fd); err != nil {
			return nil, fmt.Errorf("XDP map %s: %w", spec.Name, err)
		}
		if err := spec.Compatible(ms[i]); err != nil {
			return nil, fmt.Errorf("XDP map %s: %w", spec.Name, err)
		}
	}
	// The counters of every CPU are read at once: the number of CPUs
	// comes from a file in /sys, read once and kept.
	if _, err := ebpf.PossibleCPU(); err != nil {
		return nil, fmt.Errorf("XDP maps: %w", err)
	}
	return &Maps{ctl: ms[0], state: ms[1], stats: ms[2], static: newStatic(c)}, nil
}

// Close closes the maps (the program, if another process holds it, goes
// on with the last state published).
func (m *Maps) Close() error {
	return errors.Join(m.ctl.Close(), m.state.Close(), m.stats.Close())
}
