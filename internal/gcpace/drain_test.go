package gcpace

import (
	"runtime"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// crowd is a count of open connections watched by a Drain whose releases
// it counts.
type crowd struct {
	open     atomic.Int64
	releases atomic.Int32
	d        *Drain
}

func newCrowd(minDrop int64) *crowd {
	c := &crowd{}
	c.d = NewDrain(c.open.Load, minDrop, time.Second, func() { c.releases.Add(1) })
	return c
}

func (c *crowd) come(n int) {
	for range n {
		c.d.Opened(c.open.Add(1))
	}
}

func (c *crowd) leave(n int) {
	for range n {
		c.d.Closed(c.open.Add(-1))
	}
}

// after waits d in the bubble and returns the releases so far.
func (c *crowd) after(d time.Duration) int32 {
	time.Sleep(d)
	synctest.Wait()
	return c.releases.Load()
}

func TestDrainReleasesOnceACrowdHasLeft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCrowd(1000)
		defer c.d.Stop()
		c.come(2000)
		c.leave(2000)
		if got := c.after(999 * time.Millisecond); got != 0 {
			t.Fatalf("released %d times before the crowd was quiet for a second", got)
		}
		if got := c.after(time.Millisecond); got != 1 {
			t.Fatalf("released %d times a second after the last left, want 1", got)
		}
		if got := c.after(time.Minute); got != 1 {
			t.Fatalf("released %d times in the minute after, want 1", got)
		}
	})
}

func TestDrainWaitsWhileTheCrowdIsStillLeaving(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCrowd(1000)
		defer c.d.Stop()
		c.come(3000)
		c.leave(2000) // a drop of 2000, to a third of the peak: armed
		time.Sleep(900 * time.Millisecond)
		c.leave(500) // still leaving: postponed
		if got := c.after(900 * time.Millisecond); got != 0 {
			t.Fatalf("released %d times while the crowd was still leaving", got)
		}
		if got := c.after(100 * time.Millisecond); got != 1 {
			t.Fatalf("released %d times a second after the last left, want 1", got)
		}
	})
}

func TestDrainIgnoresSmallOrPartialDrops(t *testing.T) {
	for _, tt := range []struct {
		name        string
		peak, leave int
	}{
		{"fewer than minDrop", 999, 999},
		{"not to half the peak", 3000, 1400},
		{"just short of half", 2001, 1000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newCrowd(1000)
				defer c.d.Stop()
				c.come(tt.peak)
				c.leave(tt.leave)
				if got := c.after(time.Minute); got != 0 {
					t.Errorf("peak %d, %d left: released %d times, want none", tt.peak, tt.leave, got)
				}
			})
		})
	}
}

func TestDrainStartsItsPeakAgainAfterARelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCrowd(1000)
		defer c.d.Stop()
		c.come(4000)
		c.leave(2000)
		if got := c.after(time.Second); got != 1 {
			t.Fatalf("released %d times, want 1", got)
		}
		// From a peak of 2000 now: 900 more leaving is no crowd, and the
		// first crowd's peak must not count.
		c.leave(900)
		if got := c.after(time.Minute); got != 1 {
			t.Fatalf("released %d times after a small drop, want still 1", got)
		}
		c.leave(100) // 1000 below the new peak, at half of it
		if got := c.after(time.Second); got != 2 {
			t.Fatalf("released %d times after a second crowd left, want 2", got)
		}
	})
}

func TestDrainStopCancelsAnArmedRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCrowd(1000)
		c.come(2000)
		c.leave(2000)
		c.d.Stop()
		c.come(2000)
		c.leave(2000)
		if got := c.after(time.Minute); got != 0 {
			t.Errorf("released %d times after Stop, want none", got)
		}
	})
}

// garbage holds what TestReleaseMemoryReturnsFreedMemory lets go.
var garbage [][]byte

