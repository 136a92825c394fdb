package main

import (
	"testing"
	"time"
)

func TestBucketBounds(t *testing.T) {
	values := []int64{0, 1, 31, 32, 33, 63, 64, 65, 127, 128, 1000, 4095, 4096, 1e6, 123456789, 1e12, 1 << 39, (1 << 40) - 1}
	for _, v := range values {
		i := bucketOf(v)
		if up := bucketUpper(i); v > up {
			t.Errorf("value %d in bucket %d whose upper bound is %d", v, i, up)
		}
		if i > 0 {
			if below := bucketUpper(i - 1); v <= below {
				t.Errorf("value %d in bucket %d but bucket %d reaches %d", v, i, i-1, below)
			}
			if width := bucketUpper(i) - bucketUpper(i-1); v >= subBuckets && float64(width) > float64(v)/subBuckets {
				t.Errorf("bucket %d of value %d is %d wide: more than 1/%d of it", i, v, width, subBuckets)
			}
		}
	}
}

func TestBucketsAreContiguous(t *testing.T) {
	for i := 1; i < numBuckets; i++ {
		if got := bucketOf(bucketUpper(i-1) + 1); got != i {
			t.Fatalf("value after bucket %d's upper bound falls in bucket %d, want %d", i-1, got, i)
		}
	}
}

func TestBucketOfClamps(t *testing.T) {
	for _, v := range []int64{-5, 1 << 40, 1 << 62} {
		i := bucketOf(v)
		if i < 0 || i >= numBuckets {
			t.Errorf("bucketOf(%d) = %d, outside 0..%d", v, i, numBuckets-1)
		}
	}
}

func TestPercentiles(t *testing.T) {
	uniform := func() *Histogram {
		var h Histogram
		for i := 1; i <= 1000; i++ {
			h.Record(time.Duration(i) * 100 * time.Microsecond) // 0.1ms .. 100ms
		}
		return &h
	}
	single := func() *Histogram {
		var h Histogram
		h.Record(7 * time.Millisecond)
		return &h
	}
	skewed := func() *Histogram {
		var h Histogram
		for range 990 {
			h.Record(time.Millisecond)
		}
		for range 10 {
			h.Record(time.Second)
		}
		return &h
	}
	tests := []struct {
		name string
		h    *Histogram
		q    float64
		want time.Duration
	}{
		{"empty", &Histogram{}, 0.5, 0},
		{"uniform p50", uniform(), 0.50, 50 * time.Millisecond},
		{"uniform p90", uniform(), 0.90, 90 * time.Millisecond},
		{"uniform p99", uniform(), 0.99, 99 * time.Millisecond},
		{"uniform p100", uniform(), 1, 100 * time.Millisecond},
		{"uniform p0", uniform(), 0, 100 * time.Microsecond},
		{"single p50", single(), 0.5, 7 * time.Millisecond},
		{"single p99", single(), 0.99, 7 * time.Millisecond},
		{"skewed p98", skewed(), 0.98, time.Millisecond},
		{"skewed p99", skewed(), 0.99, time.Millisecond},
		{"skewed p995", skewed(), 0.995, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.h.Percentile(tt.q)
			if got < tt.want || float64(got) > float64(tt.want)*(1+1.0/subBuckets) {
				t.Errorf("Percentile(%g) = %v, want %v to %v", tt.q, got, tt.want, time.Duration(float64(tt.want)*(1+1.0/subBuckets)))
			}
		})
	}
}

func TestSummary(t *testing.T) {
	var h Histogram
	h.Record(-time.Second) // counts as 0
	h.Record(2 * time.Millisecond)
	h.Record(4 * time.Millisecond)
	s := h.Summary()
	if s.Count != 3 || time.Duration(s.Max) != 4*time.Millisecond || time.Duration(s.Mean) != 2*time.Millisecond {
		t.Errorf("Summary() = %+v, want count 3, max 4ms, mean 2ms", s)
	}
	if s.P50 > s.P90 || s.P90 > s.P99 || s.P99 > s.Max {
		t.Errorf("percentiles out of order: %+v", s)
	}
}

func TestHistogramConcurrent(t *testing.T) {
	var h Histogram
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 1000 {
				h.Record(time.Duration(g*1000+i) * time.Microsecond)
			}
		}()
	}
	for range 4 {
		<-done
	}
	if h.Count() != 4000 || h.Max() != 3999*time.Microsecond {
		t.Errorf("count %d max %v, want 4000 and 3.999ms", h.Count(), h.Max())
	}
}

// A percentile is the nearest rank: the smallest sample at or below which
// at least that share of the samples lie, never one below it.
func TestPercentileOfFewSamples(t *testing.T) {
	few := func(n int) *Histogram {
		var h Histogram
		for i := 1; i <= n; i++ {
			h.Record(time.Duration(i) * time.Millisecond)
		}
		return &h
	}
	tests := []struct {
		n    int
		q    float64
		want time.Duration
	}{
		{8, 0.90, 8 * time.Millisecond},   // 7 of 8 is 87.5 %
		{60, 0.99, 60 * time.Millisecond}, // 59 of 60 is 98.3 %
		{3, 0.50, 2 * time.Millisecond},
		{10, 0.90, 9 * time.Millisecond},
		{100, 0.99, 99 * time.Millisecond},
	}
	for _, tt := range tests {
		got := few(tt.n).Percentile(tt.q)
		if got < tt.want || float64(got) > float64(tt.want)*(1+1.0/subBuckets) {
			t.Errorf("Percentile(%g) of 1..%d ms = %v, want %v", tt.q, tt.n, got, tt.want)
		}
	}
}

// Samples beyond the buckets (2^40 ns, about 18 minutes: a publisher that
// fell that far behind its schedule in a long run) share the last bucket,
// which has no upper bound: a percentile there is the maximum, not the
// 18 minutes where the buckets end.
func TestPercentileBeyondTheBuckets(t *testing.T) {
	var h Histogram
	for range 10 {
		h.Record(30 * time.Minute)
	}
	if got := h.Percentile(0.5); got != 30*time.Minute {
		t.Errorf("p50 of ten samples of 30 min = %v, want 30m0s", got)
	}
}
