package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/ssehub/ssehub/internal/stream"
)

// An instance that starts loads the stream's tail into its local history
// before it serves (warm): its consumer starts at the tail's first
// sequence, not after the stream's last, and Open returns once it has
// delivered up to that last one. The resumes of the clients that come
// back together after a restart are then served from memory, as the
// memory broker serves them, rather than each reading JetStream through
// consumers of its own (resume.go), which nats-server caps per stream
// (1000 by default): with an empty local history, 435 of 2000 such
// reconnects were refused with 503.
//
// Nothing subscribes before Open returns, so the tail reaches no
// subscription as live, and those that come after find it in the local
// history with the ids the stream gave, then the events stored since, in
// stream order, each once: the local broker is fed by one consumer, as
// at any other time. Options.cold turns this off.

// tailStart is the sequence the local history starts at for a stream in
// state: its last size events, fewer when it holds fewer, or after its
// last with cold. The local history's bytes bound (HistoryMaxBytes) lets
// go of the oldest as it is filled, as at any other time.
func tailStart(state jetstream.StreamState, size int, cold bool) uint64 {
	if cold || state.Msgs == 0 {
		return state.LastSeq + 1
	}
	return max(state.FirstSeq, state.LastSeq+1-min(state.LastSeq, uint64(size)))
}

// warm waits until h's consumer has delivered sequence last, the stream's
// last at start, to the local history, or until the consumer has nothing
// left to deliver: the stream keeps its last sequence when that message
// is deleted (a purge of one subject, a message removed by hand), and no
// consumer ever delivers it. It fails when the consumer delivers nothing
// for PublishTimeout with events still pending (NATS away or overwhelmed:
// a start that cannot read the stream fails, as one that cannot reach it
// does), or ctx ends. The stream replaced meanwhile ends h: the history
// that renew put in its place starts at the new stream's first event, all
// of it new, and warm returns.
func (b *Broker) warm(ctx context.Context, h *history, last uint64) error {
	from, start := h.seen.last()+1, time.Now()
	poll := min(warmPoll, b.opts.PublishTimeout)
	idle := time.Now() // since the last progress
	for done := from - 1; done < last; done = h.seen.last() {
		step, cancel := context.WithTimeout(ctx, poll)
		progress := h.seen.wait(step, h.ended, done+1)
		cancel()
		switch {
		case progress:
			idle = time.Now()
			continue
		case ctx.Err() != nil:
			return fmt.Errorf("nats: loading the tail of stream %q (sequences %d to %d): %w", b.opts.Stream, from, last, ctx.Err())
		case b.cur.Load() != h && b.cur.Load() != nil:
			return nil // renewed: see above
		}
		select {
		case <-h.ended:
			return stream.ErrClosed
		default:
		}
		if b.delivered(ctx, h) {
			break // the rest of the tail was deleted
		}
		if time.Since(idle) >= b.opts.PublishTimeout {
			return fmt.Errorf("nats: loading the tail of stream %q: nothing after sequence %d (of %d to %d) for %s: %w",
				b.opts.Stream, done, from, last, b.opts.PublishTimeout, stream.ErrUnavailable)
		}
	}
	if last >= from {
		s := h.mem.Stats()
		b.opts.Logger.Info("local history loaded from the stream's tail", "stream", b.opts.Stream,
			"events", s.Published, "bytes", s.HistoryBytes, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// warmPoll is how long warm waits for the next event before it asks
// whether the consumer has any left.
const warmPoll = 200 * time.Millisecond

// delivered reports whether h's consumer has handed the local history
// everything h's stream holds: NATS has nothing pending for it, nothing
// it sent is still on its way, and the stream is still h's. The consumer,
// made again by the stream's name, follows one deleted and created again,
// and has
// nothing pending on a new, empty one either: then delivered renews h,
// whose replacement ends warm, and reports false.
func (b *Broker) delivered(ctx context.Context, h *history) bool {
	ctx, cancel := context.WithTimeout(ctx, b.opts.PublishTimeout)
	defer cancel()
	info, err := h.live.info(ctx)
	if err != nil || info.NumPending != 0 || info.Delivered.Stream > h.seen.last() {
		return false
	}
	delivered := h.seen.last()
	s, err := h.stream.Info(ctx)
	if errors.Is(err, jetstream.ErrStreamNotFound) || err == nil && !h.is(s, delivered) {
		b.renew(h)
		return false
	}
	return err == nil
}
