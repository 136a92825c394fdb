package handler

import "sync"

// Sizes of what streams borrow for a step (lender).
const (
	// stepBufSize is the capacity of a new step buffer: a few events of
	// the hub's typical size, or one ticker step.
	stepBufSize = 1 << 10
	// maxLentBuf is the largest step buffer that goes back to the pool;
	// a larger one (a single huge event) is let go. A replay's steps of
	// about maxStepBytes fit, so a replay reuses its buffers.
	maxLentBuf = 2 * maxStepBytes
	// takenSize and maxLentTaken are the same for the slices a
	// subscription takes its queued events into (a backlog of
	// hub.subscriber_buffer events, 256 by default, fits).
	takenSize    = 8
	maxLentTaken = 1 << 10
)

// lender lends streams what they need only while a step runs: the buffer
// a step's frames are queued in, the slice a subscription takes its events
// into. A stream borrows one when its step starts to fill it and gives it
// back once the step is written (every transport copies or sends the bytes
// before Write returns), so a stream waiting for its next event holds
// none. Kept per stream, they grew with the batches of a fan-out (events
// that queued while the stream was being woken) and stayed: in
// bench/fanout.sh (5000 subscribers, 100 events at 20/s) the heap grew by
// about 20 MB during the events in gin mode, and held 0.5–16 KiB of step
// buffer and up to 0.5 KiB of slice per subscriber. It is safe for
// concurrent use.
type lender[T any] struct {
	pool sync.Pool // of *[]T, so that put does not allocate
	size int       // capacity of a new slice
	max  int       // largest capacity that goes back to the pool
}

// get returns an empty slice.
func (l *lender[T]) get() *[]T {
	if b, ok := l.pool.Get().(*[]T); ok {
		return b
	}
	b := make([]T, 0, l.size)
	return &b
}

// put gives b back, emptied (and cleared, so that it keeps nothing
// alive); its elements may be reused at once.
func (l *lender[T]) put(b *[]T) {
	if cap(*b) > l.max {
		return
	}
	clear(*b)
	*b = (*b)[:0]
	l.pool.Put(b)
}
