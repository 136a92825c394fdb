package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/ssehub/ssehub/internal/stream"
)

// replayBatch is how many messages a replay asks the stream for at once.
const replayBatch = 512

// Subscribe opens a subscription to the events whose topic matches one of
// patterns, resuming after lastEventID ("" for live only).
//
// The local broker registers it first, so it queues every live event from
// then on. A resume within the local history is the local broker's. An
// older one reads the stream after lastEventID up to its last sequence at
// that moment: that is the replay, read whole here and held until Replay
// has handed it out (unlike the local broker's, which is a position in its
// history), and Take drops the live events it already holds, exactly, by
// id. An id from another history, below the stream's
// first retained event or above its last starts with a Reset; an id of
// the history before the current one on this instance (its stream was
// deleted) resumes from the current stream's start. Reading the stream
// fails with an error wrapping stream.ErrUnavailable while NATS is
// unreachable.
func (b *Broker) Subscribe(patterns []string, lastEventID string) (stream.Subscription, error) {
	h := b.cur.Load()
	live, err := h.mem.Subscribe(patterns, lastEventID)
	for errors.Is(err, stream.ErrClosed) && h != b.cur.Load() {
		// h ended meanwhile (renew): subscribe to the history after it.
		h = b.cur.Load()
		live, err = h.mem.Subscribe(patterns, lastEventID)
	}
	if err != nil || lastEventID == "" || live.Reset() == "" {
		return live, err
	}
	s, err := b.resume(h, live, patterns, lastEventID)
	if err != nil {
		live.Close()
		return nil, err
	}
	return s, nil
}

// resume is Subscribe for an id the local history of h does not hold;
// live is registered already.
func (b *Broker) resume(h *history, live stream.Subscription, patterns []string, lastEventID string) (*subscription, error) {
	s := &subscription{Subscription: live}
	id, err := strconv.ParseUint(lastEventID, 10, 64)
	if err != nil {
		s.reset = "the last event id is not an event id of this hub; events may have been missed"
		return s, nil
	}
	seq, ok := h.ids.seq(id)
	if !ok && h.prevFrom != 0 && id >= h.prevFrom {
		// The history before h: every event of h's stream is after it.
		seq, ok = 0, true
	}
	if !ok {
		s.reset = fmt.Sprintf("last event id %d is from another history of this hub; events may have been missed", id)
		return s, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.PublishTimeout)
	defer cancel()
	info, err := b.info(ctx, h)
	if err != nil {
		return nil, err
	}
	first, last := info.State.FirstSeq, info.State.LastSeq
	switch {
	case seq > last:
		s.reset = fmt.Sprintf("last event id %d is unknown: the newest event id is %d", id, h.ids.id(last))
		return s, nil
	case seq+1 < first:
		s.reset = fmt.Sprintf("last event id %d is older than the retained history (oldest id %d); events were missed", id, h.ids.id(first))
		return s, nil
	}
	// Every event after last reaches live: it was stored after live was
	// registered. Those up to last that reach it too (the local consumer
	// may lag) are dropped by Take.
	s.after = h.ids.id(last)
	if seq == last {
		return s, nil
	}
	if s.replay, err = b.read(ctx, h, patterns, seq+1, last); err != nil {
		return nil, b.unavailable("replay", err)
	}
	// The stream may have been replaced while it was read: the events
	// read would be another stream's under h's ids.
	if _, err := b.info(ctx, h); err != nil {
		return nil, err
	}
	// Counted as read, not as sent as the local broker counts its
	// replays: Stats().Replayed mixes the two.
	n := uint64(len(s.replay))
	b.replayed.Add(n)
	return s, nil
}

// info returns the state of h's stream. A stream of the same name that
// is not h's (deleted and created again, and h not yet renewed: NATS
// finds streams by name) makes it renew h and return an error wrapping
// stream.ErrUnavailable, as Publish does meanwhile.
func (b *Broker) info(ctx context.Context, h *history) (*jetstream.StreamInfo, error) {
	if err := b.ready(h); err != nil {
		return nil, err
	}
	info, err := h.stream.Info(ctx)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		b.renew(h)
		return nil, b.unavailable("stream info", fmt.Errorf("%w: %w", ErrStreamDeleted, err))
	case err != nil:
		return nil, b.unavailable("stream info", err)
	case !info.Created.Equal(h.created):
		b.renew(h)
		return nil, b.unavailable("stream info", fmt.Errorf("stream %q created again at %s: %w", b.opts.Stream, info.Created, ErrStreamDeleted))
	}
	return info, nil
}

