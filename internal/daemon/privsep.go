package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/meridian-ntp/meridian/internal/clock"
	"github.com/meridian-ntp/meridian/internal/config"
	"github.com/meridian-ntp/meridian/internal/control"
	"github.com/meridian-ntp/meridian/internal/privsep"
	"github.com/meridian-ntp/meridian/internal/server"
	"github.com/meridian-ntp/meridian/internal/udp"
	"github.com/meridian-ntp/meridian/internal/xdp"
	"golang.org/x/sys/unix"
)

// The environment of a child process of privilege separation, and its
// descriptors: the configuration the keeper read at fd 3; then the
// server's UDP sockets from fd 4, its end of the state socketpair, and
// the XDP fast path's maps (xdp.MapFiles); the engine's end of the
// keeper's socketpair at fd 4, of the state socketpair at 5, and the
// control socket's listener at 6.
const (
	roleEnv    = "MERIDIAN_PRIVSEP_ROLE"    // "server" or "engine"
	socketsEnv = "MERIDIAN_PRIVSEP_SOCKETS" // the server's number of UDP sockets
	xdpEnv     = "MERIDIAN_PRIVSEP_XDP"     // the server's number of XDP maps
	controlEnv = "MERIDIAN_PRIVSEP_CONTROL" // "1" if the engine has a control listener
	configFD   = 3
	firstFD    = 4
)

