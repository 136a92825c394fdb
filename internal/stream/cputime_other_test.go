//go:build !linux

package stream_test

import (
	"testing"
	"time"
)

// cpuCost returns the time f took on the clock, where the CPU time of a
// thread is not read (cputime_linux_test.go).
func cpuCost(_ *testing.T, f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}
