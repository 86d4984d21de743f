//go:build !linux

package bench

import "time"

// procResolution is the resolution of procCPU where it works.
const procResolution = 10 * time.Millisecond

func procCPU(int) (time.Duration, error) { return 0, errUnsupported }

func selfCPU() time.Duration { return 0 }

func cpusIdle([]int) (time.Duration, error) { return 0, errUnsupported }
