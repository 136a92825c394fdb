package natsbroker

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/ssehub/ssehub/internal/stream"
)

// The publishes queued while the publisher's goroutine was busy leave
// together, in the order they were queued.
func TestPublisherSendsWhatIsQueuedInOrder(t *testing.T) {
	ns := startNATS(t)
	b := openBroker(t, testBrokerOptions(ns))
	p := &publisher{js: b.js, queue: make(chan *publishing, 5)} // no run
	var pubs []*publishing
	for range cap(p.queue) {
		pub := &publishing{msg: &nats.Msg{Subject: b.subject("a"), Data: []byte("x")}, sent: make(chan struct{})}
		pubs = append(pubs, pub)
		p.queue <- pub
	}
	if n := p.sendQueued(); n != len(pubs) {
		t.Fatalf("sendQueued sent %d of %d queued", n, len(pubs))
	}
	var last uint64
	for i, pub := range pubs {
		<-pub.sent
		if pub.err != nil {
			t.Fatal(pub.err)
		}
		select {
		case ack := <-pub.ack.Ok():
			if ack.Sequence <= last {
				t.Fatalf("publish %d stored as %d, after %d", i, ack.Sequence, last)
			}
			last = ack.Sequence
		case err := <-pub.ack.Err():
			t.Fatal(err)
		}
	}
}

// A publish still waiting for the publisher when the broker closes ends
// with stream.ErrClosed; with batching off, a publish after stop is not
// sent at all.
func TestPublisherStopEndsWaitingPublishes(t *testing.T) {
	t.Run("batched", func(t *testing.T) {
		stop := make(chan struct{})
		p := &publisher{queue: make(chan *publishing), stop: stop} // no run: nothing is taken
		got := publishInBackground(context.Background(), p, &nats.Msg{Subject: "ssehub.a"})
		close(stop)
		if err := <-got; !errors.Is(err, stream.ErrClosed) {
			t.Fatalf("publish after stop: %v, want stream.ErrClosed", err)
		}
	})
	t.Run("unbatched", func(t *testing.T) {
		ns := startNATS(t)
		b := openBroker(t, testBrokerOptions(ns))
		stop := make(chan struct{})
		p := newPublisher(b.js, stop, false)
		close(stop)
		if _, err := p.publish(context.Background(), &nats.Msg{Subject: b.subject("a"), Data: []byte("x")}); !errors.Is(err, stream.ErrClosed) {
			t.Fatalf("publish after stop: %v, want stream.ErrClosed", err)
		}
		if n := storedEvents(t, b); n != 0 {
			t.Fatalf("the stream holds %d events after a publish that answered stream.ErrClosed", n)
		}
	})
}

// In both modes a publish that gets no acknowledgement ends with ctx's
// error, and one in flight when the broker closes with stream.ErrClosed.
// A core subscriber that never answers stands in for a slow JetStream:
// it receives the publish, so the test knows it is in flight.
func TestPublisherAnswersAlikeInBothModes(t *testing.T) {
	eachPublishMode(t, func(t *testing.T, options func(*natsServer) Options) {
		ns := startNATS(t)
		b, err := Open(t.Context(), options(ns))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		received := make(chan *nats.Msg, 2)
		sub, err := b.nc.ChanSubscribe("silent.a", received)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sub.Unsubscribe() }() // b.Close ends it anyway

		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		if _, err := b.pub.publish(ctx, &nats.Msg{Subject: "silent.a"}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("publish never acknowledged: %v, want context.DeadlineExceeded", err)
		}
		<-received

		got := publishInBackground(t.Context(), b.pub, &nats.Msg{Subject: "silent.a"})
		<-received // in flight
		b.Close()
		if err := <-got; !errors.Is(err, stream.ErrClosed) {
			t.Fatalf("publish in flight at Close: %v, want stream.ErrClosed", err)
		}
		if _, _, err := b.Publish(stream.Publication{Topic: "a", Data: "x"}); !errors.Is(err, stream.ErrClosed) {
			t.Fatalf("Publish after Close: %v, want stream.ErrClosed", err)
		}
	})
}

