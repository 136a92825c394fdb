package handler

import "sync"

// stepBufSize is the capacity of a new step buffer: a few events of the
// hub's typical size, or one ticker step.
const stepBufSize = 1 << 10

// maxLentBuf is the largest step buffer that goes back to the pool; a
// larger one (a single huge event) is let go. A replay's steps of about
// maxStepBytes fit, so a replay reuses its buffers.
const maxLentBuf = 2 * maxStepBytes

// stepBufs lends streams the buffer a step's frames are queued in. A
// stream borrows one when it queues its step's first frame and gives it
// back once the step is written (every transport copies or sends the
// bytes before Write returns), so a stream that is waiting for its next
// event holds no buffer. A buffer kept per stream grew with the batches of
// a fan-out (events that queued up while the stream was being woken) and
// stayed: 0.5–16 KiB per subscriber, and in bench/fanout.sh (5000
// subscribers, 100 events at 20/s) about 20 MB of growth and garbage in
// gin mode. It is safe for concurrent use.
type stepBufs struct {
	pool sync.Pool // of *[]byte, so that Put does not allocate
}

// get returns an empty buffer.
func (p *stepBufs) get() *[]byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, stepBufSize)
	return &b
}

// put gives b back; its bytes may be reused at once.
func (p *stepBufs) put(b *[]byte) {
	if cap(*b) > maxLentBuf {
		return
	}
	*b = (*b)[:0]
	p.pool.Put(b)
}
