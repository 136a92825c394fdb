package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram layout: values below 2^subBits nanoseconds get a bucket each;
// above, every power of two is split into 2^subBits equal buckets, so a
// bucket's width is at most 1/32 of its lower bound (HDR-style log-linear
// buckets). Values at or above 2^maxExp ns (about 18 minutes) land in the
// last bucket too, whose percentiles are the maximum.
const (
	subBits    = 5
	subBuckets = 1 << subBits
	maxExp     = 40
	numBuckets = (maxExp - subBits + 1) * subBuckets
)

// Histogram counts durations in fixed log-linear buckets, so its memory
// does not grow with the number of samples. Percentiles are reported as
// the upper bound of the bucket they fall in, capped at the exact maximum:
// within about 3 % of the true value. It is safe for concurrent use; the
// zero value is empty and ready.
type Histogram struct {
	counts [numBuckets]atomic.Int64
	total  atomic.Int64
	sum    atomic.Int64
	max    atomic.Int64
}

// bucketOf returns the bucket index of v nanoseconds.
func bucketOf(v int64) int {
	if v < subBuckets {
		return int(max(v, 0))
	}
	exp := bits.Len64(uint64(v)) - subBits - 1
	i := (exp+1)<<subBits + int(v>>exp) - subBuckets
	return min(i, numBuckets-1)
}

// bucketUpper returns the largest value that falls in bucket i.
func bucketUpper(i int) int64 {
	if i < subBuckets {
		return int64(i)
	}
	exp := i>>subBits - 1
	mant := int64(i&(subBuckets-1) + subBuckets)
	return (mant+1)<<exp - 1
}

// Record adds one sample. Negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(v)].Add(1)
	h.total.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count returns the number of samples.
func (h *Histogram) Count() int64 {
	return h.total.Load()
}

// Max returns the largest sample, 0 when empty.
func (h *Histogram) Max() time.Duration {
	return time.Duration(h.max.Load())
}

// Mean returns the average sample, 0 when empty.
func (h *Histogram) Mean() time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Percentile returns the smallest bucket bound at or below which at least
// q (0 to 1) of the samples lie, capped at Max; 0 when empty.
func (h *Histogram) Percentile(q float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	// The nearest rank, ceil(q × n); the slack keeps a product that
	// floating point puts a hair above a whole number on that number.
	rank := int64(math.Ceil(q*float64(n) - 1e-6))
	rank = min(max(rank, 1), n)
	var seen int64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank && i < numBuckets-1 {
			return min(time.Duration(bucketUpper(i)), h.Max())
		}
		// The last bucket holds every larger value too: no bound but Max.
	}
	return h.Max()
}

// Summary is a Histogram's figures for the report. Without samples every
// figure but Count is -1: none of them happened.
type Summary struct {
	Count int64    `json:"count"`
	Mean  Duration `json:"mean_ms"`
	P50   Duration `json:"p50_ms"`
	P90   Duration `json:"p90_ms"`
	P99   Duration `json:"p99_ms"`
	Max   Duration `json:"max_ms"`
}

// Summary returns the histogram's count, mean, p50, p90, p99 and max.
func (h *Histogram) Summary() Summary {
	if h.Count() == 0 {
		return Summary{Mean: -1, P50: -1, P90: -1, P99: -1, Max: -1}
	}
	return Summary{
		Count: h.Count(),
		Mean:  Duration(h.Mean()),
		P50:   Duration(h.Percentile(0.50)),
		P90:   Duration(h.Percentile(0.90)),
		P99:   Duration(h.Percentile(0.99)),
		Max:   Duration(h.Max()),
	}
}