// ChildConfig returns the configuration a child's parent handed it (as
// configFD): what the keeper read from path when the daemon started,
// whatever has become of the file since. Its errors name path.
func ChildConfig(path string) (*config.Config, error) {
	f := os.NewFile(configFD, "config")
	defer f.Close()
	// ReadAt: every start reads its own copy of the descriptor, which
	// shares its offset with the keeper's.
	data, err := io.ReadAll(io.NewSectionReader(f, 0, config.MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("privsep: the configuration handed over: %w", err)
	}
	return config.Parse(path, data)
}

// configFile returns a sealed in-memory copy of data, the configuration,
// for the children: they read what the keeper read, and none of them can
// change it for the others.
func configFile(data []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate("meridian.toml", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("privsep: a copy of the configuration: %w", err)
	}
	f := os.NewFile(uintptr(fd), "meridian.toml")
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, fmt.Errorf("privsep: a copy of the configuration: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("privsep: seal the copy of the configuration: %w", err)
	}
	return f, nil
}

// ChildRole returns the role this process was started in by a parent
// of privilege separation, or privsep.RoleAll if none.
func ChildRole() privsep.Role {
	switch os.Getenv(roleEnv) {
	case "server":
		return privsep.RoleServer
	case "engine":
		return privsep.RoleEngine
	}
	return privsep.RoleAll
}

// stateWriteWait bounds the engine's wait to hand a state to the server.
const stateWriteWait = 10 * time.Millisecond

// StartChild starts this process's part of the daemon, as its parent
// handed it over (ChildRole), confined: Landlock and the role's seccomp
// filter, applied once the descriptors are taken and the files read.
func StartChild(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Daemon, error) {
	mode := cfg.Privsep.Filter
	// The log's times are local: the zone is loaded now, while its file
	// can be read (Go loads it at its first use).
	zone, offset := time.Now().Zone()
	log.Debug("local time zone", "zone", zone, "offset", offset)
	switch ChildRole() {
	case privsep.RoleServer:
		return startServerChild(ctx, cfg, log, mode)
	case privsep.RoleEngine:
		return startEngineChild(ctx, cfg, log, mode)
	}
	return nil, errors.New("privsep: not a child process")
}

func startServerChild(ctx context.Context, cfg *config.Config, log *slog.Logger, mode privsep.FilterMode) (*Daemon, error) {
	n, err := strconv.Atoi(os.Getenv(socketsEnv))
	if err != nil || n < 1 || n > 4096 {
		return nil, fmt.Errorf("privsep: %s=%q", socketsEnv, os.Getenv(socketsEnv))
	}
	var conns []*udp.Conn
	closeConns := func() {
		for _, c := range conns {
			_ = c.Close() // the error at hand is what matters
		}
	}
	for i := range n {
		c, err := udp.FromFile(os.NewFile(uintptr(firstFD+i), "udp"))
		if err != nil {
			closeConns()
			return nil, fmt.Errorf("privsep: socket %d: %w", i, err)
		}
		conns = append(conns, c)
	}
	state, err := fileConn(firstFD+n, "state")
	if err != nil {
		closeConns()
		return nil, err
	}
	var maps *xdp.Maps
	var allow privsep.Allowance
	if env := os.Getenv(xdpEnv); env != "" {
		if maps, err = openXDPMaps(cfg, env, firstFD+n+1); err != nil {
			closeConns()
			_ = state.Close()
			return nil, err
		}
		allow = privsep.AllowXDPMaps
	}
	states := make(chan *server.State, 1)
	go readStates(state, states, log) // returns when state is closed
	context.AfterFunc(ctx, func() { _ = state.Close() })
	return StartWith(ctx, cfg, log, Options{Role: privsep.RoleServer, Conns: conns, States: states, XDPMaps: maps,
		Confine: func() error { return confine(privsep.RoleServer, mode, allow, log) }})
}

// openXDPMaps takes the XDP fast path's maps, handed over as env
// descriptors from fd.
func openXDPMaps(cfg *config.Config, env string, fd int) (*xdp.Maps, error) {
	n, err := strconv.Atoi(env)
	if err != nil || n < 1 || n > 16 {
		return nil, fmt.Errorf("privsep: %s=%q", xdpEnv, env)
	}
	files := make([]*os.File, n)
	for i := range files {
		files[i] = os.NewFile(uintptr(fd+i), "xdp-map")
	}
	acl := server.NewACL(cfg.Server.Access.Allow, cfg.Server.Access.Deny)
	m, err := xdp.OpenMaps(files, xdpConfig(cfg, acl, nil))
	if err != nil {
		return nil, fmt.Errorf("privsep: %w", err)
	}
	return m, nil
}

// readStates reads served-state messages from conn until it is closed,
// passing the newest on (an older one not yet taken is dropped); it closes
// out when it returns.
func readStates(conn net.Conn, out chan *server.State, log *slog.Logger) {
	defer close(out)
	buf := make([]byte, privsep.StateLen+1)
	for {
		n, err := conn.Read(buf)
		if err != nil || n == 0 {
			return
		}
		st, err := privsep.DecodeState(buf[:n])
		if err != nil {
			log.Warn("served state from the engine refused", "err", err)
			continue
		}
		select {
		case <-out:
		default:
		}
		out <- st
	}
}

func startEngineChild(ctx context.Context, cfg *config.Config, log *slog.Logger, mode privsep.FilterMode) (*Daemon, error) {
	keeper, err := fileConn(firstFD, "keeper")
	if err != nil {
		return nil, err
	}
	state, err := fileConn(firstFD+1, "state")
	if err != nil {
		_ = keeper.Close() // the error above is what matters
		return nil, err
	}
	var ln net.Listener
	if os.Getenv(controlEnv) == "1" {
		f := os.NewFile(uintptr(firstFD+2), "control")
		ln, err = net.FileListener(f)
		f.Close() // the listener holds its own descriptor
		if err != nil {
			return nil, fmt.Errorf("privsep: control listener: %w", err)
		}
	}
	var mu sync.Mutex // guards buf and the writes
	buf := make([]byte, privsep.StateLen)
	publish := func(st *server.State) {
		mu.Lock()
		defer mu.Unlock()
		// Never wait on the server: a server that does not read (dead,
		// being restarted, or compromised) must not hold up the clock's
		// discipline. A state it does not get is replaced by the next.
		_ = state.SetWriteDeadline(time.Now().Add(stateWriteWait))
		_, _ = state.Write(privsep.EncodeState(buf, st))
	}
	dirs := stateDirs(cfg)
	return StartWith(ctx, cfg, log, Options{Role: privsep.RoleEngine, Control: ln, Clock: privsep.NewKeeperClock(keeper),
		Publish: publish, Confine: func() error { return confine(privsep.RoleEngine, mode, 0, log, dirs...) }})
}

// fileConn returns the socket at descriptor fd as a net.Conn.
func fileConn(fd int, name string) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), name)
	c, err := net.FileConn(f)
	f.Close() // c holds its own descriptor
	if err != nil {
		return nil, fmt.Errorf("privsep: %s socket: %w", name, err)
	}
	return c, nil
}

