package natsbroker

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/ssehub/ssehub/internal/testlog"
)

// The consumer deleted, and the request that makes it again swallowed on
// its way (as a cluster does while its meta leader changes): the
// instance asks again within askEvery, and its subscriber gets the next
// event. nats.go's ordered consumer asked once and waited 10 s, its lock
// held, before it asked again: the event came 11 s late.
func TestConsumerAskedForAgainWhenUnanswered(t *testing.T) {
	ns, p, c, b := subscribedBehindProxy(t)
	swallowed := p.swallowRequests("$JS.API.CONSUMER.CREATE.")
	deleteConsumers(t, ns)
	select {
	case <-swallowed:
	case <-time.After(waitLimit):
		t.Fatal("the consumer was not made again")
	}
	p.passRequests()
	id := publishUntilAccepted(t, b, "t", "after") // b's consumer was deleted too: b checks its stream
	// askWait: 10 times askEvery.
	if got := c.nextWithin(t, askWait, fmt.Sprintf("no event within %v of the swallowed request", askWait)); got.ID != id {
		t.Fatalf("got %+v, want event %s", got, id)
	}
}

// A delivery lost on its way, as in a connection that breaks: the
// consumer is made again after the reconnect, from the last event it
// delivered, and its subscriber gets the lost event with no other event
// to reveal the gap.
func TestConsumerMadeAgainAfterAReconnect(t *testing.T) {
	_, p, c, b := subscribedBehindProxy(t)
	ids := []string{b.publish(t, "t", "before")}
	receives(t, c, ids)
	lost := p.loseDeliveries("lost on the way")
	ids = append(ids, b.publish(t, "t", "lost on the way"))
	<-lost
	p.passDeliveries()
	p.cut()
	got := c.next(t)
	if got.ID != ids[1] || got.Data != "lost on the way" {
		t.Fatalf("after the reconnect: %+v, want event %s", got, ids[1])
	}
}

// A delivery lost with the connection still up: the next message skips
// a consumer sequence, and the consumer is made again from the last event
// it delivered: the subscriber gets both, in order.
func TestConsumerMadeAgainAfterAGap(t *testing.T) {
	_, p, c, b := subscribedBehindProxy(t)
	lost := p.loseDeliveries("lost on the way")
	ids := []string{b.publish(t, "t", "lost on the way")}
	<-lost
	p.passDeliveries()
	ids = append(ids, b.publish(t, "t", "next"))
	for i, id := range ids {
		if got := c.next(t); got.ID != id {
			t.Fatalf("event %d: %+v, want id %s", i, got, id)
		}
	}
}

// The consumer made again, and placed where its creation is never
// answered, asked again under its name or not (a server that crashed):
// the instance asks for one under another name, and its subscriber gets
// the next event. Asked again under one name, the creation stayed there
// (TestClusterNodeStopsWhilePublishing, its crash case).
func TestConsumerNamedAnewWhenItsCreationStaysUnanswered(t *testing.T) {
	ns, p, c, b := subscribedBehindProxy(t)
	placed := p.placeOnDeadServer()
	deleteConsumers(t, ns)
	id := publishUntilAccepted(t, b, "t", "after") // b's consumer was deleted too: b checks its stream
	if got := c.next(t); got.ID != id {
		t.Fatalf("got %+v, want event %s", got, id)
	}
	select {
	case <-placed:
	default:
		t.Fatal("no consumer creation went unanswered: the test did not test its case")
	}
}

// NATS answering each JetStream request in 700 ms, as a busy server does,
// when the consumer is to be made again (a reconnect): it is, and the
// subscriber gets the next event. Asking again every askEvery, and
// dropping the request before, it had no answer ever: no event in 20 s,
// and a consumer left on the server by each request.
func TestConsumerMadeAgainWhileNATSAnswersSlowly(t *testing.T) {
	_, p, c, b := subscribedBehindProxy(t)
	receives(t, c, []string{b.publish(t, "t", "before")})
	p.slowAnswers(700 * time.Millisecond)
	p.cut()
	receives(t, c, []string{b.publish(t, "t", "after")})
}

