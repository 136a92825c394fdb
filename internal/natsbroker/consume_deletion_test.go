package natsbroker

import (
	"testing"
)

// A server just cut off from JetStream's meta leader still takes it to be
// there for seconds, and leaves the requests only the meta leader answers
// unanswered, until it finds itself leaderless; then it refuses them as
// unavailable (10008). A remake in that window had the old consumer's
// deletion unanswered, and did not read on it (resume) once its creation
// was refused: the old one, still there, was left unread for the whole
// partition, its server storing the publishes of the instance on it
// (TestClusterWatchStaysWithItsStream, with a reset just after the
// partition). The deletion left unanswered is asked again: refused as
// unavailable, the consumer is there, and is read on.
func TestConsumerReadOnWhenItsDeletionWasUnansweredAndThenRefused(t *testing.T) {
	ns, p, b := openWithAFirstEvent(t)
	h := b.cur.Load()
	l := h.live
	waitFor(t, "the first event delivered", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.last > 0
	})

	p.refuseConsumers()
	swallowed := p.swallowRequests("$JS.API.CONSUMER.DELETE.")
	before := p.refusals()
	l.reset()
	waitClosed(t, swallowed, "the old consumer's deletion")
	p.passRequests()
	p.refuseDeletions()
	js := ns.operator(t)
	after, err := js.Publish(t.Context(), DefaultSubjectPrefix+".t", []byte("after"))
	if err != nil {
		t.Fatal(err)
	}
	// Read on, the old consumer delivers it once its deletion is
	// refused; not, the remake is refused on.
	waitFor(t, "the next event delivered, or the remake refused on", func() bool {
		return h.mem.Retained(h.ids.id(after.Sequence)) != nil || p.refusals() >= before+3
	})
	if h.mem.Retained(h.ids.id(after.Sequence)) == nil {
		t.Fatalf("the old consumer, its deletion unanswered and then refused as unavailable, was not read on: the remake was refused %d times", p.refusals()-before)
	}
	p.passConsumers()
	p.passDeletions()
}