// confine applies Landlock and the role's seccomp filter.
func confine(role privsep.Role, mode privsep.FilterMode, allow privsep.Allowance, log *slog.Logger, dirs ...string) error {
	abi, err := privsep.Landlock(role, dirs...)
	if err != nil {
		return err
	}
	if err := privsep.Confine(role, mode, allow); err != nil {
		return err
	}
	log.Info("confined", "role", role, "landlock_abi", abi, "seccomp", mode == privsep.FilterKill)
	return nil
}

// RunPrivsep runs the daemon split into processes, until ctx is done or
// (with privsep.restart off) a child dies: this process becomes the clock
// keeper and the supervisor, and starts the server and the engine as
// privsep.user, each re-executing this program with configPath and a
// copy of data, the configuration file as read (cfg). It binds
// the server's sockets (again for each start of the server), holds the
// control socket's listener and the state socketpair between engine and
// server for the children's restarts, and serves the engine's clock
// requests under its own policy.
func RunPrivsep(ctx context.Context, cfg *config.Config, configPath string, data []byte, log *slog.Logger) error {
	// Whatever this process inherited stays here: the children get only
	// what they are handed.
	if err := cloexecAll(); err != nil {
		return err
	}
	cred, err := childCredential(cfg.Privsep.User)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("privsep: %w", err)
	}
	self := selfExec(log)
	if self != nil {
		defer self.Close()
	}
	conf, err := configFile(data)
	if err != nil {
		return err
	}
	defer conf.Close()
	// With the children of this process's own user, only Landlock keeps
	// the engine from the keeper's step file, and from signalling it.
	var engineDirs []string
	if cred == nil {
		engineDirs = stateDirs(cfg)
		abi := privsep.LandlockABI()
		if abi < 1 && cfg.Privsep.KeeperStepFile != "" {
			return errors.New("privsep.keeper-step-file: the daemon's children run as its own user and this kernel has no Landlock to keep the engine from the file; start the daemon as root, or set privsep.keeper-step-file = \"\"")
		}
		if abi < 6 {
			log.Warn("the children run as the daemon's own user, and this kernel's Landlock cannot keep them from signalling it (ABI 6 can); start the daemon as root to keep them apart", "landlock_abi", abi)
		}
	}
	keeper, err := newKeeper(cfg, log, engineDirs)
	if err != nil {
		return err
	}
	toServer, fromEngine, err := privsep.SocketPair()
	if err != nil {
		return err
	}
	defer toServer.Close()
	defer fromEngine.Close()
	var ctl *net.UnixListener
	if cfg.Control.Socket != "" {
		ln, err := control.Listen(cfg.Control.Socket)
		if err != nil {
			return err
		}
		ctl = ln.(*net.UnixListener)
		ctl.SetUnlinkOnClose(true)
		defer ctl.Close()
		log.Info("control socket", "path", cfg.Control.Socket)
	}
	first, err := serverFiles(cfg, log)
	if err != nil {
		return err
	}
	// The XDP fast path is loaded and attached here, while this process
	// may; it passes every request on to the sockets until the server,
	// which gets its maps, publishes a state.
	var prog *xdp.Program
	var allow privsep.Allowance
	if len(cfg.Server.XDP.Interfaces) > 0 {
		if prog, err = startXDP(cfg, log); err != nil {
			closeFiles(first)
			return err
		}
		defer func() {
			if err := prog.Close(); err != nil {
				log.Warn("XDP fast path: close", "err", err)
			}
		}()
		allow = privsep.AllowXDPMaps
	}
	// Everything is open: the keeper keeps only what it needs from here.
	kept, bounded, err := privsep.DropKeeperCaps()
	if err != nil {
		closeFiles(first)
		return err
	}
	if err := privsep.Confine(privsep.RoleKeeper, cfg.Privsep.Filter, allow); err != nil {
		closeFiles(first)
		return err
	}
	log.Info("confined", "role", "keeper", "capabilities", fmt.Sprint(kept), "bounding_set_shrunk", bounded,
		"seccomp", cfg.Privsep.Filter == config.FilterKill)
	p := parent{ctx: ctx, cfg: cfg, log: log, exe: exe, self: self, configPath: configPath, config: conf, cred: cred, keeper: keeper,
		toServer: toServer, fromEngine: fromEngine, ctl: ctl, first: first, xdp: prog}
	children := []privsep.Child{{Name: "server", Command: p.serverCommand}, {Name: "engine", Command: p.engineCommand}}
	return privsep.Supervise(ctx, children, privsep.Restart{Never: !cfg.Privsep.Restart}, log)
}

