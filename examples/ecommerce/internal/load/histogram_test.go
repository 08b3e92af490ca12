package load

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestBucketBounds checks that every value falls in the bucket whose
// bounds hold it, at the edges of the scale and at random in between.
func TestBucketBounds(t *testing.T) {
	values := []int64{0, 1, 127, 128, 129, 255, 256, 257, 1<<20 - 1, 1 << 20, math.MaxInt64 - 1, math.MaxInt64}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		values = append(values, rng.Int64N(math.MaxInt64>>rng.IntN(63)))
	}
	for _, v := range values {
		i := bucketOf(v)
		if i < 0 || i >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d; want in [0, %d)", v, i, numBuckets)
		}
		if hi := upperBound(i); hi < v {
			t.Errorf("upperBound(bucketOf(%d)) = %d; want >= %d", v, hi, v)
		}
		if i > 0 {
			if lo := upperBound(i - 1); lo >= v {
				t.Errorf("upperBound(bucketOf(%d)-1) = %d; want < %d", v, lo, v)
			}
		}
		// Width under 1/128 of the value: the precision the doc promises.
		if i > 0 && v > 0 {
			if width := upperBound(i) - upperBound(i-1); float64(width) > float64(v)/128+1 {
				t.Errorf("bucket of %d is %d wide; want <= %d/128", v, width, v)
			}
		}
	}
}

// TestQuantileMatchesSortedSamples compares the histogram's percentiles
// with those of the sorted samples: never below, at most 1/128 above.
func TestQuantileMatchesSortedSamples(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for run := range 20 {
		var h histogram
		n := 1 + rng.IntN(5000)
		samples := make([]time.Duration, n)
		for i := range samples {
			// Log-normal-ish latencies from microseconds to seconds.
			samples[i] = time.Duration(math.Exp(rng.NormFloat64()*2+14)) + 1
			h.record(samples[i])
		}
		slices.Sort(samples)
		for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
			rank := max(int(math.Ceil(q*float64(n))), 1)
			want := samples[rank-1]
			got := h.quantile(q)
			if got < want || float64(got) > float64(want)*(1+1.0/128)+1 {
				t.Errorf("run %d: quantile(%v) = %v; want %v (+0.8%%)", run, q, got, want)
			}
		}
		if h.max != samples[n-1] {
			t.Errorf("run %d: max = %v; want %v", run, h.max, samples[n-1])
		}
	}
}

func TestQuantileEmpty(t *testing.T) {
	var h histogram
	if got := h.quantile(0.99); got != 0 {
		t.Errorf("quantile(0.99) of nothing = %v; want 0", got)
	}
}
