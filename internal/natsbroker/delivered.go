package natsbroker

import (
	"context"
	"sync"
)

// delivered is the last stream sequence the local consumer has handed to
// the local broker. Publish waits on it, so that once it returns the
// event is in the local history and with this instance's subscribers:
// a subscription opened after a publish was answered does not receive
// that event as live, and GET /api/v1/topics shows it, as with the
// memory broker. All methods are safe for concurrent use.
type delivered struct {
	mu   sync.Mutex
	seq  uint64
	next chan struct{} // closed when seq advances; nil while nobody waits
}

// advance records that the consumer is past sequence seq; it is called by
// the consumer's goroutine.
func (d *delivered) advance(seq uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if seq <= d.seq {
		return
	}
	d.seq = seq
	if d.next != nil {
		close(d.next)
		d.next = nil
	}
}

// wait returns true once the consumer is at sequence seq or past it, or
// false when ctx ends or stop is closed first.
func (d *delivered) wait(ctx context.Context, stop <-chan struct{}, seq uint64) bool {
	for {
		d.mu.Lock()
		if d.seq >= seq {
			d.mu.Unlock()
			return true
		}
		if d.next == nil {
			d.next = make(chan struct{})
		}
		next := d.next
		d.mu.Unlock()
		select {
		case <-next:
		case <-ctx.Done():
			return false
		case <-stop:
			return false
		}
	}
}