// parent is the state of RunPrivsep that the children's commands use.
type parent struct {
	ctx                  context.Context // the daemon's life
	cfg                  *config.Config
	log                  *slog.Logger
	exe, configPath      string
	self                 *os.File // the program the children are started from (selfExec), or nil
	config               *os.File // the configuration as the keeper read it, sealed
	cred                 *syscall.Credential
	keeper               *privsep.Keeper
	toServer, fromEngine *net.UnixConn // the state socketpair: the server's end, the engine's
	ctl                  *net.UnixListener
	// mu guards first: the server's sockets, bound before the first
	// start, so that a failure to bind stops the daemon at once.
	mu    sync.Mutex
	first []*os.File
	// xdp is the XDP fast path, or nil.
	xdp *xdp.Program
}

// selfExec returns what the children are started from: this program's
// own file, held open from the start (and started as /proc/self/fd/N),
// so that a child started again after the file on disk was replaced (an
// upgrade) runs the keeper's program, which agrees with it on the
// descriptors it hands over. Where that cannot be had, it returns nil,
// and the children are started from the program's path.
//
// The descriptor is the highest the process may have: Go's fork and exec
// moves and sets descriptors up to twice the number it hands over, and
// must not reach it (command checks).
func selfExec(log *slog.Logger) *os.File {
	fd, err := unix.Open("/proc/self/exe", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		log.Warn("the children will be started from the program's path, which an upgrade may replace", "err", err)
		return nil
	}
	var lim unix.Rlimit
	err = unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
	high := -1
	if err == nil {
		high, err = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, int(min(lim.Cur, 1<<20))-1)
	}
	unix.Close(fd)
	if err != nil {
		log.Warn("the children will be started from the program's path, which an upgrade may replace", "err", err)
		return nil
	}
	return os.NewFile(uintptr(high), "meridian")
}

