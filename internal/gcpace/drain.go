package gcpace

import (
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Drain gives memory back to the operating system once a crowd of
// connections has left.
//
// The memory of connections that ended stays in the process's RSS: the
// runtime returns freed memory gradually, after collections, and a process
// left idle may run none for two minutes. After 5000 hub subscribers
// left, ssehub's RSS stayed at its peak (172 MB, against 22 MB before they
// came) for as long as ssebench watched. A Drain watches a count of open
// connections; once it has fallen by at least minDrop from its peak and to
// at most half of it, and no connection has closed for quiet, it runs two
// collections (the first empties the sync.Pools' victim caches, which
// hold net/http's buffers of the gone connections for one more cycle) and
// returns the freed memory, once; not when the count is back above half
// the peak by then (a crowd that reconnected). Then the peak starts again
// from the connections open then.
//
// The collections cost the process a few milliseconds of CPU, once per
// crowd: a crowd has to halve the open connections again before the next.
//
// A server that stays busy after a crowd left may never be quiet that
// long: connections keep closing. So the release is put off for at most
// maxPostpone quiet periods after the crowd had left; then it runs.
//
// Opened and Closed are safe for concurrent use and cheap while the count
// is not draining: an atomic load or two.
type Drain struct {
	open    func() int64 // connections open now
	minDrop int64
	quiet   time.Duration
	release func() // ReleaseMemory, or a test's counter
	// afterFunc is time.AfterFunc, or a test's.
	afterFunc func(time.Duration, func()) stopper

	peak atomic.Int64

	mu      sync.Mutex
	timer   stopper   // armed while a drain is under way
	armed   time.Time // when the crowd was found gone
	stopped bool
}

// maxPostpone bounds how long a release waits for a quiet period once a
// crowd has left, in quiet periods.
const maxPostpone = 10

// stopper is the part of a *time.Timer a Drain uses.
type stopper interface{ Stop() bool }

// NewDrain returns a Drain of the connections open reports, for crowds of
// at least minDrop leaving, calling release (ReleaseMemory, but for tests)
// quiet after the last of them closed.
func NewDrain(open func() int64, minDrop int64, quiet time.Duration, release func()) *Drain {
	return &Drain{
		open: open, minDrop: minDrop, quiet: quiet, release: release,
		afterFunc: func(d time.Duration, f func()) stopper { return time.AfterFunc(d, f) },
	}
}

// ReleaseMemory collects twice and returns the free memory to the
// operating system.
func ReleaseMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}

// Opened records that n connections are open after one opened.
func (d *Drain) Opened(n int64) {
	for p := d.peak.Load(); n > p; p = d.peak.Load() {
		if d.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

// Closed records that n connections are open after one closed. Once a
// crowd has left, it arms the release, or postpones it while the crowd is
// still leaving (up to maxPostpone quiet periods).
func (d *Drain) Closed(n int64) {
	if !d.drained(n) {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.stopped, !d.drained(n): // fire may have started the peak again
	case d.timer == nil:
		d.armed = time.Now()
		d.timer = d.afterFunc(d.quiet, d.fire)
	case time.Since(d.armed) >= maxPostpone*d.quiet: // busy: let it run
	case !d.timer.Stop(): // it fired: fire waits for the lock, and releases
	default:
		// A quiet period, but no later than the bound.
		d.timer = d.afterFunc(min(d.quiet, maxPostpone*d.quiet-time.Since(d.armed)), d.fire)
	}
}

// drained reports whether a crowd has left, with n connections open.
func (d *Drain) drained(n int64) bool {
	p := d.peak.Load()
	return p-n >= d.minDrop && n <= p/2
}

// fire starts the peak again and releases the memory, unless the crowd
// came back meanwhile (clients reconnecting after a network blip): then
// the count is no longer down to half its peak, and the release waits
// for the next crowd to leave.
func (d *Drain) fire() {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	d.timer = nil
	n := d.open()
	if !d.drained(n) {
		d.mu.Unlock()
		return
	}
	d.peak.Store(n)
	d.mu.Unlock()
	d.release()
}

// Stop cancels a release not yet under way; none is armed after it.
func (d *Drain) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}
