package bench

import (
	"testing"
	"time"
)

func TestOpenLoopSchedule(t *testing.T) {
	for _, tt := range []struct {
		rate       uint64
		start, end time.Duration
		sockets    uint64
		measured   uint64
	}{
		{2000, 0, time.Second, 16, 2000},
		{2000, time.Second, 2 * time.Second, 64, 2000},
		{3, 0, 1500 * time.Millisecond, 2, 5}, // k = 0..4 at 0, 1/3, 2/3, 1, 4/3 s
		{7, 100 * time.Millisecond, 1100 * time.Millisecond, 3, 7},
		{1, 0, 10 * time.Second, 64, 10},
		{10_000_000, 0, 10 * time.Minute, 1024, 6_000_000_000},
	} {
		p := &plan{rate: tt.rate, sockets: tt.sockets, start: int64(tt.start), end: int64(tt.end)}
		p.kStart, p.kEnd = p.kAt(p.start), p.kAt(p.end)
		if got := p.kEnd - p.kStart; got != tt.measured {
			t.Errorf("rate %d window [%v, %v): %d measured; want %d", tt.rate, tt.start, tt.end, got, tt.measured)
		}
		// The sockets' shares add up to the schedule.
		var sum, all uint64
		for g := range int(tt.sockets) {
			sum += p.jAt(p.kEnd, g) - p.jAt(p.kStart, g)
			all += p.jAt(p.kEnd, g)
		}
		if sum != tt.measured || all != p.kEnd {
			t.Errorf("rate %d: sockets' shares add up to %d measured and %d in all; want %d %d", tt.rate, sum, all, tt.measured, p.kEnd)
		}
		// due and timeOf agree: request k is due exactly from timeOf(k).
		for _, k := range []uint64{0, 1, 2, p.kStart, p.kEnd - 1} {
			at := p.timeOf(k)
			if p.due(at) <= k || (at > 0 && p.due(at-1) > k) {
				t.Errorf("rate %d: request %d due at %d, but due(%d) = %d and due(%d) = %d",
					tt.rate, k, at, at, p.due(at), at-1, p.due(at-1))
			}
		}
		// Brute force for the small cases: request k is measured when
		// k/rate s lies in [start, end), in exact arithmetic.
		if tt.rate*uint64(tt.end/time.Second+1) < 100_000 {
			var n uint64
			for k := range p.kEnd + 10 {
				if k*1e9 >= uint64(p.start)*tt.rate && k*1e9 < uint64(p.end)*tt.rate {
					n++
					if k < p.kStart || k >= p.kEnd {
						t.Errorf("rate %d: request %d measured but outside [%d, %d)", tt.rate, k, p.kStart, p.kEnd)
					}
				}
			}
			if n != tt.measured {
				t.Errorf("rate %d: brute force finds %d measured; want %d", tt.rate, n, tt.measured)
			}
		}
		if p.due(p.end+int64(time.Hour)) != p.kEnd {
			t.Errorf("rate %d: due after the end = %d; want kEnd %d", tt.rate, p.due(p.end+int64(time.Hour)), p.kEnd)
		}
	}
}
