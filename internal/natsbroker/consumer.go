package natsbroker

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// consume starts the instance's one ordered consumer on the whole stream,
// from sequence from on. The ordered consumer survives a lost connection:
// once it is back, it starts again after the last sequence it delivered,
// so subscribers miss nothing.
//
// It has no subject filter: the stream's one subject is the prefix's
// wildcard (ensureStream checks it), and a filter equal to it made the
// server match every event's subject for each instance's consumer.
func (b *Broker) consume(ctx context.Context, from uint64) error {
	cons, err := b.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
	})
	if err != nil {
		return fmt.Errorf("nats: consumer on stream %q: %w", b.opts.Stream, err)
	}
	b.cc, err = cons.Consume(b.deliver, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		b.opts.Logger.Debug("nats consumer", "err", err)
	}))
	if err != nil {
		return fmt.Errorf("nats: consume stream %q: %w", b.opts.Stream, err)
	}
	return nil
}

// deliver hands one message of the stream to the local broker with the id
// of its sequence. A message the hub cannot take (published by another
// client to a subject that is no topic) is skipped: its id has no event.
// It is called by the consumer's goroutine, one message at a time.
func (b *Broker) deliver(m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		return
	}
	b.lag.Store(md.NumPending)
	defer b.seen.advance(md.Sequence.Stream)
	topic, ok := b.topic(m.Subject())
	if !ok {
		return
	}
	if _, err := b.mem.Deliver(b.ids.id(md.Sequence.Stream), topic, m.Headers().Get(eventTypeHeader), string(m.Data())); err != nil {
		b.opts.Logger.Debug("nats event skipped", "seq", md.Sequence.Stream, "subject", m.Subject(), "err", err)
	}
}