// command returns the command of a child in role: the configuration at
// configFD, files from firstFD. On an error it closes files.
func (p *parent) command(role string, files []*os.File, env ...string) (*exec.Cmd, error) {
	fd, err := unix.FcntlInt(p.config.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		closeFiles(files)
		return nil, fmt.Errorf("privsep: %w", err)
	}
	cmd := exec.Command(p.exe, "daemon", "--config", p.configPath)
	if p.self != nil && int(p.self.Fd()) > 2*(len(files)+4)+1 {
		cmd.Path = fmt.Sprintf("/proc/self/fd/%d", p.self.Fd()) // argv[0] stays the program's name
	}
	cmd.Env = append([]string{roleEnv + "=" + role}, env...)
	if tz, ok := os.LookupEnv("TZ"); ok { // the children log in the parent's zone
		cmd.Env = append(cmd.Env, "TZ="+tz)
	}
	cmd.ExtraFiles = append([]*os.File{os.NewFile(uintptr(fd), "config")}, files...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	return cmd, nil
}

func (p *parent) serverCommand() (privsep.Start, error) {
	p.mu.Lock()
	files := p.first
	p.first = nil
	p.mu.Unlock()
	if files == nil {
		var err error
		if files, err = serverFiles(p.cfg, p.log); err != nil {
			return privsep.Start{}, err
		}
	}
	state, err := p.toServer.File()
	if err != nil {
		closeFiles(files)
		return privsep.Start{}, err
	}
	env := []string{socketsEnv + "=" + strconv.Itoa(len(files))}
	files = append(files, state)
	var exited func()
	if p.xdp != nil {
		maps, err := p.xdp.MapFiles()
		if err != nil {
			closeFiles(files)
			return privsep.Start{}, err
		}
		files = append(files, maps...)
		env = append(env, xdpEnv+"="+strconv.Itoa(len(maps)))
		exited = func() {
			// No one publishes to the fast path until the next server
			// does: it passes requests on to the sockets (which no one
			// answers either) rather than serve a state that ages; also
			// while the daemon stops, until it is detached.
			if err := p.xdp.Off(); err != nil {
				p.log.Error("XDP fast path: cannot turn it off after the server's exit", "err", err)
				return
			}
			if p.ctx.Err() == nil {
				p.log.Info("XDP fast path off until the next server publishes")
			}
		}
	}
	// The supervisor closes the files once the server has them.
	cmd, err := p.command("server", files, env...)
	if err != nil {
		return privsep.Start{}, err
	}
	return privsep.Start{Cmd: cmd, Exited: exited}, nil
}

func (p *parent) engineCommand() (privsep.Start, error) {
	mine, theirs, err := privsep.SocketPair()
	if err != nil {
		return privsep.Start{}, err
	}
	var files []*os.File
	var env []string
	add := func(f *os.File, err error) error {
		if err == nil {
			files = append(files, f)
		}
		return err
	}
	err = add(theirs.File())
	theirs.Close() // the file is a descriptor of its own
	if err == nil {
		err = add(p.fromEngine.File())
	}
	if err == nil && p.ctl != nil {
		err = add(p.ctl.File())
		env = append(env, controlEnv+"=1")
	}
	var cmd *exec.Cmd
	if err != nil {
		closeFiles(files)
	} else {
		// The supervisor closes the files once the engine has them
		// (command, on an error).
		cmd, err = p.command("engine", files, env...)
	}
	if err != nil {
		mine.Close()
		return privsep.Start{}, err
	}
	started := make(chan *os.Process, 1)
	gone := make(chan struct{})
	done := make(chan struct{})
	// Once this engine's process is known, the keeper serves it until it
	// hangs up or dies (its end is then closed below), or is taken for
	// hostile.
	go func() {
		defer close(done)
		var proc *os.Process
		select {
		case proc = <-started:
		case <-gone: // it did not start
			return
		}
		switch err := p.keeper.Serve(mine); {
		case errors.Is(err, privsep.ErrHostile):
			// An engine that keeps asking for what it may not have is
			// taken for compromised: it is killed, and started afresh.
			// os.Process signals through a pidfd: never another process
			// that got the pid since.
			p.log.Error("clock keeper: killing the engine", "pid", proc.Pid, "err", err)
			// A kill error means the engine is gone already.
			_ = proc.Kill()
		case err != nil && !errors.Is(err, net.ErrClosed):
			p.log.Error("clock keeper: the engine's session ended", "err", err)
		}
	}()
	return privsep.Start{Cmd: cmd,
		Started: func(proc *os.Process) { started <- proc },
		Exited: func() {
			// Its session ends with it: no request is carried out after
			// its death is seen, and a slew it asked for ends.
			close(gone)
			mine.Close()
			<-done
		}}, nil
}

// serverFiles binds the server's sockets and returns them as files for a
// child.
func serverFiles(cfg *config.Config, log *slog.Logger) ([]*os.File, error) {
	conns, err := listenConns(cfg, log)
	if err != nil {
		return nil, err
	}
	var files []*os.File
	for i, c := range conns {
		f, err := c.File()
		if err != nil {
			closeFiles(files)
			for _, c := range conns[i:] {
				_ = c.Close() // the error below is what matters
			}
			return nil, err
		}
		files = append(files, f)
		// The parent's own descriptor goes; the socket lives on in f.
		_ = c.Release()
	}
	return files, nil
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		// Close errors are ignored: the descriptor is gone either way.
		_ = f.Close()
	}
}

