package stream_test

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// rusageThread is Linux's RUSAGE_THREAD, which package syscall does not
// name.
const rusageThread = 1

// cpuCost returns the CPU time, user and system, that f took on the
// thread that ran it. Unlike the time on the clock, it does not grow while
// other processes have the CPU, nor with the garbage collector's work on
// other threads: the tests that compare two inputs' costs (LinearInCRs)
// measure with it, so that a loaded machine, which can stretch one input's
// runs and not the other's, does not fail them.
func cpuCost(t *testing.T, f func()) time.Duration {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := threadTime(t)
	f()
	return threadTime(t) - start
}

func threadTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
