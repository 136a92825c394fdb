package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/ssehub/ssehub/internal/stream"
)

// publisherQueue is how many publishes may wait for the publisher's
// goroutine; more block their handlers until it catches up.
const publisherQueue = 1024

// publisher hands the instance's publishes to JetStream from one
// goroutine, as asynchronous publishes whose acknowledgements each
// publish awaits on its own. Options.DisablePublishBatching turns this
// off: each publish is then a synchronous one from its caller's
// goroutine, and no goroutine of the publisher's runs.
//
// Why one goroutine: when every handler published for itself, nats.go's
// flusher ran after each one and wrote each event to the socket alone,
// and the NATS server read, stored, acknowledged and delivered them one
// by one. From one goroutine, the publishes that arrive together leave
// in one write and travel together. Measured with bench/nats.sh (16
// publishers, each NATS instance on GOMAXPROCS=1, A/B against the
// handlers publishing for themselves, 3 rounds each): CPU per publish
// across the NATS server, both instances and the client 330 → 255 µs
// (the NATS server's 98 → 60 µs), 4,611 → 5,595 publishes/s. With the
// switch off the handlers publish for themselves again, as in the first
// figures.
//
// Either way publish answers the same: the acknowledgement, or the
// error of JetStream, of ctx, or after stop stream.ErrClosed (not sent)
// or errClosedInFlight (sent, not acknowledged).
type publisher struct {
	js    jetstream.JetStream
	queue chan *publishing // nil with batching off: no run, each publish is sent by its caller
	stop  <-chan struct{}  // closed by Broker.Close: run returns
	done  chan struct{}    // closed when run has returned, or at once without run
}

// publishing is one publish on its way: sent is closed once ack or err
// is set. taken is set by whichever comes first (take): send, or its
// caller giving up while it waits in the queue; one given up is not
// sent, and a caller that gives up too late waits for the outcome.
type publishing struct {
	msg   *nats.Msg
	ack   jetstream.PubAckFuture
	err   error
	sent  chan struct{}
	taken atomic.Bool
}

// newPublisher returns the publisher of js until stop is closed: with
// batching, its goroutine runs; without, there is none.
func newPublisher(js jetstream.JetStream, stop <-chan struct{}, batching bool) *publisher {
	p := &publisher{js: js, stop: stop, done: make(chan struct{})}
	if !batching {
		close(p.done)
		return p
	}
	p.queue = make(chan *publishing, publisherQueue)
	go p.run()
	return p
}

// run sends publishes until stop is closed: each one that arrives, then
// those queued meanwhile.
func (p *publisher) run() {
	defer close(p.done)
	for {
		select {
		case pub := <-p.queue:
			p.send(pub)
			p.sendQueued()
		case <-p.stop:
			return
		}
	}
}

// sendQueued sends the publishes queued now, in their order, and returns
// how many it sent. Only run (and tests, without run) may call it.
func (p *publisher) sendQueued() int {
	for n := 0; ; n++ {
		select {
		case pub := <-p.queue:
			p.send(pub)
		default:
			return n
		}
	}
}

// send sends pub, unless its caller gave up: answered 503, and stored
// later, a client's retry without an Idempotency-Key stored it twice.
// After stop it sends none: their callers answer stream.ErrClosed.
func (p *publisher) send(pub *publishing) {
	if p.stopped() || !pub.take() {
		return
	}
	pub.ack, pub.err = p.js.PublishMsgAsync(pub.msg, jetstream.WithRetryAttempts(0))
	close(pub.sent)
}

// take reports whether it is the first to take pub: send, to send it,
// or its caller, to give it up.
func (pub *publishing) take() bool {
	return pub.taken.CompareAndSwap(false, true)
}

// publish sends msg and waits for JetStream's acknowledgement, until ctx
// ends; after stop it returns stream.ErrClosed. It is safe for
// concurrent use.
func (p *publisher) publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	ctx = byClock{ctx}
	if p.queue == nil {
		return p.publishNow(ctx, msg)
	}
	return p.publishQueued(ctx, msg)
}

