package natsbroker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// consumerHeartbeat is how often NATS tells an idle local consumer it is
// still there: missing two, it is recreated (consume).
const consumerHeartbeat = time.Second

// consume starts history h's one ordered consumer on the whole stream,
// from the sequence after the one h.seen starts at. The ordered consumer
// survives a lost connection: once it is back, it starts again after the
// last sequence it delivered, so subscribers miss nothing.
//
// It has no subject filter: the stream's one subject is the prefix's
// wildcard (ensureStream checks it), and a filter equal to it made the
// server match every event's subject for each instance's consumer.
//
// The consumer's being deleted, as it is with its stream, makes the
// Broker check the stream (renew). So do two missed heartbeats (check):
// nats-server may lose the notice of the deletion, and then the silence
// of a consumer that is gone is the only sign.
//
// It asks for a heartbeat every consumerHeartbeat while idle, and is
// recreated when two are missed: a pull request that NATS never got
// (sent while a restarted server's JetStream was still recovering)
// leaves it waiting for that. nats.go's default for an ordered consumer
// is 5 s, so events stored after an outage reached subscribers up to
// 10 s late.
//
// Its creation is asked again when NATS leaves it unanswered (askAgain),
// under the same name: Open just after a cluster's meta leader stopped
// failed, 2 runs in 4 (TestClusterOpenAsTheMetaLeaderStops).
func (b *Broker) consume(ctx context.Context, h *history) error {
	cfg := jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   h.seen.last() + 1,
		NamePrefix:    rand.Text(),
	}
	cons, err := askAgain(ctx, func(ctx context.Context) (jetstream.Consumer, error) { return h.stream.OrderedConsumer(ctx, cfg) })
	if err != nil {
		return fmt.Errorf("nats: consumer on stream %q: %w", b.opts.Stream, err)
	}
	h.cons = cons
	h.cc, err = cons.Consume(func(m jetstream.Msg) { b.deliver(h, m) }, jetstream.PullHeartbeat(consumerHeartbeat), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		b.opts.Logger.Debug("nats consumer", "err", err)
		switch {
		case errors.Is(err, jetstream.ErrConsumerDeleted):
			b.renew(h)
		case errors.Is(err, jetstream.ErrNoHeartbeat):
			b.check(h)
		}
	}))
	if err != nil {
		return fmt.Errorf("nats: consume stream %q: %w", b.opts.Stream, err)
	}
	return nil
}

// deliver hands one message of the stream to h's local broker with the id
// of its sequence. A message the hub cannot take (published by another
// client to a subject that is no topic) is skipped: its id has no event.
// It is called by the consumer's goroutine, one message at a time
// (h.deliverMu makes sure of it across the ordered consumer's renewals).
//
// The first message of each consumer (the ordered consumer makes a new one
// after a reconnect or a deletion) waits until the stream is known to be
// h's still: one of a stream created again is never delivered with h's ids.
func (b *Broker) deliver(h *history, m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		return
	}
	h.deliverMu.Lock()
	defer h.deliverMu.Unlock()
	if h.foreign {
		return
	}
	if md.Consumer != h.consumer {
		if !b.same(h) {
			h.foreign = true
			b.renew(h)
			return
		}
		h.consumer = md.Consumer
	}
	b.lag.Store(md.NumPending)
	defer h.seen.advance(md.Sequence.Stream)
	topic, ok := b.topic(m.Subject())
	if !ok {
		return
	}
	if _, err := h.mem.Deliver(h.ids.id(md.Sequence.Stream), topic, m.Headers().Get(eventTypeHeader), string(m.Data())); err != nil {
		b.opts.Logger.Debug("nats event skipped", "seq", md.Sequence.Stream, "subject", m.Subject(), "err", err)
	}
}

// check asks, on a goroutine of its own, whether h's stream is still
// there as h's, and renews h when it is not. The consumer calls it when
// it missed two heartbeats: its stream may have been deleted with the
// notice lost (nats-server queues it on the stream's send loop and then
// stops that loop), and then nothing else tells the instance until the
// next publish or event. Unlike renew it leaves h ready while it asks, so
// a consumer merely slow to hear does not make publishes fail. Without a
// connection it does nothing: that explains the silence, and the
// consumer's first event after the reconnect is checked (deliver).
func (b *Broker) check(h *history) {
	if !b.nc.IsConnected() {
		return
	}
	b.renewMu.Lock()
	defer b.renewMu.Unlock()
	if b.shut || b.renewing || b.checking || b.cur.Load() != h {
		return
	}
	b.checking = true
	b.renewals.Add(1)
	go func() {
		defer b.renewals.Done()
		ctx, cancel := context.WithTimeout(context.Background(), b.opts.PublishTimeout)
		info, err := h.stream.Info(ctx)
		cancel()
		b.renewMu.Lock()
		b.checking = false
		b.renewMu.Unlock()
		if errors.Is(err, jetstream.ErrStreamNotFound) || err == nil && !info.Created.Equal(h.created) {
			b.renew(h)
		}
	}()
}