// With publish batching on, Open starts the publisher's goroutine; with
// it off none runs, not even once events are published: each is sent
// from its handler's goroutine. Goroutine ids are never reused, so those
// of other tests' publishers, ending or not, are told apart.
func TestPublishBatchingSwitchDecidesThePublisherGoroutine(t *testing.T) {
	eachPublishMode(t, func(t *testing.T, options func(*natsServer) Options) {
		ns := startNATS(t)
		opts := options(ns)
		before := publisherGoroutines()
		a := newInstance(t, opts)
		for i := range 3 {
			a.publish(t, "a", strconv.Itoa(i))
		}
		started := 0
		for id := range publisherGoroutines() {
			if !before[id] {
				started++
			}
		}
		want := 1
		if opts.DisablePublishBatching {
			want = 0
		}
		if started != want {
			t.Fatalf("%d publisher goroutines started with DisablePublishBatching %v, want %d", started, opts.DisablePublishBatching, want)
		}
	})
}

// publisherGoroutines returns the ids of the goroutines in a publisher's
// run, read from a dump of every goroutine's stack.
func publisherGoroutines() map[string]bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	ids := map[string]bool{}
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		// "goroutine 42 [select]:" and its frames, innermost first.
		if strings.Contains(g, "natsbroker.(*publisher).run(") {
			ids[strings.Fields(g)[1]] = true
		}
	}
	return ids
}

// A publish whose caller gave up while it waited in the queue (its
// context ended: the client was answered 503) is not sent when the
// publisher's goroutine comes to it: stored then, a client's retry without
// an Idempotency-Key would store the event twice.
func TestPublisherDropsAQueuedPublishItsCallerGaveUp(t *testing.T) {
	ns := startNATS(t)
	b := openBroker(t, testBrokerOptions(ns))
	p := &publisher{js: b.js, queue: make(chan *publishing, 1), stop: b.closed} // no run: it stays queued
	ctx, cancel := context.WithCancel(t.Context())
	got := publishInBackground(ctx, p, &nats.Msg{Subject: b.subject("a"), Data: []byte("x")})
	waitFor(t, "the publish queued", func() bool { return len(p.queue) == 1 })
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("publish given up while queued: %v, want context.Canceled", err)
	}
	p.sendQueued()
	if n := storedWithOneMore(t, b); n != 1 {
		t.Fatalf("the stream holds %d events, want 1: the publish given up was stored", n)
	}
}

// A caller whose context ends just after the publisher's goroutine took
// its publish to send it gets what the send gives, not its context's
// error: answered 503 for an event being stored, a client's retry
// without an Idempotency-Key would store it twice.
func TestPublisherCallerGivingUpTooLateGetsTheOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &publisher{queue: make(chan *publishing, 1), stop: make(chan struct{})} // no run: the test sends
		ctx, cancel := context.WithCancel(t.Context())
		got := publishInBackground(ctx, p, &nats.Msg{Subject: "a", Data: []byte("x")})
		synctest.Wait()
		pub := <-p.queue
		if !pub.take() { // as send does, first
			t.Fatal("a publish queued was taken before send came to it")
		}
		cancel()
		synctest.Wait()
		select {
		case err := <-got:
			t.Fatalf("publish returned %v while its event was being sent", err)
		default:
		}
		pub.err = nats.ErrMaxPayload // what PublishMsgAsync gave
		close(pub.sent)
		if err := <-got; !errors.Is(err, nats.ErrMaxPayload) {
			t.Fatalf("publish: %v, want the send's %v", err, nats.ErrMaxPayload)
		}
	})
}

