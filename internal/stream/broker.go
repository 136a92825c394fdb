package stream

import "errors"

// Errors returned by a broker and its subscriptions.
var (
	// ErrClosed reports a broker that has been closed: Publish and
	// Subscribe fail with it, and it ends every open subscription.
	ErrClosed = errors.New("broker closed")
	// ErrSlowConsumer ends a subscription whose buffer was full when an
	// event had to be queued. The client should reconnect and resume.
	ErrSlowConsumer = errors.New("subscriber too slow, dropped")
	// ErrTooManySubscribers reports that the broker holds as many
	// subscriptions as it is allowed to.
	ErrTooManySubscribers = errors.New("too many subscribers")
	// ErrInvalidEventType reports an event type (the `event:` field) that
	// holds CR, LF or NUL or is longer than MaxEventTypeLen bytes.
	ErrInvalidEventType = errors.New("invalid event type")
)

// MaxEventTypeLen is the longest event type a broker accepts, in bytes.
const MaxEventTypeLen = 64

// Message is one published event as the broker keeps and delivers it. A
// broker creates it once per Publish and shares the same Message with every
// subscriber and the history: it must be treated as read-only.
type Message struct {
	// ID is the event id; ids increase in publish order across all topics.
	ID uint64
	// Topic is the topic the event was published to.
	Topic string
	// Frame is the complete SSE frame: id, event and data lines and the
	// blank line that ends it, ready to be written as it is.
	Frame []byte

	id string // ID in decimal, as sent in the frame's id field
}

// IDString returns the event id as clients see it, in decimal. It does not
// allocate.
func (m *Message) IDString() string { return m.id }

// Subscription is one subscriber of a broker: the events it missed, or why
// they cannot be sent, and then the live events. It is the seam between a
// broker and the stream that sends its events; Memory's subscriptions are
// one implementation.
//
// Reset and Replay are fixed before Subscribe returns and may be called
// from any goroutine. C, Err and Close are safe for concurrent use with each
// other, with the broker's Publish and with closing the broker. An
// implementation is comparable (a pointer), so a Subscription can key a map.
type Subscription interface {
	// Replay returns the events after the requested last event id that
	// match the subscription, oldest first. The caller sends them before
	// anything read from C: C starts with the first event after the last
	// one in Replay, so there is no gap and no duplicate. A broker may
	// instead deliver missed events at the head of C and return none here.
	// The caller may reslice the result but must not modify it or its
	// Messages.
	Replay() []*Message
	// Reset, when not empty, says in words why the requested last event id
	// could not be resumed from; Replay is then empty and C carries live
	// events only. It is empty for a live-only subscription.
	Reset() string
	// C returns the channel of events. It is closed exactly once, when the
	// subscription ends; Err then says why. Every Message is shared: do not
	// modify it.
	C() <-chan *Message
	// Err returns why C was closed: ErrSlowConsumer, ErrClosed (the broker
	// was closed), or another error of the broker's; nil while C is open
	// and when Close ended the subscription.
	Err() error
	// Close ends the subscription and closes C if it is still open. It is
	// idempotent and does not change an Err already set.
	Close()
}

// TopicInfo describes one active topic, as listed by Topics.
type TopicInfo struct {
	// Topic is the topic's name.
	Topic string
	// Subscribers counts the subscriptions that receive this topic's
	// events, through an exact pattern or a wildcard.
	Subscribers int
	// LastEventID is the id of the newest event published to the topic
	// that the broker knows of, or "" when none is known.
	LastEventID string
}

// Stats is a broker's running totals, read without stopping the broker.
type Stats struct {
	// Subscribers is the number of open subscriptions.
	Subscribers int
	// Published counts accepted events.
	Published uint64
	// Delivered counts events queued to subscribers plus events replayed.
	Delivered uint64
	// Dropped counts subscriptions ended because their buffer was full.
	Dropped uint64
	// Replayed counts events handed out in Subscription.Replay.
	Replayed uint64
}
