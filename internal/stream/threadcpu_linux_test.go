package stream

import (
	"syscall"
	"time"
	"unsafe"
)

// clockThreadCPUTime is Linux's CLOCK_THREAD_CPUTIME_ID, which package
// syscall does not name.
const clockThreadCPUTime = 3

// threadCPU returns the CPU time that the calling thread has used, and
// true; the caller locks its goroutine to the thread. The eviction
// benchmarks report it beside the time on the clock, which a loaded
// machine stretches. Unlike getrusage's, which is brought up to date at
// the scheduler's ticks (a few milliseconds apart), this clock counts to
// the nanosecond.
func threadCPU() (time.Duration, bool) {
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
