package privsep

import (
	"fmt"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsyscall "github.com/landlock-lsm/go-landlock/landlock/syscall"
)

// resolverFiles are the files Go's resolver reads to look names up.
var resolverFiles = []string{"/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf"}

// Landlock confines role's file system access, for good, on every
// thread: the server may open nothing; the engine its state directories
// (stateDirs, read and write) and, to read only, the files the resolver
// reads. Neither may reach a process outside its domain by
// signal or abstract unix socket. On a kernel without Landlock it does
// as much as the kernel can (nothing, without it) and reports the ABI
// version it got, 0 for none.
func Landlock(role Role, stateDirs ...string) (abi int, err error) {
	var rules []landlock.Rule
	switch role {
	case RoleServer:
	case RoleEngine:
		rules = append(rules, landlock.ROFiles(resolverFiles...).IgnoreIfMissing())
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
	return landlockABI(), nil
}

// landlockABI returns the kernel's Landlock ABI version, 0 if it has
// none.
func landlockABI() int {
	v, err := llsyscall.LandlockGetABIVersion()
	if err != nil {
		return 0
	}
	return v
}
