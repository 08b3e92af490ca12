package load

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: each power of two of nanoseconds
// is split into 1<<subBits equal buckets, so a percentile read from it is
// at most 1/128 (0.8%) above the true value, whatever the scale, as in an
// HDR histogram with two significant digits.
const subBits = 7

// numBuckets covers every non-negative int64 of nanoseconds: 7,296 buckets,
// 57 KiB, the same for a one-second run and a day-long one.
const numBuckets = (64 - subBits) << subBits

// histogram counts latencies in log-linear buckets. Keeping every sample
// and sorting would be exact, but its memory grows with the run (a ten
// minute run at 5,000 requests/s holds 3 million samples) and the progress
// line would sort them every second. It is not safe for concurrent use:
// the recorder guards it.
type histogram struct {
	counts [numBuckets]int64
	total  int64
	max    time.Duration
}

// bucketOf returns the index of the bucket holding v nanoseconds. Values
// under 1<<subBits have a bucket each; above, v's top subBits+1 bits pick
// the bucket, so buckets of the same power of two have the same width.
func bucketOf(v int64) int {
	if v < 1<<subBits {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - subBits - 1
	return (shift+1)<<subBits + int(v>>shift) - 1<<subBits
}

// upperBound returns the largest value of bucket i: what a percentile
// falling in that bucket reads as, so that percentiles err high, never low.
func upperBound(i int) int64 {
	if i < 1<<subBits {
		return int64(i)
	}
	shift := i>>subBits - 1
	mantissa := uint64(i&(1<<subBits-1)) + 1<<subBits
	// In uint64, the last bucket's bound, 1<<63 - 1, does not overflow.
	return int64((mantissa+1)<<shift - 1)
}

// record counts one latency.
func (h *histogram) record(d time.Duration) {
	h.counts[bucketOf(int64(d))]++
	h.total++
	h.max = max(h.max, d)
}

// quantile returns the latency under which a fraction q of the recorded
// ones fall (the value of rank ceil(q×n), as its bucket's upper bound,
// never above the largest recorded); 0 with nothing recorded.
func (h *histogram) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.total)))
	rank = min(max(rank, 1), h.total)
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(upperBound(i)), h.max)
		}
	}
	return h.max
}
