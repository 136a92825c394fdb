package stream

import (
	"errors"
	"fmt"
	"strconv"
)

// ErrOutOfOrder reports an id given to Deliver that is not above the ids
// the broker has already used.
var ErrOutOfOrder = errors.New("event id out of order")

// Deliver is Publish with the event's id chosen by the caller: a broker
// that keeps its events elsewhere (a NATS JetStream stream) assigns the ids
// there and hands each event here, in id order, for local fan-out and a
// local history. id must be above every id used before, else Deliver
// returns ErrOutOfOrder; ids skipped over are ids with no event, and a
// resume across them loses nothing, except those before the first event
// delivered: the history starts at it, and a resume from below it resets.
// Safe for concurrent use, like Publish.
func (b *Memory) Deliver(id uint64, topic, eventType, data string) (*Message, error) {
	if id == 0 {
		return nil, fmt.Errorf("id 0: %w", ErrOutOfOrder)
	}
	msg, _, err := b.publish(id, Publication{Topic: topic, Type: eventType, Data: data})
	return msg, err
}

// Lose is for a broker that assigns ids elsewhere and learnt that the
// events of the ids below id it has not delivered are lost, not absent (a
// NATS stream let them go before its consumer read them): nobody here may
// pass over them as over ids with no event. Each open subscription ends
// with err (its client reconnects, and is reset there), and the history
// lets go of everything it retains and goes on at id, so that a resume
// from an id below id-1 resets. id must not be below the next id, else
// Lose returns an error wrapping ErrOutOfOrder.
func (b *Memory) Lose(id uint64, err error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if id < b.hist.next {
		return fmt.Errorf("id %d after %d: %w", id, b.hist.next-1, ErrOutOfOrder)
	}
	var ended []*memorySubscription
	endAll := func(g *group) {
		for _, s := range g.subs {
			if !s.closed {
				b.closeSub(s, err)
				ended = append(ended, s)
			}
		}
	}
	for _, t := range b.topics {
		endAll(&t.group)
	}
	for _, g := range b.wild {
		endAll(g)
	}
	for _, s := range ended { // not while the groups are iterated
		b.unlink(s)
	}
	b.forget(b.hist.loseTo(id))
	return nil
}

// Retained returns the message with id id while the history retains it,
// else nil: a broker that assigns ids elsewhere checks with it that the
// event it handed to Deliver under an id is the one it expects.
func (b *Memory) Retained(id uint64) *Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.hist
	if len(h.ring) == 0 || id < h.oldest || id >= h.next {
		return nil
	}
	if m := h.ring[id%uint64(len(h.ring))].msg; m != nil && m.ID == id {
		return m
	}
	return nil
}

// skipTo makes id the next id of the history (see history.skipTo) and
// forgets the topics of the messages it evicts. The caller holds b.mu.
func (b *Memory) skipTo(id uint64) error {
	if id < b.hist.next {
		return fmt.Errorf("id %d after %d: %w", id, b.hist.next-1, ErrOutOfOrder)
	}
	b.forget(b.hist.skipTo(id))
	return nil
}

// NewMessage validates topic and eventType as Publish does and returns the
// event encoded with id, for a broker that hands out events it did not
// publish through a Memory (a replay read from elsewhere).
func NewMessage(id uint64, topic, eventType, data string) (*Message, error) {
	if err := ValidateTopic(topic); err != nil {
		return nil, err
	}
	if err := ValidateEventType(eventType); err != nil {
		return nil, err
	}
	return encodeMessage(make([]byte, 0, frameSize(eventType, data)), id, topic, eventType, data)
}

// ValidateEventType checks an event type (the `event:` field) as Publish
// does: at most MaxEventTypeLen bytes, no CR, LF or NUL.
func ValidateEventType(eventType string) error { return validateEventType(eventType) }

// encodeMessage returns the Message of a validated event, its frame
// appended to buf.
func encodeMessage(buf []byte, id uint64, topic, eventType, data string) (*Message, error) {
	msg := &Message{ID: id, Topic: topic, id: strconv.FormatUint(id, 10)}
	frame, err := (&Event{ID: msg.id, Type: eventType, Data: data}).AppendTo(buf)
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	msg.Frame = frame
	return msg, nil
}