// The consumer refused again and again (JetStream unavailable, as on a
// server recovering), its next ask 4 s away, when the connection is back
// after a loss: the consumer is asked for at once, and the subscriber gets
// the next event within askWait. It waited out the back-off before.
func TestConsumerAskedForAtOnceAfterAReconnect(t *testing.T) {
	ns, p, c, b := subscribedBehindProxy(t)
	p.refuseConsumers()
	deleteConsumers(t, ns)
	// Refused at 0, 0.5, 1.5 and 3.5 s: the next ask at 7.5 s.
	waitUntil(t, waitLimit, "four refusals", func() bool { return p.refusals() >= 4 })
	p.passConsumers()
	p.cut()
	id := publishUntilAccepted(t, b, "t", "after") // b's consumer was deleted too: b checks its stream
	if got := c.nextWithin(t, 2*time.Second, "no event within 2 s of the reconnect: the consumer waited out its back-off"); got.ID != id {
		t.Fatalf("got %+v, want event %s", got, id)
	}
}

// subscribedBehindProxy starts a NATS server and two instances on it,
// the first through a proxy, with a subscriber to topic t; it returns
// the server, the proxy, the subscriber and the second instance, which
// publishes as the NATS server's other clients do.
func subscribedBehindProxy(t *testing.T) (*natsServer, *natsProxy, *client, *instance) {
	t.Helper()
	ns, p, opts := startProxied(t)
	a, b := newInstance(t, opts), newInstance(t, testBrokerOptions(ns))
	return ns, p, a.subscribe(t, "topic=t", ""), b
}

// An instance cut off while the stream, bounded by the history size, lets
// go of events it has not read: its subscribers missed them. Its
// subscriptions end, and a client that comes back with the last id it got
// is reset. Before, the consumer passed over the lost sequences as ids
// with no event, and the subscriber went on after them without a word.
func TestEventsLostBeforeTheInstanceReadThemEndItsSubscriptions(t *testing.T) {
	ns := startNATS(t)
	p := startProxy(t, ns)
	opts := testBrokerOptions(ns)
	opts.HistorySize = 5
	other := newInstance(t, opts) // makes the stream: 5 messages at most
	opts.URLs = []string{p.url()}
	in := newInstance(t, opts)
	c := in.subscribe(t, "topic=t", "")
	before := other.publish(t, "t", "before")
	receives(t, c, []string{before})

	p.refuseConsumers()
	p.cut()
	waitUntil(t, waitLimit, "a consumer refused", func() bool { return p.refusals() >= 1 })
	for i := range 10 {
		other.publish(t, "t", fmt.Sprint("lost or kept ", i))
	}
	p.passConsumers()
	p.cut() // the consumer is asked for at once
	select {
	case ev, ok := <-c.events:
		if ok {
			t.Fatalf("got %+v after the stream let go of events the instance had not read, want the stream to end", ev)
		}
	case <-time.After(waitLimit):
		t.Fatalf("the stream still runs %v after the loss", waitLimit)
	}

	back := in.subscribe(t, "topic=t", before)
	if got := back.next(t); got.Type != "reset" {
		t.Fatalf("back with %s: %+v, want a reset", before, got)
	}
	after := other.publish(t, "t", "after")
	receives(t, back, []string{after})
}

