package clock

import (
	"math"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meridian-ntp/meridian/internal/ntp"
)

func TestFreqTimex(t *testing.T) {
	for _, tt := range []struct {
		ppm  float64
		freq int64
		tick int64
	}{
		{0, 0, 10000},
		{12.5, 12.5 * 65536, 10000},
		{-500, -500 * 65536, 10000},
		{500.5, 0.5 * 65536, 10005},
		{-83333, -33 * 65536, 9167},
		{100500, 500 * 65536, 11000},
	} {
		tx, err := freqTimex(tt.ppm)
		if err != nil || tx.Freq != tt.freq || tx.Tick != tt.tick || tx.Modes != unix.ADJ_FREQUENCY|unix.ADJ_TICK {
			t.Errorf("freqTimex(%v) = freq %d, tick %d, modes %#x, %v; want %d, %d", tt.ppm, tx.Freq, tx.Tick, tx.Modes, err, tt.freq, tt.tick)
		}
		if got := frequencyOf(&tx); math.Abs(got-tt.ppm) > 1e-4 {
			t.Errorf("frequencyOf(freqTimex(%v)) = %v", tt.ppm, got)
		}
	}
	for _, bad := range []float64{math.NaN(), 100501, -1e9} {
		if _, err := freqTimex(bad); err == nil {
			t.Errorf("freqTimex(%v) succeeded", bad)
		}
	}
}

func TestStepTimex(t *testing.T) {
	for _, tt := range []struct {
		d       time.Duration
		sec, ns int64
	}{
		{1500 * time.Millisecond, 1, 500000000},
		{-1500 * time.Millisecond, -2, 500000000},
		{-time.Nanosecond, -1, 999999999},
		{10 * time.Second, 10, 0},
	} {
		tx := stepTimex(tt.d)
		if tx.Time.Sec != tt.sec || tx.Time.Usec != tt.ns || tx.Modes != unix.ADJ_SETOFFSET|unix.ADJ_NANO {
			t.Errorf("stepTimex(%v) = %d s %d ns, modes %#x; want %d s %d ns", tt.d, tx.Time.Sec, tx.Time.Usec, tx.Modes, tt.sec, tt.ns)
		}
	}
}

func TestStatusBits(t *testing.T) {
	st := int32(unix.STA_PLL | unix.STA_INS)
	if got := leapStatus(st, ntp.LeapDelete); got != unix.STA_PLL|unix.STA_DEL {
		t.Errorf("leapStatus(PLL|INS, delete) = %#x", got)
	}
	if got := leapStatus(st, ntp.LeapNone); got != unix.STA_PLL {
		t.Errorf("leapStatus(PLL|INS, none) = %#x", got)
	}
	tx := statusTimex(unix.STA_UNSYNC|unix.STA_INS, true, 3*time.Millisecond, 20*time.Microsecond)
	if tx.Status != unix.STA_INS || tx.Maxerror != 3000 || tx.Esterror != 20 {
		t.Errorf("statusTimex(synced) = %+v", tx)
	}
	if tx := statusTimex(0, false, 0, 0); tx.Status != unix.STA_UNSYNC {
		t.Errorf("statusTimex(unsynced) status %#x", tx.Status)
	}
}

// TestKernelReads reads the kernel's frequency correction, and as root
// writes the same value back: a write that changes nothing, which is all
// a test may do to this machine's clock.
func TestKernelReads(t *testing.T) {
	var tx unix.Timex
	if err := adjtimex(&tx); err != nil {
		t.Fatal(err)
	}
	before, err := Kernel{}.Frequency()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel frequency correction %.6f ppm (freq %d, tick %d), status %#x", before, tx.Freq, tx.Tick, tx.Status)
	if os.Geteuid() != 0 {
		t.Log("not root: the write that changes nothing is left out")
		return
	}
	// Only the canonical split of a frequency into tick and offset is
	// written back unchanged; with another, writing would change the
	// kernel's state, so the test leaves it.
	canon, err := freqTimex(before)
	if err != nil || canon.Tick != tx.Tick || canon.Freq != tx.Freq {
		t.Logf("kernel state freq %d tick %d is not what SetFrequency writes; not writing", tx.Freq, tx.Tick)
		return
	}
	if err := (Kernel{}).SetFrequency(before); err != nil {
		t.Fatal(err)
	}
	var after unix.Timex
	if err := adjtimex(&after); err != nil {
		t.Fatal(err)
	}
	if after.Freq != tx.Freq || after.Tick != tx.Tick {
		t.Errorf("after writing the same frequency: freq %d tick %d; want %d %d", after.Freq, after.Tick, tx.Freq, tx.Tick)
	}
}