// The release itself, run for real: the memory a crowd left is returned.
func TestReleaseMemoryReturnsFreedMemory(t *testing.T) {
	for range 1000 {
		garbage = append(garbage, make([]byte, 64<<10))
	}
	before := heapReleased()
	garbage = nil
	ReleaseMemory()
	if after := heapReleased(); after < before+32<<20 {
		t.Errorf("heap released to the OS: %d bytes before, %d after; want 64 MiB of garbage more, at least half of it", before, after)
	}
}

func heapReleased() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapReleased
}

// A server that stays busy after a crowd left, its connections closing
// more often than once a quiet period, still gets its release: at most
// maxPostpone quiet periods after the crowd had left.
func TestDrainReleasesOnABusyServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCrowd(1000)
		defer c.d.Stop()
		c.come(10000)
		c.leave(5000)                 // a crowd gone: armed
		for range 2*maxPostpone + 2 { // 11 quiet periods
			time.Sleep(500 * time.Millisecond)
			c.leave(1) // one closes every half a quiet period
		}
		synctest.Wait()
		if got := c.releases.Load(); got != 1 {
			t.Fatalf("released %d times in %d quiet periods of steady closes, want 1", got, maxPostpone)
		}
	})
}

// The bound holds whenever the last postponing close comes: one just
// before it does not put the release a whole quiet period past it.
func TestDrainReleasesWithinMaxPostponeOnABusyServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCrowd(1000)
		defer c.d.Stop()
		c.come(10000)
		c.leave(5000) // a crowd gone: armed
		for range maxPostpone + 1 {
			time.Sleep(900 * time.Millisecond)
			c.leave(1) // the last at 9.9 quiet periods
		}
		if got := c.after(maxPostpone*time.Second - (maxPostpone+1)*900*time.Millisecond - time.Nanosecond); got != 0 {
			t.Fatalf("released %d times before %d quiet periods had passed, want none yet", got, maxPostpone)
		}
		if got := c.after(time.Nanosecond); got != 1 {
			t.Fatalf("released %d times %d quiet periods after the crowd had left, want 1", got, maxPostpone)
		}
	})
}

// fakeTimer is a timer that has fired (Stop fails) or not.
type fakeTimer struct{ fired bool }

func (f *fakeTimer) Stop() bool { return !f.fired }

// A close while the timer has fired and its release waits for the lock
// does not arm it again: one release per crowd.
func TestDrainDoesNotArmAFiredTimerAgain(t *testing.T) {
	c := newCrowd(1000)
	var armed []func()
	timer := &fakeTimer{}
	c.d.afterFunc = func(_ time.Duration, f func()) stopper {
		armed = append(armed, f)
		return timer
	}
	c.come(2000)
	c.leave(1000)
	if len(armed) != 1 {
		t.Fatalf("armed %d times once the crowd left, want 1", len(armed))
	}
	timer.fired = true
	c.leave(1)
	if len(armed) != 1 {
		t.Fatalf("armed %d times after the timer fired, want still 1", len(armed))
	}
	armed[0]()
	if got := c.releases.Load(); got != 1 {
		t.Errorf("released %d times, want 1", got)
	}
}

// A crowd that comes back before the quiet period is over (clients that
// reconnect after a network blip) is no crowd gone: no release while it
// is back, as the count is no longer down to half its peak.
func TestDrainDoesNotReleaseWhenTheCrowdCameBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCrowd(1000)
		defer c.d.Stop()
		c.come(2000)
		c.leave(2000) // armed
		time.Sleep(500 * time.Millisecond)
		c.come(2000) // back, within the quiet period
		if got := c.after(time.Minute); got != 0 {
			t.Fatalf("released %d times with the crowd back, want none", got)
		}
		c.leave(2000) // gone again: armed again
		if got := c.after(time.Second); got != 1 {
			t.Fatalf("released %d times a second after the crowd left again, want 1", got)
		}
	})
}