// A publish still queued when the broker closes is answered
// stream.ErrClosed, and then never sent: the publisher's goroutine, which
// may take more queued publishes as stop closes, finds it given up, and
// sends none once stop is closed.
// Sent, it would be stored though its caller was told it failed, and a
// client's retry without an Idempotency-Key would store it twice.
func TestPublisherDropsAQueuedPublishAnsweredClosed(t *testing.T) {
	ns := startNATS(t)
	b := openBroker(t, testBrokerOptions(ns))
	stop := make(chan struct{})
	p := &publisher{js: b.js, queue: make(chan *publishing, 1), stop: stop} // no run: the test sends
	got := publishInBackground(t.Context(), p, &nats.Msg{Subject: b.subject("a"), Data: []byte("x")})
	waitFor(t, "the publish queued", func() bool { return len(p.queue) == 1 })
	close(stop)
	if err := <-got; !errors.Is(err, stream.ErrClosed) {
		t.Fatalf("publish queued at stop: %v, want stream.ErrClosed", err)
	}
	p.sendQueued() // as run may, having chosen the queue over stop
	// One queued whose caller has yet to see stop is not sent either: run
	// may be sending what is queued as stop closes, and the caller, told
	// stream.ErrClosed, would have it stored.
	late := &publishing{msg: &nats.Msg{Subject: b.subject("a"), Data: []byte("z")}, sent: make(chan struct{})}
	p.queue <- late
	p.sendQueued()
	if !late.take() {
		t.Fatal("a publish queued after stop was taken to be sent")
	}
	if n := storedWithOneMore(t, b); n != 1 {
		t.Fatalf("the stream holds %d events, want 1: the publish answered stream.ErrClosed was stored", n)
	}
}

// A publish that the publisher's goroutine has taken to send when the
// broker closes may be stored: its caller, which sees stop before the
// send ends, answers that it may have been stored, not stream.ErrClosed
// ("shutting down: try again"), which had a client's plain retry store
// it twice.
func TestPublisherTakenToSendAtStopMayHaveBeenStored(t *testing.T) {
	ns := startNATS(t)
	b := openBroker(t, testBrokerOptions(ns))
	stop := make(chan struct{})
	p := &publisher{js: b.js, queue: make(chan *publishing, 1), stop: stop} // no run: the test sends
	msg := &nats.Msg{Subject: b.subject("a"), Data: []byte("x")}
	got := publishInBackground(t.Context(), p, msg)
	pub := <-p.queue
	if !pub.take() { // as send does, before it sends
		t.Fatal("a publish queued was taken before send came to it")
	}
	close(stop) // as the send is under way
	err := <-got
	pub.ack, pub.err = b.js.PublishMsgAsync(msg, jetstream.WithRetryAttempts(0)) // the send ends
	close(pub.sent)
	if n := storedWithOneMore(t, b); n != 2 {
		t.Fatalf("the stream holds %d events, want 2", n)
	}
	if !errors.Is(err, stream.ErrMaybeStored) {
		t.Fatalf("publish taken to send at stop, and stored: %v, want one wrapping stream.ErrMaybeStored", err)
	}
}

// More publishes awaiting their acknowledgement than the NATS client
// keeps (nats.go's PublishAsyncMaxPending, 4000), on a NATS server that
// acknowledges none: those the client refuses are answered busy, not
// unreachable (the connection is up), and none is acknowledged.
func TestPublishesPastTheClientsPendingCapAnswerBusy(t *testing.T) {
	t.Parallel() // waits for the publish timeout, not on the CPU
	_, p, opts := startProxied(t)
	// Time for 4000 to be sent on a loaded machine before the first is
	// forgotten, which frees its place.
	opts.PublishTimeout = 5 * time.Second
	b := openBroker(t, opts)
	p.swallowRequests(DefaultSubjectPrefix + ".")
	const n = 4200
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, _, errs[i] = b.Publish(stream.Publication{Topic: "t", Data: strconv.Itoa(i)})
		})
	}
	wg.Wait()
	stalled := 0
	for i, err := range errs {
		switch {
		case err == nil:
			t.Fatalf("publish %d acknowledged by a server that acknowledges none", i)
		case errors.Is(err, jetstream.ErrTooManyStalledMsgs):
			stalled++
			if !errors.Is(err, stream.ErrBusy) || errors.Is(err, stream.ErrUnavailable) {
				t.Errorf("publish %d refused by the client's cap: %v, want one wrapping stream.ErrBusy only", i, err)
			}
		}
	}
	if stalled == 0 {
		t.Fatal("no publish was refused by the client's cap")
	}
	t.Logf("%d of %d refused by the client's cap", stalled, n)
	waitFor(t, "no publish pending", func() bool { return b.js.PublishAsyncPending() == 0 })
}

