package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// userHZ is the unit of the CPU times in /proc/PID/stat. The kernel
// reports them in USER_HZ ticks, which is 100 on every architecture Go
// supports on Linux.
const userHZ = 100

// procResolution is the resolution of procCPU.
const procResolution = time.Second / userHZ

// procCPU returns the user plus system CPU time used so far by process
// pid: all its threads, live and exited, as /proc/PID/stat sums them for
// the whole thread group. Its resolution is 1/userHZ s.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU returns utime+stime from the contents of a /proc/PID/stat
// file. The command name, field 2, is in parentheses and may itself hold
// spaces and parentheses, so fields are counted after its last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat: no command name")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name", len(f))
	}
	var ticks uint64
	for _, s := range f[11:13] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: %w", err)
		}
		ticks += v
	}
	return time.Duration(ticks) * (time.Second / userHZ), nil
}

// selfCPU returns the user plus system CPU time this process has used.
func selfCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0 // cannot fail for RUSAGE_SELF with a valid pointer
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpusIdle returns the time the given CPUs spent idle so far, summed:
// idle, iowait and steal time from /proc/stat. The kernel measures idle
// time exactly when it stops the tick on an idle CPU, while it samples
// user and system time at ticks, which misses much of a process that
// wakes and sleeps thousands of times a second; so the busy time of a
// CPU over a window is the window less this idle time, not the sum of the
// other fields. Its resolution is 1/userHZ s per CPU.
func cpusIdle(cpus []int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseStatIdle(string(b), cpus)
}

// parseStatIdle is cpusIdle on the contents of /proc/stat.
func parseStatIdle(stat string, cpus []int) (time.Duration, error) {
	var ticks uint64
	for _, cpu := range cpus {
		prefix := "cpu" + strconv.Itoa(cpu) + " "
		i := strings.Index("\n"+stat, "\n"+prefix)
		if i < 0 {
			return 0, fmt.Errorf("/proc/stat: no CPU %d", cpu)
		}
		line := stat[i+len(prefix):]
		line, _, _ = strings.Cut(line, "\n")
		f := strings.Fields(line)
		// user nice system idle iowait irq softirq steal ...
		if len(f) < 8 {
			return 0, fmt.Errorf("/proc/stat: CPU %d: %d fields", cpu, len(f))
		}
		for _, k := range []int{3, 4, 7} {
			v, err := strconv.ParseUint(f[k], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/stat: CPU %d: %w", cpu, err)
			}
			ticks += v
		}
	}
	return time.Duration(ticks) * (time.Second / userHZ), nil
}
