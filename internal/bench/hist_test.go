package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsTile(t *testing.T) {
	// Every bucket starts where the previous one ends, and bucket maps
	// each value back into the bucket whose range holds it.
	var next uint64
	for i := range numBuckets {
		low, width := bucketRange(i)
		if low != next {
			t.Fatalf("bucket %d starts at %d; want %d", i, low, next)
		}
		if i >= 2*subCount && width*subCount > low {
			t.Fatalf("bucket %d [%d, +%d) is wider than 1/%d of its start", i, low, width, subCount)
		}
		for _, v := range []uint64{low, low + width/2, low + width - 1} {
			if got := bucket(v); got != i {
				t.Fatalf("bucket(%d) = %d; want %d", v, got, i)
			}
		}
		next = low + width
	}
	if next != 1<<maxBits {
		t.Errorf("buckets end at %d; want %d", next, uint64(1)<<maxBits)
	}
	if got := bucket(math.MaxUint64); got != numBuckets-1 {
		t.Errorf("bucket(max) = %d; want the last", got)
	}
}

// nearestRank is the reference percentile: the sample of rank ⌈q·n⌉.
func nearestRank(sorted []time.Duration, q float64) time.Duration {
	r := int(math.Ceil(q * float64(len(sorted))))
	return sorted[min(max(r, 1), len(sorted))-1]
}

func TestQuantileMatchesSortedReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() time.Duration{
		"constant":    func() time.Duration { return 42 * time.Microsecond },
		"small exact": func() time.Duration { return time.Duration(rng.IntN(256)) },
		"uniform":     func() time.Duration { return time.Duration(rng.Int64N(int64(time.Second))) },
		"lognormal": func() time.Duration {
			return time.Duration(math.Exp(rng.NormFloat64()*1.5 + math.Log(30e3)))
		},
		"bimodal": func() time.Duration {
			if rng.IntN(100) == 0 {
				return time.Duration(rng.Int64N(int64(time.Second)))
			}
			return 20*time.Microsecond + time.Duration(rng.IntN(5000))
		},
	}
	qs := []float64{0, 0.001, 0.5, 0.9, 0.99, 0.999, 1}
	for name, gen := range dists {
		for _, n := range []int{1, 2, 10, 999, 100_000} {
			var h Histogram
			ref := make([]time.Duration, n)
			for i := range ref {
				ref[i] = gen()
				h.Record(ref[i])
			}
			slices.Sort(ref)
			if h.Count() != uint64(n) || h.Min() != ref[0] || h.Max() != ref[n-1] {
				t.Errorf("%s n=%d: count %d min %v max %v; want %d %v %v",
					name, n, h.Count(), h.Min(), h.Max(), n, ref[0], ref[n-1])
			}
			for _, q := range qs {
				want := nearestRank(ref, q)
				got := h.Quantile(q)
				// The bucket midpoint is within half a bucket, at most
				// 1/256 of the value, of the true sample.
				if d := got - want; d.Abs() > want/(2*subCount) {
					t.Errorf("%s n=%d: Quantile(%v) = %v; want %v ± %v", name, n, q, got, want, want/(2*subCount))
				}
			}
		}
	}
}

func TestHistogramMergeAndMean(t *testing.T) {
	var a, b, all Histogram
	for i := range 1000 {
		d := time.Duration(i) * time.Microsecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var m Histogram
	m.Merge(&Histogram{})
	m.Merge(&a)
	m.Merge(&b)
	if m != all {
		t.Errorf("merged histogram differs from the one that recorded everything")
	}
	if got, want := m.Mean(), 499500*time.Nanosecond; got != want {
		t.Errorf("Mean = %v; want %v", got, want)
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 || empty.Mean() != 0 || empty.Max() != 0 {
		t.Error("empty histogram is not all zero")
	}
	var neg Histogram
	neg.Record(-time.Second)
	if neg.Min() != 0 || neg.Quantile(0.5) != 0 {
		t.Errorf("negative sample: min %v p50 %v; want 0", neg.Min(), neg.Quantile(0.5))
	}
	if neg.Quantile(math.NaN()) != 0 || neg.Quantile(-1) != 0 || neg.Quantile(2) != 0 {
		t.Error("out-of-range q")
	}
}

func TestHistogramRecordAllocs(t *testing.T) {
	h := new(Histogram)
	d := time.Duration(1)
	if n := testing.AllocsPerRun(1000, func() {
		h.Record(d)
		d = d*3 + 7
	}); n != 0 {
		t.Errorf("Record allocates %v times", n)
	}
}
