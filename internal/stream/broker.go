package stream

import "errors"

// Errors returned by a broker and its subscriptions.
var (
	// ErrClosed reports a broker that has been closed: Publish and
	// Subscribe fail with it, and it ends every open subscription.
	ErrClosed = errors.New("broker closed")
	// ErrSlowConsumer ends a subscription whose queue was full when an
	// event had to be queued. The client should reconnect and resume.
	ErrSlowConsumer = errors.New("subscriber too slow, dropped")
	// ErrResumeOvertaken ends a resuming subscription whose history let
	// go of the events after its last event id before its replay handed
	// out any: the subscriber fell behind nothing, but what it resumed
	// from is older than the history now. A resume from the same id
	// answers what it can: a Reset, or a replay read from elsewhere (the
	// NATS broker's stream). The ended subscription keeps its place among
	// the subscriptions the broker allows until it is closed, for that
	// resume to take over (a broker's Resubscribe).
	ErrResumeOvertaken = errors.New("the events after the last event id were let go of before the replay began")
	// ErrTooManySubscribers reports that the broker holds as many
	// subscriptions as it is allowed to.
	ErrTooManySubscribers = errors.New("too many subscribers")
	// ErrInvalidEventType reports an event type (the `event:` field) that
	// holds CR, LF or NUL or is longer than MaxEventTypeLen bytes.
	ErrInvalidEventType = errors.New("invalid event type")
	// ErrUnavailable reports a broker that cannot reach what stores its
	// events (a NATS server): nothing was published or subscribed, unless
	// the error wraps ErrMaybeStored as well, and trying again later may
	// succeed.
	ErrUnavailable = errors.New("broker unavailable")
	// ErrMaybeStored, with ErrUnavailable, reports a publish that the
	// broker handed to its store without learning in time whether, or
	// under which id, it was stored (no acknowledgement came back): the
	// event may have been stored, and a retry with the same idempotency
	// key stores it once.
	ErrMaybeStored = errors.New("the event may have been stored")
	// ErrBusy reports a broker whose store is reachable but that could
	// not serve the request in time for the load on it (as many reads
	// from a NATS server at once as the broker allows): nothing was
	// subscribed, and trying again shortly may succeed.
	ErrBusy = errors.New("broker busy")
	// ErrStoreFull reports a broker whose store is reachable but refused
	// the event for want of room (a NATS server's JetStream storage, or
	// its account's limits, full before the stream's own limits let go of
	// old events; a stream that discards new events at its limits):
	// nothing was stored, and nothing will be until an operator makes
	// room.
	ErrStoreFull = errors.New("event store full")

	// ErrEventTooLarge refuses an event the broker's store cannot take,
	// though the hub's own limit let it through (a NATS server's
	// max_payload below hub.max_event_bytes): a request, not the broker,
	// is what to change.
	ErrEventTooLarge = errors.New("event too large for the event store")
)

// MaxEventTypeLen is the longest event type a broker accepts, in bytes.
const MaxEventTypeLen = 64

