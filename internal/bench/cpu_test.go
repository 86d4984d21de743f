package bench

import (
	"os"
	"testing"
	"time"
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

func TestParseStatCPUs(t *testing.T) {
	stat := "cpu  1 2 3 4 5 6 7 8 0 0\n" +
		"cpu0 100 1 50 900 7 3 20 11 0 0\n" +
		"cpu1 10 0 5 1000 0 0 2 0 0 0\n" +
		"cpu10 1000 0 0 0 0 0 0 0 0 0\n" +
		"intr 1 2 3\n"
	// CPU 0: user+nice+system+irq+softirq = 100+1+50+3+20 = 174 ticks;
	// CPU 1: 17 ticks. CPU 10 must not be read for CPU 1.
	for _, tt := range []struct {
		cpus []int
		want time.Duration
	}{{[]int{0}, 1740 * time.Millisecond}, {[]int{1}, 170 * time.Millisecond}, {[]int{0, 1}, 1910 * time.Millisecond}, {[]int{10}, 10 * time.Second}} {
		if got, err := parseStatCPUs(stat, tt.cpus); err != nil || got != tt.want {
			t.Errorf("parseStatCPUs(%v) = %v, %v; want %v", tt.cpus, got, err, tt.want)
		}
	}
	for _, cpus := range [][]int{{2}, {100}} {
		if _, err := parseStatCPUs(stat, cpus); err == nil {
			t.Errorf("parseStatCPUs(%v) succeeded", cpus)
		}
	}
	if got, err := parseStatCPUs("cpu0 1 2 3 4 5 6 7\n", []int{0}); err != nil || got != 190*time.Millisecond {
		t.Errorf("parseStatCPUs of a first line = %v, %v; want 190ms", got, err)
	}
	if _, err := parseStatCPUs("cpu0 1 2 3\n", []int{0}); err == nil {
		t.Error("parseStatCPUs with a short line succeeded")
	}
	if _, err := parseStatCPUs("x\ncpu0 1 2 3 4 5 6 x 8\n", []int{0}); err == nil {
		t.Error("parseStatCPUs with a bad number succeeded")
	}
}

func TestCPUsBusy(t *testing.T) {
	busy, err := cpusBusy([]int{0})
	if err != nil || busy <= 0 {
		t.Errorf("cpusBusy([0]) = %v, %v; want some busy time", busy, err)
	}
}
