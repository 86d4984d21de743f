package bench

import (
	"context"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseStatCPU(t *testing.T) {
	// Fields 14 and 15 are utime 250 and stime 50 ticks; the command name
	// holds spaces and parentheses.
	stat := "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 100 1000 100"
	if got, err := parseStatCPU(stat); err != nil || got != 3*time.Second {
		t.Errorf("parseStatCPU = %v, %v; want 3s", got, err)
	}
	for _, bad := range []string{"", "1234 no parens", "1 (x) S 1 2 3", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 x 0"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("parseStatCPU(%q) succeeded", bad)
		}
	}
}

func TestProcCPUCountsAllThreads(t *testing.T) {
	before, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU on two other goroutines, so likely other threads, until
	// the process's total has moved by several ticks.
	stop := make(chan struct{})
	for range 2 {
		// The goroutine exits when stop is closed.
		go func() {
			x := 0
			for {
				select {
				case <-stop:
					return
				default:
					for i := range 100000 {
						x += i
					}
				}
			}
		}()
	}
	defer close(stop)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		after, err := procCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if after-before >= 50*time.Millisecond {
			return
		}
	}
	t.Error("procCPU did not grow while two goroutines spun")
	if _, err := procCPU(1 << 30); err == nil {
		t.Error("procCPU of a process that cannot exist succeeded")
	}
}

func TestParseStatIdle(t *testing.T) {
	stat := "cpu  1 2 3 4 5 6 7 8 0 0\n" +
		"cpu0 100 1 50 900 7 3 20 11 0 0\n" +
		"cpu1 10 0 5 1000 0 0 2 0 0 0\n" +
		"cpu10 0 0 0 1 2 0 0 3 0 0\n" +
		"intr 1 2 3\n"
	// CPU 0: idle+iowait+steal = 900+7+11 = 918 ticks; CPU 1: 1000 ticks.
	// CPU 10 must not be read for CPU 1.
	for _, tt := range []struct {
		cpus []int
		want time.Duration
	}{{[]int{0}, 9180 * time.Millisecond}, {[]int{1}, 10 * time.Second}, {[]int{0, 1}, 19180 * time.Millisecond}, {[]int{10}, 60 * time.Millisecond}} {
		if got, err := parseStatIdle(stat, tt.cpus); err != nil || got != tt.want {
			t.Errorf("parseStatIdle(%v) = %v, %v; want %v", tt.cpus, got, err, tt.want)
		}
	}
	for _, cpus := range [][]int{{2}, {100}} {
		if _, err := parseStatIdle(stat, cpus); err == nil {
			t.Errorf("parseStatIdle(%v) succeeded", cpus)
		}
	}
	if got, err := parseStatIdle("cpu0 1 2 3 4 5 6 7 8\n", []int{0}); err != nil || got != 170*time.Millisecond {
		t.Errorf("parseStatIdle of a first line = %v, %v; want 170ms", got, err)
	}
	if _, err := parseStatIdle("cpu0 1 2 3 4 5 6 7\n", []int{0}); err == nil {
		t.Error("parseStatIdle with a short line succeeded")
	}
	if _, err := parseStatIdle("x\ncpu0 1 2 3 x 5 6 7 8\n", []int{0}); err == nil {
		t.Error("parseStatIdle with a bad number succeeded")
	}
}

// TestServerCPUsBusy keeps CPU 0 busy in this process and checks that
// the run reports it busy.
func TestServerCPUsBusy(t *testing.T) {
	if _, err := cpusIdle([]int{0}); err != nil {
		t.Fatal(err)
	}
	var set unix.CPUSet
	set.Set(0)
	var stop atomic.Bool
	done := make(chan struct{})
	// The goroutine spins on CPU 0 until stop is set.
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			t.Error(err)
			return
		}
		for !stop.Load() {
		}
	}()
	s := startServer(t, nil, 0)
	r, err := Run(context.Background(), Config{Server: s.Addr, Concurrency: 1, Duration: 500 * time.Millisecond,
		Timeout: time.Second, ServerCPUs: []int{0}})
	stop.Store(true)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	// Stolen time (a shared virtual machine) is not busy time; half the
	// window is a bound that only a broken measurement misses.
	if r.CPU == nil || r.CPU.CPUs < r.Duration/2 || r.CPU.CPUs > r.Duration+2*procResolution {
		t.Errorf("CPU 0 busy %+v over a %v window in which a thread spun on it; want about the window", r.CPU, r.Duration)
	}
	j := r.ToJSON()
	if j.CPU == nil || len(j.CPU.ServerCPUs) != 1 || j.CPU.CPUsSeconds == nil || *j.CPU.CPUsSeconds != r.CPU.CPUs.Seconds() || j.CPU.CPUsPerReply == nil {
		t.Errorf("JSON CPU %+v; want server_cpus [0] and its busy time", j.CPU)
	}
}
