package natsbroker

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/ssehub/ssehub/internal/stream"
)

// A consumer that had taken its stream for another (h.foreign: the
// events it read dropped) is made again from the last event delivered
// once a renewal finds the stream h's after all (trustAgain). When that
// false alarm comes while a remake is under way, and JetStream refuses
// the remake's creation and the old consumer's deletion as unavailable
// (a server cut off from the meta leader), the remake must not read on
// the old consumer (resume): it is past the events it dropped, which
// would never be delivered, ids with no event to every subscriber and
// resume. The test sets h.foreign as deliver does, and calls trustAgain
// as the renewal's false alarm does, while the old consumer's deletion
// is held on its way.
func TestConsumerNotReadOnAfterAFalseAlarmDuringItsRemake(t *testing.T) {
	ns, p, b := openWithAFirstEvent(t)
	h := b.cur.Load()
	l := h.live
	js, dropped := dropAsAnothers(t, ns, h)

	p.refuseConsumers()
	p.refuseDeletions()
	held, release := p.holdNext(t, "$JS.API.CONSUMER.DELETE.")
	before := p.refusals()
	l.reset()
	waitClosed(t, held, "the old consumer's deletion")
	l.trustAgain() // the renewal's false alarm, as the remake waits
	release()
	waitFor(t, "the remake refused twice", func() bool { return p.refusals() >= before+2 })
	after, err := js.Publish(t.Context(), DefaultSubjectPrefix+".t", []byte("after"))
	if err != nil {
		t.Fatal(err)
	}
	// Read on, the old consumer delivers it at once; made again, the
	// consumer is refused on.
	waitFor(t, "the next event delivered, or the remake refused on", func() bool {
		return h.mem.Retained(h.ids.id(after.Sequence)) != nil || p.refusals() >= before+3
	})
	p.passConsumers()
	p.passDeletions()
	waitFor(t, "the next event delivered", func() bool { return h.mem.Retained(h.ids.id(after.Sequence)) != nil })
	if got := h.mem.Retained(h.ids.id(dropped.Sequence)); got == nil || got.Topic != "t" {
		t.Fatalf("event %d, dropped as another stream's before the false alarm, was never delivered (%v)", dropped.Sequence, got)
	}
}

// openWithAFirstEvent opens a Broker on a NATS server through a test
// proxy, and publishes an event to topic t, delivered by its consumer.
func openWithAFirstEvent(t *testing.T) (*natsServer, *natsProxy, *Broker) {
	t.Helper()
	ns, p, opts := startProxied(t)
	b := openBroker(t, opts)
	if _, _, err := b.Publish(stream.Publication{Topic: "t", Data: "first"}); err != nil {
		t.Fatal(err)
	}
	l := b.cur.Load().live
	waitFor(t, "the first event delivered", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.last > 0
	})
	return ns, p, b
}

// dropAsAnothers has h's consumer take its stream for another
// (h.foreign, as deliver sets it), stores an event it then drops, and
// returns the operator's JetStream and that event's acknowledgement.
func dropAsAnothers(t *testing.T, ns *natsServer, h *history) (jetstream.JetStream, *jetstream.PubAck) {
	t.Helper()
	l := h.live
	l.mu.Lock()
	h.foreign = true
	l.mu.Unlock()
	js := ns.operator(t)
	dropped, err := js.Publish(t.Context(), DefaultSubjectPrefix+".t", []byte("dropped"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the event taken as another stream's", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.last == dropped.Sequence
	})
	return js, dropped
}
