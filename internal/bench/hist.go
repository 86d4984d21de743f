package bench

import (
	"math"
	"math/bits"
	"time"
)

// The histogram is log-linear, like HdrHistogram: values below 2·subCount
// have a bucket each, and every larger power-of-two range [2^e, 2^(e+1)) is
// cut into subCount equal buckets. A bucket is thus never wider than
// 1/subCount of its lower bound, and the midpoint reported for it is within
// 1/(2·subCount) (0.39%) of any value it holds.
const (
	subBits  = 7
	subCount = 1 << subBits
	// maxBits bounds the values the buckets cover: up to 2^41 ns, about
	// 36 minutes. Larger values land in the last bucket; Max stays exact.
	maxBits    = 41
	numBuckets = (maxBits-subBits)*subCount + subCount
)

// Histogram records durations with about 0.4% precision in fixed memory.
// Recording never allocates. The zero value is empty and ready to use. A
// Histogram is not safe for concurrent use.
type Histogram struct {
	counts   [numBuckets]uint64
	n        uint64
	sum      float64 // ns, for the mean
	min, max time.Duration
}

// bucket returns the index of the bucket that holds v ns.
func bucket(v uint64) int {
	if v >= 1<<maxBits {
		return numBuckets - 1
	}
	if v < 2*subCount {
		return int(v)
	}
	shift := bits.Len64(v) - (subBits + 1)
	return shift*subCount + int(v>>shift)
}

// bucketRange returns the lowest value of bucket i and its width, in ns.
func bucketRange(i int) (low, width uint64) {
	if i < 2*subCount {
		return uint64(i), 1
	}
	shift := i/subCount - 1
	m := uint64(i%subCount + subCount)
	return m << shift, 1 << shift
}

// Record adds one duration. Negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucket(uint64(d))]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
	h.sum += float64(d)
}

// Merge adds the samples of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count returns the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Min returns the smallest sample, or 0 if there is none.
func (h *Histogram) Min() time.Duration { return h.min }

// Max returns the largest sample, or 0 if there is none.
func (h *Histogram) Max() time.Duration { return h.max }

// Mean returns the average sample, or 0 if there is none.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(math.Round(h.sum / float64(h.n)))
}

// Quantile returns the sample of rank ⌈q·n⌉ in ascending order (the
// nearest-rank percentile; q = 0.99 is p99) within the histogram's
// precision: the midpoint of that sample's bucket, kept within [Min, Max].
// q is clamped to [0, 1]; q = 1 gives Max exactly. It returns 0 if there
// are no samples.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if !(q < 1) { // also catches NaN
		return h.max
	}
	rank := uint64(1)
	if q > 0 {
		rank = max(uint64(math.Ceil(q*float64(h.n))), 1)
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			low, width := bucketRange(i)
			v := time.Duration(low + width/2)
			return min(max(v, h.min), h.max)
		}
	}
	return h.max // not reached: the counts add up to n
}