// publishNow is publish with batching off: a synchronous publish from
// the caller's goroutine. A publish in flight when stop is closed ends
// once Broker.Close closes the connection, not at once as in
// publishQueued; it returns errClosedInFlight as well.
func (p *publisher) publishNow(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	if p.stopped() {
		return nil, stream.ErrClosed
	}
	ack, err := p.js.PublishMsg(ctx, msg)
	if err != nil && p.stopped() {
		return nil, errClosedInFlight
	}
	return ack, err
}

// errClosedInFlight is the error of a publish sent, or being sent, when
// stop is closed, and not acknowledged: it may be stored. (One
// acknowledged is answered with its acknowledgement: it is stored.)
var errClosedInFlight = fmt.Errorf("%w: %w", stream.ErrMaybeStored, stream.ErrClosed)

// stopped reports whether stop is closed.
func (p *publisher) stopped() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}

// publishQueued is publish with batching on: run sends msg, and the
// caller waits for the acknowledgement. A publish that no server took
// (no responders: a stream's leader being elected) is queued again
// after retryWait, up to retryAttempts times, as nats.go's synchronous
// publish sends it again, while ctx lasts. nats.go's asynchronous
// publish would send it again itself, also once its caller had given
// up: answered 503, it was stored all the same.
func (p *publisher) publishQueued(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	for try := 0; ; try++ {
		ack, err := p.publishQueuedOnce(ctx, msg)
		if !errors.Is(err, jetstream.ErrNoStreamResponse) || try == retryAttempts || p.pause(ctx, retryWait) != nil {
			return ack, err
		}
	}
}

// errNotSent marks the error of a publish that its caller gave up on
// before it was sent: it was not stored.
var errNotSent = errors.New("not sent")

// retryWait and retryAttempts are nats.go's for a publish that no server
// took (jetstream.DefaultPubRetryWait, DefaultPubRetryAttempts).
const (
	retryWait     = jetstream.DefaultPubRetryWait
	retryAttempts = jetstream.DefaultPubRetryAttempts
)

// pause waits d, or returns an error when ctx ends or stop is closed
// first.
func (p *publisher) pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-p.stop:
		return stream.ErrClosed
	}
}

// byClock is a publish's ctx, whose Err says its deadline passed as soon
// as the clock is past it. A context.WithTimeout is done only once its
// timer's goroutine has run and cancelled it: on a loaded machine a
// publish that no server took, tried again retryWait later, was sent
// after its caller's deadline, answered 503 and stored all the same
// (TestPublishAnsweredUnavailableIsNotSentAgainLater, batched). A try is
// not sent once Err says so: publishQueuedOnce's, and nats.go's
// synchronous publish's, which asks Err before each.
// (TestPublishPastItsDeadlineIsNotSent)
type byClock struct{ context.Context }

func (c byClock) Err() error {
	if err := c.Context.Err(); err != nil {
		return err
	}
	if deadline, ok := c.Deadline(); ok && !time.Now().Before(deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// publishQueuedOnce is one try of publishQueued.
func (p *publisher) publishQueuedOnce(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", errNotSent, err)
	}
	pub := &publishing{msg: msg, sent: make(chan struct{})}
	select {
	case p.queue <- pub:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", errNotSent, ctx.Err())
	case <-p.stop:
		return nil, stream.ErrClosed
	}
	select {
	case <-pub.sent:
	case <-ctx.Done():
		if pub.take() {
			return nil, fmt.Errorf("%w: %w", errNotSent, ctx.Err())
		}
		// send took it first: it is being sent, and a 503 would have the
		// client send again an event stored. The acknowledgement is
		// awaited for the async publish timeout (PublishTimeout) at most.
		ctx = context.WithoutCancel(ctx)
		select {
		case <-pub.sent:
		case <-p.stop:
			return nil, errClosedInFlight
		}
	case <-p.stop:
		// run may still take one more queued publish as it stops: given
		// up here, it is not sent, as this answer says. One send took
		// first is in flight, and may be stored.
		if pub.take() {
			return nil, stream.ErrClosed
		}
		return nil, errClosedInFlight
	}
	if pub.err != nil {
		return nil, pub.err
	}
	select {
	case ack := <-pub.ack.Ok():
		return ack, nil
	case err := <-pub.ack.Err():
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.stop:
		return nil, errClosedInFlight
	}
}