// read returns the events of h's stream from sequence from to sequence to
// whose topic matches one of patterns, oldest first, through an ephemeral
// ordered consumer filtered on their subjects.
func (b *Broker) read(ctx context.Context, h *history, patterns []string, from, to uint64) ([]*stream.Message, error) {
	cons, err := h.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: b.filters(patterns),
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from,
	})
	if err != nil {
		return nil, err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(replayBatch))
	if err != nil {
		return nil, err
	}
	defer it.Stop()
	if info := cons.CachedInfo(); info == nil || info.NumPending == 0 {
		return nil, nil // nothing matches after from
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	var out []*stream.Message
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return nil, err
		}
		md, err := m.Metadata()
		if err != nil {
			return nil, err
		}
		seq := md.Sequence.Stream
		if seq > to {
			return out, nil
		}
		if msg := b.message(h.ids.id(seq), m, patterns); msg != nil {
			out = append(out, msg)
		}
		if seq == to || md.NumPending == 0 {
			return out, nil
		}
	}
}

// message is the event of stream message m with id id, or nil when its
// subject is no topic matching one of patterns.
func (b *Broker) message(id uint64, m jetstream.Msg, patterns []string) *stream.Message {
	topic, ok := b.topic(m.Subject())
	if !ok || !slices.ContainsFunc(patterns, func(p string) bool { return stream.Match(p, topic) }) {
		return nil
	}
	msg, err := stream.NewMessage(id, topic, m.Headers().Get(eventTypeHeader), string(m.Data()))
	if err != nil {
		return nil
	}
	return msg
}

// filters are the subjects of patterns for a consumer's filter. NATS
// refuses filters that overlap, so patterns that do are read through the
// stream's whole subject and matched here.
func (b *Broker) filters(patterns []string) []string {
	ps := slices.Clone(patterns)
	slices.Sort(ps)
	ps = slices.Compact(ps)
	out := make([]string, 0, len(ps))
	for i, p := range ps {
		for _, q := range ps[:i] {
			if overlap(p, q) {
				return []string{b.subject(">")}
			}
		}
		out = append(out, b.subject(p))
	}
	return out
}

// overlap reports whether some topic matches both patterns a and b.
func overlap(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(at) && i < len(bt); i++ {
		if at[i] == ">" || bt[i] == ">" {
			return true
		}
		if at[i] != bt[i] && at[i] != "*" && bt[i] != "*" {
			return false
		}
	}
	return len(at) == len(bt)
}

// subscription is a subscription of the local broker that resumed from the
// stream: the replay read there, or a reset of the Broker's, then the
// local live events minus those the replay holds.
type subscription struct {
	stream.Subscription // the local one: live events, Ready, Err, Close

	// replay is the rest of what was read from the stream, handed out by
	// Replay; only Replay and Take, on the subscriber's goroutine, use it
	// and gap.
	replay []*stream.Message
	// gap is set when the subscription ended with the replay unfinished:
	// Take then hands out nothing, as what is queued would follow a gap.
	gap   bool
	reset string
	// after is the id of the last event of the stream that the replay
	// covers; Take drops live events up to it. Zero once passed. Only
	// Take, on the subscriber's goroutine, uses it.
	after uint64
}

// Replay appends the next events read from the stream to dst, until their
// frames take maxBytes, and reports done once it has handed them all out.
// The events handed out are let go. A subscription that has ended (its
// local one was dropped or closed) with the replay unfinished hands out
// neither the rest nor the queue.
func (s *subscription) Replay(dst []*stream.Message, maxBytes int) (msgs []*stream.Message, done bool) {
	if len(s.replay) == 0 {
		return dst, true
	}
	if s.Err() != nil {
		s.replay, s.gap = nil, true
		return dst, true
	}
	n, bytes := 0, 0
	for n < len(s.replay) && (n == 0 || bytes < maxBytes) {
		bytes += len(s.replay[n].Frame)
		n++
	}
	dst = append(dst, s.replay[:n]...)
	clear(s.replay[:n])
	s.replay = s.replay[n:]
	if len(s.replay) == 0 {
		s.replay = nil
	}
	return dst, s.replay == nil
}

// Reset says why the last event id could not be resumed from, or is empty.
func (s *subscription) Reset() string { return s.reset }

// Take appends the live events queued, without those Replay holds.
func (s *subscription) Take(dst []*stream.Message) ([]*stream.Message, bool) {
	if s.gap {
		return dst, false
	}
	n := len(dst)
	dst, open := s.Subscription.Take(dst)
	if s.after == 0 || len(dst) == n {
		return dst, open
	}
	kept := dst[:n]
	for _, m := range dst[n:] {
		if m.ID > s.after {
			kept = append(kept, m)
		}
	}
	if len(kept) > n {
		s.after = 0 // ids increase: nothing later is a duplicate
	}
	clear(dst[len(kept):])
	return kept, open
}
