package clock

import (
	"fmt"
	"math"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meridian-ntp/meridian/internal/ntp"
)

// Kernel is the system clock, CLOCK_REALTIME, steered through adjtimex:
// the frequency by the kernel's frequency offset (±500 ppm) and, beyond
// it, by the tick length (±10%); steps by ADJ_SETOFFSET; leap seconds by
// STA_INS and STA_DEL; the synchronization status by STA_UNSYNC, maxerror
// and esterror. Setting anything needs CAP_SYS_TIME; reading does not.
type Kernel struct{}

var _ Clock = Kernel{}

// The kernel's units: the frequency offset is in ppm scaled by 2^16; the
// tick, the length of a clock tick in µs, is nominally 10 000 (USER_HZ
// is 100), and each µs of it is 100 ppm.
const (
	freqScale   = 1 << 16
	nominalTick = 10000
	ppmPerTick  = 100
	maxFreqPPM  = 500
	maxTickDiff = nominalTick / 10
)

// Now reads the system clock.
func (Kernel) Now() time.Time { return time.Now() }

// FromSystem returns t: Kernel is the system clock.
func (Kernel) FromSystem(t time.Time) time.Time { return t }

// freqTimex returns the adjtimex request that sets a frequency correction
// of ppm: within ±500 ppm by the frequency offset alone, the tick at its
// nominal length; beyond, by whole ticks and the rest as the offset.
func freqTimex(ppm float64) (unix.Timex, error) {
	if math.IsNaN(ppm) || math.Abs(ppm) > maxTickDiff*ppmPerTick+maxFreqPPM {
		return unix.Timex{}, fmt.Errorf("clock: frequency correction %v ppm out of range", ppm)
	}
	tick := 0
	if math.Abs(ppm) > maxFreqPPM {
		tick = int(math.Round(ppm / ppmPerTick))
		tick = max(-maxTickDiff, min(maxTickDiff, tick))
	}
	rest := ppm - float64(tick*ppmPerTick)
	return unix.Timex{Modes: unix.ADJ_FREQUENCY | unix.ADJ_TICK,
		Freq: int64(math.Round(rest * freqScale)), Tick: int64(nominalTick + tick)}, nil
}

// frequencyOf returns the frequency correction a Timex read from the
// kernel describes, in ppm.
func frequencyOf(tx *unix.Timex) float64 {
	return float64(tx.Tick-nominalTick)*ppmPerTick + float64(tx.Freq)/freqScale
}

// SetFrequency sets the frequency correction.
func (Kernel) SetFrequency(ppm float64) error {
	tx, err := freqTimex(ppm)
	if err != nil {
		return err
	}
	return adjtimex(&tx)
}

// Frequency reads the frequency correction.
func (Kernel) Frequency() (float64, error) {
	var tx unix.Timex
	if err := adjtimex(&tx); err != nil {
		return 0, err
	}
	return frequencyOf(&tx), nil
}

// stepTimex returns the adjtimex request that adds d to the clock.
func stepTimex(d time.Duration) unix.Timex {
	sec := int64(d / time.Second)
	ns := int64(d % time.Second)
	if ns < 0 {
		sec--
		ns += int64(time.Second)
	}
	// With ADJ_NANO, the Usec field holds nanoseconds.
	return unix.Timex{Modes: unix.ADJ_SETOFFSET | unix.ADJ_NANO, Time: unix.Timeval{Sec: sec, Usec: ns}}
}

// Step adds d to the clock.
func (Kernel) Step(d time.Duration) error {
	tx := stepTimex(d)
	return adjtimex(&tx)
}

// leapStatus returns status with the leap bits set for l.
func leapStatus(status int32, l ntp.Leap) int32 {
	status &^= unix.STA_INS | unix.STA_DEL
	switch l {
	case ntp.LeapInsert:
		status |= unix.STA_INS
	case ntp.LeapDelete:
		status |= unix.STA_DEL
	}
	return status
}

// SetLeap arms or disarms a leap second.
func (Kernel) SetLeap(l ntp.Leap) error {
	var tx unix.Timex
	if err := adjtimex(&tx); err != nil {
		return err
	}
	tx = unix.Timex{Modes: unix.ADJ_STATUS, Status: leapStatus(tx.Status, l)}
	return adjtimex(&tx)
}

// statusTimex returns the adjtimex request that records the
// synchronization status, given the status read before.
func statusTimex(status int32, synced bool, maxErr, estErr time.Duration) unix.Timex {
	if synced {
		status &^= unix.STA_UNSYNC
	} else {
		status |= unix.STA_UNSYNC
	}
	return unix.Timex{Modes: unix.ADJ_STATUS | unix.ADJ_MAXERROR | unix.ADJ_ESTERROR, Status: status,
		Maxerror: maxErr.Microseconds(), Esterror: estErr.Microseconds()}
}

// SetStatus records the synchronization status.
func (Kernel) SetStatus(synced bool, maxErr, estErr time.Duration) error {
	var tx unix.Timex
	if err := adjtimex(&tx); err != nil {
		return err
	}
	tx = statusTimex(tx.Status, synced, maxErr, estErr)
	return adjtimex(&tx)
}

// adjtimex calls clock_adjtime on CLOCK_REALTIME; a Timex with no mode
// bits only reads.
func adjtimex(tx *unix.Timex) error {
	if _, err := unix.ClockAdjtime(unix.CLOCK_REALTIME, tx); err != nil {
		return fmt.Errorf("clock: adjtimex: %w", err)
	}
	return nil
}