// Publication is one event to publish, as a broker's Publish takes it.
type Publication struct {
	// Topic is the topic to publish to (ValidateTopic).
	Topic string
	// Type is the event type, the `event:` field; empty for the default,
	// "message".
	Type string
	// Data is the event's data.
	Data string
	// Key, when not empty, is the publish's idempotency key
	// (ValidateIdempotencyKey): a publish repeating a key of its topic
	// within IdempotencyWindow stores nothing. Empty: every publish is
	// stored.
	Key string
}

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
// Live events wait in a queue of the subscription until the subscriber
// takes them: Ready says when to look, Take hands over everything queued at
// once. A broker never waits for the subscriber; one whose queue would grow
// past the broker's bound is dropped (Err is then ErrSlowConsumer), unless
// its replay is still being handed out: the queue, which is to follow the
// replay, is then let go of, and the replay reads on to the events it held
// from the broker's history, if that still holds the rest of the replay.
//
// Reset is fixed before Subscribe returns and may be called from any
// goroutine. Ready, Err and Close are safe for concurrent use with each
// other, with Replay and Take, with the broker's Publish and with closing
// the broker. Replay and Take are for one goroutine at a time: the
// subscriber's. An implementation is comparable (a pointer), so a
// Subscription can key a map.
type Subscription interface {
	// Replay appends to dst the next events of the replay, oldest first,
	// and returns the extended slice: the events after the requested last
	// event id that match the subscription, as they stood when Subscribe
	// returned, and on to the newest of those let go of from the queue
	// meanwhile (see above). It appends events until their frames take maxBytes or more
	// (see below for fewer) and reports done once the
	// replay has been handed out in full; done then stays true. The caller
	// sends the replay before anything Take returns: the queue starts with
	// the first event after the last one of the replay, so there is no gap
	// and no duplicate. A broker may instead queue missed events ahead of
	// the live ones and have no replay (done at once); a live-only
	// subscription (no last event id) has none either, and need not be
	// asked. The appended Messages are shared: do not modify them. A
	// broker may return fewer, or none, and not be done: it looks at a
	// bounded stretch of its history (or reads one page of it from
	// elsewhere) a call, which may have no match; the caller asks again,
	// watching its client meanwhile.
	//
	// A replay is read from what the broker retains, not copied at
	// Subscribe: a subscription holds its position only. If an event of
	// the rest of the replay is no longer retained (the subscriber fell
	// that far behind), the broker ends the subscription with
	// ErrSlowConsumer, as if its queue had overflowed, and Replay reports
	// done: the subscriber reconnects with the last id it got and learns
	// there (a Reset) that events were missed. When that happens before
	// the replay handed out any event, the subscriber fell behind
	// nothing: the broker ends it with ErrResumeOvertaken instead, not
	// counted as dropped, and the subscriber subscribes again with the
	// same last event id, to be answered as a resume from it is now. An
	// overtaken subscription keeps its place among the subscriptions the
	// broker allows until it is closed, and the subscriber's resume, made
	// in its place (a broker's Resubscribe), takes that place over: a
	// broker that holds as many as it allows does not give the place to
	// another subscriber meanwhile and refuse the resume. Once a
	// subscription has ended with its replay unfinished, neither the rest
	// of the replay nor its queue, which would follow a gap, is handed out.
	Replay(dst []*Message, maxBytes int) (msgs []*Message, done bool)
	// Reset, when not empty, says in words why the requested last event id
	// could not be resumed from: events may have been missed. There is
	// then no replay and the queue carries live events only, unless the
	// id is known to be older than every event the broker holds (from
	// before a restart): the replay is then all of them, from the oldest
	// the broker holds when Replay reads them, so that it is never
	// overtaken (ErrResumeOvertaken): a subscription with a Reset never
	// ends with it. It is empty for a live-only subscription.
	Reset() string
	// Position is the event id the subscription's first event comes
	// after: the requested last event id when it resumes from it, else
	// the broker's position when Subscribe returned. A client that goes
	// away before it gets an event and comes back with Position as its
	// last event id misses nothing the broker still holds, as with the id
	// of the last event it got. It is fixed before Subscribe returns.
	Position() string
	// Idle reports, while the subscription is open and has handed out
	// everything it had (its replay done, its queue empty), the id of the
	// newest event the broker has fanned out, whether it matched or not:
	// a client that got everything handed out and comes back with it as
	// its last event id misses nothing, as with Position. ok is false
	// while there is something to hand out, and once the subscription
	// has ended. A subscriber sends it now and then while idle, so that
	// its client's last event id keeps up with a busy broker whose events
	// are all for others: an id the history has let go of since resets.
	// A broker that reads replays from elsewhere may report an id below
	// the last one its replay handed out (the newest it has here): the
	// subscriber keeps the larger.
	Idle() (id uint64, ok bool)
	// Ready returns a channel that is signalled when there may be
	// something to Take: it receives a value after events were queued to
	// an empty queue, and it is closed when the subscription ends, so a
	// subscriber waiting on it never misses the end. A wake-up may find
	// nothing to take (events taken meanwhile); the subscriber then waits
	// again. Every call returns the same channel.
	Ready() <-chan struct{}
	// Take appends the queued events to dst, oldest first, until their
	// frames take maxBytes or more (every one for maxBytes 0 or less),
	// removes them from the queue and returns the extended slice. Those
	// it leaves stay queued, and count against the queue's bound, so a
	// subscriber that takes a write's worth at a time is dropped once
	// that bound waits behind its write, and Ready is signalled for them.
	// A subscription that has ended hands out all it holds at once. open
	// is false once the subscription has ended and nothing is left
	// to take, and stays false; events queued before the end are still
	// taken first. Take does not wait. The appended Messages are shared:
	// do not modify them.
	Take(dst []*Message, maxBytes int) (msgs []*Message, open bool)
	// Err returns why the subscription ended: ErrSlowConsumer,
	// ErrResumeOvertaken, ErrClosed (the broker was closed), or another
	// error of the broker's; nil while
	// it is open and when Close ended it.
	Err() error
	// Close ends the subscription. It is idempotent and does not change an
	// Err already set. Events queued before it can still be taken.
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
	// Subscribers is the number of open subscriptions, and of those
	// ended with ErrResumeOvertaken that keep their place until closed.
	Subscribers int
	// Published counts accepted events.
	Published uint64
	// Delivered counts events queued to subscribers plus events replayed
	// (as Replayed counts them) that were not queued first: those a
	// subscription's queue let go of for its replay to read on to are
	// counted once, when queued. It never goes down.
	Delivered uint64
	// Dropped counts subscriptions ended because their queue was full.
	Dropped uint64
	// Replayed counts events of replays: for Memory, those handed out by
	// Subscription.Replay, as they are; a broker that reads a replay from
	// elsewhere may count what it read, as it reads it.
	Replayed uint64
	// HistoryBytes is what the retained history takes, as the history's
	// byte bound counts it (MemoryOptions.HistoryMaxBytes).
	HistoryBytes int64
}