// storedEvents is how many events b's stream holds.
func storedEvents(t *testing.T, b *Broker) uint64 {
	t.Helper()
	info, err := b.cur.Load().stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// storedWithOneMore publishes one event to topic a straight to JetStream
// and returns how many events b's stream holds once it is acknowledged:
// the server handled what was sent before it first.
func storedWithOneMore(t *testing.T, b *Broker) uint64 {
	t.Helper()
	if _, err := b.js.Publish(t.Context(), b.subject("a"), []byte("y")); err != nil {
		t.Fatal(err)
	}
	return storedEvents(t, b)
}

// publishInBackground publishes msg through p with ctx on a goroutine of
// its own, and returns where its error is sent.
func publishInBackground(ctx context.Context, p *publisher, msg *nats.Msg) <-chan error {
	got := make(chan error, 1)
	go func() {
		_, err := p.publish(ctx, msg)
		got <- err
	}()
	return got
}

// A publish that the server answers no one responds to (no server takes
// the stream's subjects, as during a leader's election) is sent again
// after jetstream.DefaultPubRetryWait, while its caller waits: one whose
// wait has ended meanwhile, answered 503, is not sent again, to be
// stored after all (a client's plain retry would store it twice).
func TestPublishAnsweredUnavailableIsNotSentAgainLater(t *testing.T) {
	t.Parallel() // waits for the publish retries, not on the CPU
	eachPublishMode(t, func(t *testing.T, options func(*natsServer) Options) {
		ns := startNATS(t)
		p := startProxy(t, ns)
		opts := options(ns)
		opts.URLs = []string{p.url()}
		b := openBroker(t, opts)
		// The answer reaches the client as the wait nears its end: a
		// new try, jetstream.DefaultPubRetryWait later, would be sent
		// after it.
		released := p.misrouteNext(DefaultSubjectPrefix+".", opts.PublishTimeout-jetstream.DefaultPubRetryWait/2)
		_, _, err := b.Publish(stream.Publication{Topic: "t", Data: "late"})
		if !errors.Is(err, stream.ErrUnavailable) {
			t.Fatalf("publish answered %v, want an error wrapping stream.ErrUnavailable", err)
		}
		<-released
		// Past the time the NATS client would send it again.
		time.Sleep(2 * jetstream.DefaultPubRetryWait)
		if n := storedWithOneMore(t, b); n != 1 {
			t.Fatalf("the stream holds %d events, want 1: the publish answered %v was stored after all", n, err)
		}
	})
}

// A publish that no server took is sent again while its caller waits,
// in either mode, and stored once.
func TestPublishThatNoServerTookIsSentAgainInTime(t *testing.T) {
	eachPublishMode(t, func(t *testing.T, options func(*natsServer) Options) {
		ns := startNATS(t)
		p := startProxy(t, ns)
		opts := options(ns)
		opts.URLs = []string{p.url()}
		b := openBroker(t, opts)
		p.misrouteNext(DefaultSubjectPrefix+".", 0)
		if _, _, err := b.Publish(stream.Publication{Topic: "t", Data: "blip"}); err != nil {
			t.Fatal(err)
		}
		if n := storedEvents(t, b); n != 1 {
			t.Fatalf("the stream holds %d events, want 1", n)
		}
	})
}