// Messages deleted from within the stream (a subject purged, as an
// operator's routine `nats stream purge --subject` does) while an instance
// was cut off are ids with no event, as a resume from the stream takes
// them: nothing was let go of that its subscribers could get back. Its
// subscriptions go on with the events after them. They were ended as if
// events were lost, and their clients, coming back, were resumed from
// the stream across the same ids without a reset: a reconnect of every
// client for nothing.
func TestMessagesDeletedBeforeTheInstanceReadThemEndNothing(t *testing.T) {
	ns, p, c, other := subscribedBehindProxy(t)
	receives(t, c, []string{other.publish(t, "t", "before")})

	p.refuseConsumers()
	p.cut()
	waitUntil(t, waitLimit, "a consumer refused", func() bool { return p.refusals() >= 1 })
	other.publish(t, "gone", "purged")
	kept := other.publish(t, "t", "kept")
	st, err := ns.operator(t).Stream(t.Context(), DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(t.Context(), jetstream.WithPurgeSubject(DefaultSubjectPrefix+".gone")); err != nil {
		t.Fatal(err)
	}
	p.passConsumers()
	p.cut() // the consumer is asked for at once
	if got := c.next(t); got.ID != kept {
		t.Fatalf("after the purge: %+v, want event %s", got, kept)
	}
}

// JetStream answering once that the stream is not found when the
// instance checks, at its consumer's first message, that the stream is
// still its own (as a server that has not yet taken the stream back
// after a restart, or a cluster's new meta leader, may): the stream is
// found to be the same, and the subscriber gets that event and the next.
// Before, the instance took the stream for another one and dropped every
// event from then on, without a word, while its publishes answered 503.
func TestStreamNotFoundOnceForItsOwnStreamLosesNoEvent(t *testing.T) {
	_, p, c, b := subscribedBehindProxy(t)
	p.missStream(1)
	ids := []string{b.publish(t, "t", "first"), b.publish(t, "t", "second")}
	receives(t, c, ids)
}

// The consumer passes over messages deleted from within the stream, and
// the connection breaks as the instance asks the stream whether they were
// let go of (as a brief network fault would): it asks again once
// reconnected, finds them deleted from within, and its subscriber goes
// on with the next event. Before, the one failed question was taken for
// events lost: every subscription of the instance ended, and each client,
// coming back, was reset.
func TestReconnectWhileCheckingAGapEndsNothing(t *testing.T) {
	ns, p, c, other := subscribedBehindProxy(t)
	gapCheckedAcrossACut(t, ns, p, c, other, 0)
}

// gapCheckedAcrossACut has c's instance, behind p, pass over a message
// purged from within the stream while its consumer is made again, and
// cuts the connections as it asks the stream about the gap (letGo), the
// server then unreachable for down; c must get the next event.
func gapCheckedAcrossACut(t *testing.T, ns *natsServer, p *natsProxy, c *client, other *instance, down time.Duration) {
	t.Helper()
	receives(t, c, []string{other.publish(t, "t", "before")})

	p.refuseConsumers()
	p.cut()
	waitUntil(t, waitLimit, "a consumer refused", func() bool { return p.refusals() >= 1 })
	other.publish(t, "elsewhere", "the new consumer's first") // no gap before it
	other.publish(t, "gone", "purged")
	kept := other.publish(t, "t", "kept")
	st, err := ns.operator(t).Stream(t.Context(), DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(t.Context(), jetstream.WithPurgeSubject(DefaultSubjectPrefix+".gone")); err != nil {
		t.Fatal(err)
	}
	// The consumer made again asks for the stream's info as it starts
	// (check) and at its first message (same), then for the gap (letGo).
	p.cutAtStreamInfoFor(3, down)
	p.passConsumers()
	p.cut() // the consumer is asked for at once
	if got := c.next(t); got.ID != kept {
		t.Fatalf("after the purge: %+v, want event %s", got, kept)
	}
}

// As TestReconnectWhileCheckingAGapEndsNothing, the server unreachable
// for a while after the cut: the question asked again meanwhile fails at
// once (nothing is buffered while the connection is away), and is asked
// again each ReconnectWait until the connection is back. Nothing ends.
func TestQuestionFailingAtOnceWhileCheckingAGapIsAskedAgain(t *testing.T) {
	ns, p, opts := startProxied(t)
	opts.PublishTimeout = waitLimit / 2
	in, other := newInstance(t, opts), newInstance(t, testBrokerOptions(ns))
	// The question asked again after askEvery, the server still unreachable.
	gapCheckedAcrossACut(t, ns, p, in.subscribe(t, "topic=t", ""), other, 3*askEvery)
}

// The instance closes while its consumer asks the stream whether events
// it passed over were let go of, NATS leaving the question unanswered:
// Close returns at once. Asking again until PublishTimeout, the delivery
// held the consumer's lock that long, and Close waited for it.
func TestCloseWhileCheckingAGapReturnsAtOnce(t *testing.T) {
	ns, p, opts := startProxied(t)
	opts.PublishTimeout = 3 * waitLimit
	in, other := newInstance(t, opts), newInstance(t, testBrokerOptions(ns))
	c := in.subscribe(t, "topic=t", "")
	receives(t, c, []string{other.publish(t, "t", "before")})

	p.refuseConsumers()
	p.cut()
	waitUntil(t, waitLimit, "a consumer refused", func() bool { return p.refusals() >= 1 })
	other.publish(t, "gone", "purged")
	other.publish(t, "t", "kept")
	st, err := ns.operator(t).Stream(t.Context(), DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(t.Context(), jetstream.WithPurgeSubject(DefaultSubjectPrefix+".gone")); err != nil {
		t.Fatal(err)
	}
	// The consumer made again asks for the stream's info as it starts
	// (check) and at its first message (same), then for the gap (letGo).
	asked := p.swallowRequestsAfter("$JS.API.STREAM.INFO.", 2)
	p.passConsumers()
	p.cut() // the consumer is asked for at once
	select {
	case <-asked:
	case <-time.After(waitLimit):
		t.Fatal("no question about the stream left unanswered")
	}
	start := time.Now()
	in.close()
	if took := time.Since(start); took > waitLimit/2 {
		t.Fatalf("Close took %v while a gap was being checked, want it at once", took)
	}
}

// JetStream answers that it is temporarily unavailable (10008) to the
// first consumer creations, as a server that has just rejoined its
// cluster does until it has caught up: Open asks again and opens. It
// failed on the first answer (TestClusterServerCutOff, 1 run in CI).
func TestOpenWhileJetStreamIsTemporarilyUnavailable(t *testing.T) {
	ns := startNATS(t)
	p := startProxy(t, ns)
	p.refuseConsumers()
	passed := make(chan struct{})
	go func() {
		defer close(passed)
		for deadline := time.Now().Add(waitLimit); p.refusals() < 2 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		p.passConsumers()
	}()
	opts := testBrokerOptions(ns)
	opts.URLs = []string{p.url()}
	in := newInstance(t, opts)
	<-passed
	if n := p.refusals(); n < 2 {
		t.Fatalf("opened after %d refusals, want 2 and more", n)
	}
	c := in.subscribe(t, "topic=t", "")
	receives(t, c, []string{in.publish(t, "t", "after")})
}

// The instance's consumer was made while NATS answered slowly, its
// creation asked again (askAgain); a repeat the server handles after
// Close's deletion (held back here until the server answered it) makes
// it again. Close asks its deletion once more askEvery later, while the
// connection is up: that second deletion was sent once Close had closed
// the connection, and the consumer was left to the server for 5 minutes.
func TestCloseDeletesAConsumerMadeAgainByARepeat(t *testing.T) {
	t.Parallel() // waits on slow answers and askEvery, not on the CPU
	ns, p, b, _ := openWithARepeatedCreation(t)
	l := b.cur.Load().live
	p.slowAnswers(0)
	repeated := p.answerSeen("consumer_create_response")
	b.Close()
	select {
	case <-repeated:
	case <-time.After(waitLimit):
		t.Fatal("no repeat of the creation was answered")
	}
	waitNoConsumer(t, ns, "left after Close", func(name string) bool { return strings.HasPrefix(name, l.prefix) })
}

// Open gives up within its 14 s (consume) when the consumer's creation
// goes unanswered, then is answered that JetStream is temporarily
// unavailable, then goes unanswered again: the last creation asked
// before the 14 s had passed waited its whole 8 s past them.
func TestOpenGivesUpWithinItsBoundWhileJetStreamIsUnavailable(t *testing.T) {
	t.Parallel() // waits for the creations' timeouts, not on the CPU
	ns := startNATS(t)
	p := startProxy(t, ns)
	swallowed := p.swallowRequests("$JS.API.CONSUMER.CREATE.")
	ctx, cancel := context.WithCancel(t.Context())
	phases := make(chan struct{})
	go func() {
		defer close(phases)
		var first time.Time
		select {
		case <-swallowed:
			first = time.Now()
		case <-ctx.Done():
			return
		}
		// The first two creations go unanswered (2 s, then 4 s): the
		// third one waits 8 s, and is refused.
		if pause(ctx, time.Until(first.Add(7*time.Second))) != nil {
			return
		}
		p.refuseConsumers()
		p.passRequests()
		if pause(ctx, time.Until(first.Add(12*time.Second))) != nil {
			return
		}
		p.swallowRequests("$JS.API.CONSUMER.CREATE.")
	}()
	opts := testBrokerOptions(ns)
	opts.URLs = []string{p.url()}
	start := time.Now()
	b, err := Open(t.Context(), opts)
	took := time.Since(start)
	cancel()
	<-phases
	if err == nil {
		b.Close()
		t.Fatal("Open opened, want it to fail")
	}
	if p.refusals() == 0 {
		t.Fatal("no creation was refused")
	}
	// 14 s, then the last consumer's deletions (drop: twice, askEvery
	// apart, each waiting askEvery at most).
	if bound := 7*createWait + 3*askEvery + time.Second; took > bound {
		t.Fatalf("Open failed after %v, want %v at most (%v)", took, bound, err)
	}
}

// The instance's consumer was made while NATS answered slowly, its
// creation asked again (askAgain); a repeat the server handles after the
// deletion that a reset's remake asks (held back here until the server
// answered it) makes it again. remake deletes it once more askEvery
// later, as Close and a refused creation do: it deleted it once, and the
// consumer was left to the server for 5 minutes.
func TestConsumerMadeAgainByARepeatAfterARemakeIsDeleted(t *testing.T) {
	t.Parallel() // waits on slow answers and askEvery, not on the CPU
	ns, p, b, old := openWithARepeatedCreation(t)
	l := b.cur.Load().live
	p.slowAnswers(0)
	remade := p.answerWith(`"name":"` + old.name + `"`)
	l.reset()
	select {
	case <-remade:
	case <-time.After(waitLimit):
		t.Fatal("no repeat of the old consumer's creation was answered")
	}
	waitNoConsumer(t, ns, "replaced, left on the stream", func(name string) bool { return name == old.name })
}

// openWithARepeatedCreation opens a Broker behind a proxy that answers
// slowly, so that its consumer's creation is asked again (askAgain), and
// holds back the repeats until a deletion is answered; it returns the
// server, the proxy (still slow), the Broker (closed at the test's end)
// and its consumer.
func openWithARepeatedCreation(t *testing.T) (*natsServer, *natsProxy, *Broker, *made) {
	t.Helper()
	ns, p, opts := startProxied(t)
	p.slowAnswers(3 * askEvery)
	p.holdRepeatedCreations()
	b, err := Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	c := b.cur.Load().live.current.Load()
	if c == nil || !c.repeated {
		t.Fatalf("consumer %+v, want one whose creation was asked again", c)
	}
	return ns, p, b, c
}

// As TestConsumerMadeAgainByARepeatAfterARemakeIsDeleted, with the Broker
// closed once the new consumer is made, before the old one's second
// deletion: that deletion is still asked, and the consumer the repeat
// made again is not left to the server for its inactive threshold.
func TestCloseDuringARemakeDeletesAConsumerMadeAgainByARepeat(t *testing.T) {
	t.Parallel() // waits on slow answers and askEvery, not on the CPU
	ns, p, b, old := openWithARepeatedCreation(t)
	l := b.cur.Load().live
	p.slowAnswers(0)
	remade := p.answerWith(`"name":"` + old.name + `"`)
	l.reset()
	waitFor(t, "the new consumer", func() bool { return l.current.Load().name != old.name })
	select {
	case <-remade:
	case <-time.After(waitLimit):
		t.Fatal("no repeat of the old consumer's creation was answered")
	}
	b.Close()
	waitNoConsumer(t, ns, "replaced, left on the stream after Close", func(name string) bool { return name == old.name })
}

// The consumer made again while JetStream answers that its stream is not
// found (a server restarting, a cluster's new meta leader not yet caught
// up), though it is there: the Broker checks the stream, finds it, and is
// ready again, and the consumer is asked for again within askEvery of
// that. It waited out a back-off grown by each refusal (4 s after the
// fourth, up to 10 s), the instance ready meanwhile: its subscribers got
// nothing, and each publish waited PublishTimeout for its event.
func TestConsumerAskedForSoonOnceItsStreamIsFound(t *testing.T) {
	ns, p, opts := startProxied(t)
	a := newInstance(t, opts)
	c := a.subscribe(t, "topic=t", "")
	receives(t, c, []string{a.publish(t, "t", "before")})

	missed := p.missStreamOfConsumers(4)
	deleteConsumers(t, ns)
	select {
	case <-missed:
	case <-time.After(waitLimit):
		t.Fatal("the consumer was not asked for 4 times")
	}
	waitFor(t, "the instance ready", func() bool { return settled(a.broker) })
	back := time.Now()
	id := publishUntilAccepted(t, a, "t", "after")
	if got := c.nextWithin(t, 3*askEvery, "no event within 3 askEvery of the stream found"); got.ID != id {
		t.Fatalf("got %+v, want event %s", got, id)
	}
	if took := time.Since(back); took > 3*askEvery {
		t.Fatalf("the event came %v after the stream was found, want within %v", took, 3*askEvery)
	}
}

// The consumer made again after a reconnect while JetStream answers that
// it is temporarily unavailable (a server that rejoined its cluster and
// has not caught up): once JetStream stores a publish again, the consumer
// is asked for within askEvery. It waited out a back-off grown by each
// refusal (4 s after the fourth, up to 10 s), the instance ready and
// storing meanwhile: its subscribers got nothing, and each publish waited
// PublishTimeout for its event.
//
// The back-off after the fifth refusal is 8 s: the event is to come
// within half of it. Within 1.5 s of the fourth's 4 s, it came 2.15 s
// after beside other packages' tests under -race (a publish, a
// consumer's creation and its delivery, each slowed).
func TestConsumerAskedForSoonOnceJetStreamStoresAgain(t *testing.T) {
	t.Parallel() // mostly the back-off
	_, p, opts := startProxied(t)
	a := newInstance(t, opts)
	c := a.subscribe(t, "topic=t", "")
	receives(t, c, []string{a.publish(t, "t", "before")})

	p.refuseConsumers()
	p.cut()
	waitFor(t, "5 refusals", func() bool { return p.refusals() >= 5 })
	p.passConsumers()
	back := time.Now()
	id := publishUntilAccepted(t, a, "t", "after")
	if got := c.nextWithin(t, soonAfterRefusals, "no event within half the back-off of a publish stored"); got.ID != id {
		t.Fatalf("got %+v, want event %s", got, id)
	}
	if took := time.Since(back); took > soonAfterRefusals {
		t.Fatalf("the event came %v after JetStream answered again, want within %v", took, soonAfterRefusals)
	}
}

// soonAfterRefusals is half the back-off after a consumer's fifth
// refusal (askEvery doubled four times: 8 s): what the tests of a
// consumer asked for soon once JetStream answers again give the event.
const soonAfterRefusals = 8 * askEvery

// TestConsumerAskedForSoonOnceJetStreamStoresAgain for an instance that
// does not publish: another one does, and the events reach its
// subscribers within a PingInterval of JetStream answering again (its
// watch's question about the stream answered), not after the rest of the
// back-off.
func TestIdleInstancesConsumerAskedForSoonOnceTheStreamAnswers(t *testing.T) {
	t.Parallel() // mostly the back-off
	ns := startNATS(t)
	p := startProxy(t, ns)
	opts := testBrokerOptions(ns)
	a := newInstance(t, opts)
	opts.URLs = []string{p.url()}
	opts.PingInterval = askEvery
	b := newInstance(t, opts)
	c := b.subscribe(t, "topic=t", "")
	receives(t, c, []string{a.publish(t, "t", "before")})

	p.refuseConsumers()
	p.cut()
	waitFor(t, "5 refusals", func() bool { return p.refusals() >= 5 })
	p.passConsumers()
	back := time.Now()
	id := a.publish(t, "t", "after")
	if got := c.nextWithin(t, soonAfterRefusals, "no event within half the back-off of JetStream answering again"); got.ID != id {
		t.Fatalf("got %+v, want event %s", got, id)
	}
	if took := time.Since(back); took > soonAfterRefusals {
		t.Fatalf("the event came %v after JetStream answered again, want within %v", took, soonAfterRefusals)
	}
}

// A consumer that JetStream refuses for a reason of its own (here the
// stream's cap on consumers, taken by another client's) while the stream
// stores every publish: the stored publishes say nothing of that refusal,
// and the instance asks again less and less often, as for any refusal.
// Each stored publish cut the back-off to askEvery: the instance asked
// JetStream to make the consumer (and to delete the refused one) twice a
// second for as long as the refusal lasted, each instance of a cluster
// alike. Its subscribers get nothing meanwhile, which a warning says,
// once: it was a debug line for each creation refused.
func TestConsumerRefusedForItsCapBacksOffThoughPublishesAreStored(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	// A publish waits that long for its event, which the instance has no
	// consumer to bring, before its 201: the publishes go on all along.
	opts.PublishTimeout = 200 * time.Millisecond
	var logs testlog.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	a := newInstance(t, opts)
	receives(t, a.subscribe(t, "topic=t", ""), []string{a.publish(t, "t", "before")})

	js := ns.operator(t)
	if _, err := js.CreateConsumer(t.Context(), DefaultStream, jetstream.ConsumerConfig{Durable: "other", AckPolicy: jetstream.AckNonePolicy}); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(t.Context(), DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.MaxConsumers = 2 // the instance's and the other's
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	// The creations asked for, by name: one asked again under its name
	// (askAgain, a request left unanswered on a busy machine) counts once.
	var mu sync.Mutex
	names := map[string]bool{}
	creates := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(names)
	}
	sub, err := js.Conn().Subscribe("$JS.API.CONSUMER.CREATE."+DefaultStream+".>", func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		names[m.Subject] = true
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := js.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	// The instance's consumer deleted and its place taken: each of its
	// creations from now on is refused.
	cfg.MaxConsumers = 1
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	for name := range st.ConsumerNames(t.Context()).Name() {
		if name != "other" {
			if err := js.DeleteConsumer(t.Context(), DefaultStream, name); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "a creation asked for", func() bool { return creates() > 0 })
	// Publishes of several clients at once, each stored.
	const span = 8 * time.Second
	var stored atomic.Int32
	var publishers sync.WaitGroup
	end := time.Now().Add(span)
	for range 8 {
		publishers.Go(func() {
			for time.Now().Before(end) {
				req, _ := http.NewRequestWithContext(t.Context(), "POST", a.URL+"/api/v1/topics/t/events", strings.NewReader(`{"data": "stored"}`))
				req.Header.Set("Authorization", "Bearer "+testToken)
				req.Header.Set("Content-Type", "application/json")
				resp, err := a.Client().Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusCreated {
					stored.Add(1)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	publishers.Wait()
	if stored.Load() < 20 {
		t.Fatalf("%d publishes stored in %v, want 20 at least", stored.Load(), span)
	}
	// Asked at 0, 0.5, 1.5, 3.5 and 7.5 s with the back-off; twice a
	// second when each publish stored cut it.
	if n := creates(); n > 6 {
		t.Fatalf("%d creations asked for in %v while JetStream refused them for its cap, want 6 at most", n, span)
	}
	// The instance's subscribers get nothing meanwhile: the log says so,
	// once, at warn, not a debug line for each creation refused.
	if n := logs.Count(`level=WARN msg="nats consumer refused`); n != 1 || logs.Count("maximum consumers limit reached") != 1 {
		t.Errorf("%d warnings that the consumer was refused, want 1 naming the refusal; log:\n%s", n, logs.String())
	}
}

// The stream created again while the notice of its consumer's deletion
// is lost, and NATS leaving the stream's info unanswered for a while (as
// an R3 stream's followers do while they elect a leader): the check that
// the missed heartbeats start asks again every askEvery, and the old
// history's subscriptions end once NATS answers, with nothing published.
// It asked once: that question unanswered, and the consumer made again
// on the new stream meanwhile (its own check skipped, one being asked),
// nothing renewed the history until the next publish or event, and its
// subscribers waited for the new stream's events in vain.
func TestStreamCreatedAgainWhileItsInfoIsUnansweredWithItsConsumersNoticeLost(t *testing.T) {
	t.Parallel()
	ns, p, opts := startProxied(t)
	opts.PublishTimeout = 5 * time.Second // the check's wait, as in production
	a := newInstance(t, opts)
	c := a.subscribe(t, "topic=t", "")
	receives(t, c, []string{a.publish(t, "t", "before")})
	lost := p.loseConsumerDeleted()
	swallowed := p.swallowRequests("$JS.API.STREAM.INFO.")
	recreateStream(t, ns, opts)
	// The heartbeats are missed 2 s after the deletion at most.
	time.Sleep(2*consumerHeartbeat + askEvery)
	select {
	case <-swallowed:
	default:
		t.Fatal("no stream info was asked while NATS left it unanswered")
	}
	p.passRequests()
	c.ended(t)
	wantLost(t, lost)
}
