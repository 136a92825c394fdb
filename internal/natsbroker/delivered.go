package natsbroker

import (
	"container/heap"
	"context"
	"sync"
)

// delivered is the last stream sequence the local consumer has handed to
// the local broker. Publish waits on it, so that once it returns the
// event is in the local history and with this instance's subscribers:
// a subscription opened after a publish was answered does not receive
// that event as live, and GET /api/v1/topics shows it, as with the
// memory broker.
//
// Each waiting publish has a channel of its own, and advance closes only
// those of the sequences it reached: with many publishes in flight, one
// channel for all woke every one of them at each event, to find most
// still short of their sequence. All methods are safe for concurrent use.
type delivered struct {
	mu      sync.Mutex
	seq     uint64
	waiting waiters // least sequence first
}

// waiter is one publish waiting for sequence seq; done is closed once
// the consumer has delivered it.
type waiter struct {
	seq  uint64
	done chan struct{}
	at   int // index in waiters, for heap.Remove
}

// advance records that the consumer is past sequence seq and releases the
// publishes waiting for it or an earlier one; it is called by the
// consumer's goroutine.
func (d *delivered) advance(seq uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if seq <= d.seq {
		return
	}
	d.seq = seq
	for len(d.waiting) > 0 && d.waiting[0].seq <= seq {
		close(heap.Pop(&d.waiting).(*waiter).done)
	}
}

// wait returns true once the consumer is at sequence seq or past it, or
// false when ctx ends or stop is closed first.
func (d *delivered) wait(ctx context.Context, stop <-chan struct{}, seq uint64) bool {
	d.mu.Lock()
	if d.seq >= seq {
		d.mu.Unlock()
		return true
	}
	w := &waiter{seq: seq, done: make(chan struct{})}
	heap.Push(&d.waiting, w)
	d.mu.Unlock()
	select {
	case <-w.done:
		return true
	case <-ctx.Done():
	case <-stop:
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if w.at < 0 {
		return true // released meanwhile
	}
	heap.Remove(&d.waiting, w.at)
	return false
}

// last is the last sequence delivered.
func (d *delivered) last() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seq
}

// pending is how many publishes are waiting.
func (d *delivered) pending() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.waiting)
}

// waiters is a min-heap of waiters by sequence (container/heap).
type waiters []*waiter

func (h waiters) Len() int           { return len(h) }
func (h waiters) Less(i, j int) bool { return h[i].seq < h[j].seq }
func (h waiters) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].at, h[j].at = i, j
}

func (h *waiters) Push(x any) {
	w := x.(*waiter)
	w.at = len(*h)
	*h = append(*h, w)
}

func (h *waiters) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	w.at = -1
	*h = old[:len(old)-1]
	return w
}