// childCredential returns the credential the children run with: as root,
// user name's, with no supplementary group; started as another user (with
// capabilities from systemd), nil: the children keep that user, which
// must be name, since changing it would take capabilities the daemon does
// not have.
func childCredential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("privsep.user %q: %w (create it with useradd --system --no-create-home %s, or run meridian daemon --no-privsep)", name, err, name)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil || uid == 0 || gid == 0 {
		return nil, fmt.Errorf("privsep.user %q: uid %s, gid %s: not an unprivileged user", name, u.Uid, u.Gid)
	}
	if euid := os.Geteuid(); euid != 0 {
		if uint64(euid) != uid || uint64(os.Getegid()) != gid {
			return nil, fmt.Errorf("privsep.user %q (uid %d, gid %d): the daemon runs as uid %d, gid %d with capabilities, not as root, so its children run as that same user; set privsep.user to its name, start the daemon as root, or run it as one process (meridian daemon --no-privsep)",
				name, uid, gid, euid, os.Getegid())
		}
		return nil, nil
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// stateDirs returns the directories of the engine's state files, which
// Landlock lets it write.
func stateDirs(cfg *config.Config) []string {
	var dirs []string
	for _, f := range []string{cfg.Client.DriftFile, cfg.Client.StepFile} {
		if f != "" {
			dirs = append(dirs, filepath.Dir(f))
		}
	}
	return dirs
}

// newKeeper returns the clock keeper: the kernel's clock (or none),
// under the limits of the client's configuration, with its own step file,
// which must be out of the children's reach: in a directory of this
// process's user that no one else may write in, and none of engineDirs
// (the engine's, when it runs as the same user).
func newKeeper(cfg *config.Config, log *slog.Logger, engineDirs []string) (*privsep.Keeper, error) {
	c := cfg.Client
	kc := privsep.KeeperConfig{Clock: clock.Kernel{}, Policy: privsep.Policy{MaxStep: c.Panic}, StepBudget: c.StepBudget,
		StepFile: cfg.Privsep.KeeperStepFile, Log: log.With("part", "keeper")}
	if c.Clock == config.ClockNone || !c.Enabled() {
		kc.Clock = clock.None{}
	}
	if c.Panic == 0 {
		kc.Policy.MaxStep = -1
	}
	if c.StepBudget == 0 {
		kc.StepBudget = -1
	}
	if f := kc.StepFile; f != "" {
		if err := keeperDir(filepath.Dir(f), engineDirs); err != nil {
			return nil, fmt.Errorf("privsep.keeper-step-file: %w", err)
		}
	}
	return privsep.NewKeeper(kc)
}

// keeperDir checks that dir belongs to this process's user, no one else
// may write in it, and it is in none of engineDirs (which Landlock lets
// the engine write in, with all they hold).
func keeperDir(dir string, engineDirs []string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || st.Uid != uint32(os.Geteuid()) || fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s must be a directory of uid %d's that no one else may write in", dir, os.Geteuid())
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	for _, d := range engineDirs {
		ed, err := filepath.EvalSymlinks(d)
		if err != nil {
			ed = filepath.Clean(d)
		}
		if rel, err := filepath.Rel(ed, real); err == nil && filepath.IsLocal(rel) {
			return fmt.Errorf("%s is in %s, the directory of the engine's state files, which it may write", dir, d)
		}
	}
	return nil
}

// cloexecAll marks every descriptor above standard error close-on-exec:
// the ones this process inherited (Go's own are already).
func cloexecAll() error {
	err := unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	// Before Linux 5.11: one by one.
	fds, rerr := os.ReadDir("/proc/self/fd")
	if rerr != nil {
		return fmt.Errorf("privsep: close-on-exec: %w, %w", err, rerr)
	}
	for _, e := range fds {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}
