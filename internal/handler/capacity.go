package handler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ssehub/ssehub/internal/gcpace"
	"github.com/ssehub/ssehub/internal/stream"
)

// streamSlots counts the streams open at once, of every kind, against
// StreamOptions.MaxStreams. A handler takes a slot before it subscribes or
// writes anything, so a refusal is a clean 503; the stream's close gives
// it back. It is safe for concurrent use.
type streamSlots struct {
	max  int64
	open atomic.Int64
	// drain, when not nil, returns the memory of a crowd of streams to
	// the operating system once it has left.
	drain *gcpace.Drain
	// closed is set by close; drained is closed once closed is set and
	// no slot is taken (wait).
	closed     atomic.Bool
	drained    chan struct{}
	drainedOne sync.Once
}

// What makes a crowd for streamSlots.drain: at least crowdStreams streams
// gone (about 30 MB in gin mode), to half of the most open or fewer, none
// ending for crowdQuiet.
const (
	crowdStreams = 1000
	crowdQuiet   = time.Second
)

// newStreamSlots returns the slots of max streams; release
// (gcpace.ReleaseMemory, but for tests) returns a crowd's memory once it
// has left.
func newStreamSlots(max int64, release func()) *streamSlots {
	s := &streamSlots{max: max, drained: make(chan struct{})}
	s.drain = gcpace.NewDrain(s.open.Load, crowdStreams, crowdQuiet, release)
	return s
}

// take reserves a slot, or returns errTooManyStreams when all are taken,
// errShuttingDown after close: wait, which may have returned, would not
// wait for it. It checks close after taking the slot, so that close sees
// it taken or take sees close, and before the limit too: after close,
// with every slot still taken by the streams that are ending, a stream is
// no refusal for capacity, logged as one.
func (s *streamSlots) take() error {
	for {
		if s.closed.Load() {
			return errShuttingDown
		}
		n := s.open.Load()
		if n >= s.max {
			return fmt.Errorf("limit %d: %w", s.max, errTooManyStreams)
		}
		if s.open.CompareAndSwap(n, n+1) {
			if s.closed.Load() {
				s.release()
				return errShuttingDown
			}
			if s.drain != nil {
				s.drain.Opened(n + 1)
			}
			return nil
		}
	}
}

// release gives a slot back.
func (s *streamSlots) release() {
	n := s.open.Add(-1)
	if s.drain != nil {
		s.drain.Closed(n)
	}
	if n == 0 && s.closed.Load() {
		s.drainedOne.Do(func() { close(s.drained) })
	}
}

// close makes wait return once no slot is taken. Safe to call more than
// once.
func (s *streamSlots) close() {
	s.closed.Store(true)
	if s.open.Load() == 0 {
		s.drainedOne.Do(func() { close(s.drained) })
	}
}

// wait blocks until close was called and no slot is taken, or ctx is
// done. Drained, it returns nil even when ctx is done too.
func (s *streamSlots) wait(ctx context.Context) error {
	select {
	case <-s.drained:
		return nil
	default:
	}
	select {
	case <-s.drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// refusalWindow is how often, at most, refusals for capacity are logged.
const refusalWindow = time.Second

// refusalLog logs refusals for capacity (stream.max_streams,
// hub.max_subscribers) as one warn line per window with their count, so a
// storm of 503s costs a line a second, not a line per request; and in a
// line of their own the 503s of a broker whose store was busy
// (stream.ErrBusy), full (stream.ErrStoreFull) or unreachable
// (stream.ErrUnavailable), with the last
// one's error as their cause, which the client is not told. The first
// refusal opens a window; the lines are written when the window closes,
// or by flush. It is safe for concurrent use.
type refusalLog struct {
	log *slog.Logger

	mu          sync.Mutex
	timer       *time.Timer // the open window's; nil when none is open
	streams     int         // refused in this window for stream.max_streams
	subs        int         // refused in this window for hub.max_subscribers
	busy        int         // refused in this window for stream.ErrBusy
	full        int         // refused in this window for stream.ErrStoreFull
	unreachable int         // refused in this window for stream.ErrUnavailable
	cause       error       // the last of busy, full and unreachable
	closed      bool        // set by close: no window opens any more
}

// refusalReason returns what refused a request that err answered with a
// 503, as the metrics name it; "" when err is no refusal for capacity or
// for the broker's store.
func refusalReason(err error) string {
	switch {
	case errors.Is(err, errTooManyStreams):
		return refusedMaxStreams
	case errors.Is(err, stream.ErrTooManySubscribers):
		return refusedMaxSubscribers
	case errors.Is(err, stream.ErrBusy):
		return refusedStoreBusy
	case errors.Is(err, stream.ErrStoreFull):
		return refusedStoreFull
	case errors.Is(err, stream.ErrUnavailable):
		return refusedStoreUnreachable
	}
	return ""
}

// add counts one refusal for err, if err is a refusal for capacity or for
// the broker's store. After close it is logged at once: no timer may
// outlive the handler.
func (r *refusalLog) add(err error) {
	r.mu.Lock()
	switch refusalReason(err) {
	case refusedMaxStreams:
		r.streams++
	case refusedMaxSubscribers:
		r.subs++
	case refusedStoreBusy:
		r.busy++
		r.cause = err
	case refusedStoreFull:
		r.full++
		r.cause = err
	case refusedStoreUnreachable:
		r.unreachable++
		r.cause = err
	default:
		r.mu.Unlock()
		return
	}
	closed := r.closed
	if !closed && r.timer == nil {
		r.timer = time.AfterFunc(refusalWindow, r.flush)
	}
	r.mu.Unlock()
	if closed {
		r.flush()
	}
}

// close flushes the open window, and makes add log each later refusal at
// once. Close calls it.
func (r *refusalLog) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.flush()
}

// flush writes the line of the open window, if any, and closes it. Close
// calls it (close), so no count is lost at shutdown and no timer outlives
// the handler.
func (r *refusalLog) flush() {
	r.mu.Lock()
	streams, subs, busy, full, unreachable, cause := r.streams, r.subs, r.busy, r.full, r.unreachable, r.cause
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	r.streams, r.subs, r.busy, r.full, r.unreachable, r.cause = 0, 0, 0, 0, 0, nil
	r.mu.Unlock()
	if streams+subs > 0 {
		r.log.Warn("refused streams: at capacity",
			"count", streams+subs,
			"over_max_streams", streams,
			"over_max_subscribers", subs,
			"window", refusalWindow)
	}
	if busy+full+unreachable > 0 {
		r.log.Warn("refused requests: the event store is busy, full or unreachable",
			"count", busy+full+unreachable,
			"busy", busy,
			"full", full,
			"unreachable", unreachable,
			"last_cause", cause,
			"window", refusalWindow)
	}
}
