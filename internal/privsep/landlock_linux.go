package privsep

import (
	"fmt"
	"path/filepath"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsyscall "github.com/landlock-lsm/go-landlock/landlock/syscall"
)

// resolverFiles are the files Go's resolver reads to look names up.
var resolverFiles = []string{"/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf"}

// Landlock confines role's file system access, for good, on every
// thread: the server may open nothing; the engine its state directories
// (stateDirs, read and write) and, to read only, the directories of the
// files the resolver reads (/etc, and where /etc/resolv.conf links to);
// file permissions still keep it from what its user may not read. Neither may reach a process outside its domain by
// signal or abstract unix socket. On a kernel without Landlock it does
// as much as the kernel can (nothing, without it) and reports the ABI
// version it got, 0 for none.
func Landlock(role Role, stateDirs ...string) (abi int, err error) {
	var rules []landlock.Rule
	switch role {
	case RoleServer:
	case RoleEngine:
		// The directories, not just the files: a network manager replaces
		// /etc/resolv.conf by renaming a new file over it, and a rule on
		// a file holds only for the file it named.
		dirs := []string{"/etc"}
		for _, f := range resolverFiles {
			if real, err := filepath.EvalSymlinks(f); err == nil && filepath.Dir(real) != "/etc" {
				dirs = append(dirs, filepath.Dir(real))
			}
		}
		rules = append(rules, landlock.RODirs(dirs...).IgnoreIfMissing())
		for _, d := range stateDirs {
			if d != "" {
				rules = append(rules, landlock.RWDirs(d))
			}
		}
	default:
		return 0, fmt.Errorf("privsep: no Landlock rules for role %v", role)
	}
	cfg := landlock.V11.BestEffort()
	if err := cfg.RestrictPaths(rules...); err != nil {
		return 0, fmt.Errorf("privsep: Landlock for the %v: %w", role, err)
	}
	if err := cfg.RestrictScoped(); err != nil {
		return 0, fmt.Errorf("privsep: Landlock scopes for the %v: %w", role, err)
	}
	return LandlockABI(), nil
}

// LandlockABI returns the kernel's Landlock ABI version, 0 if it has
// none.
func LandlockABI() int {
	v, err := llsyscall.LandlockGetABIVersion()
	if err != nil {
		return 0
	}
	return v
}
