package natsbroker

import (
	"testing"
)

// A false alarm (trustAgain) that comes while a remake's creation is on
// its way has the consumer read again from the last event delivered, but
// that creation asked for one starting after the events the old consumer
// dropped as another stream's. Started, that consumer delivered the next
// event before run came back for the reset trustAgain queued, and the
// consumer made then started past it: the dropped events were never
// delivered, ids with no event to every subscriber and resume. The
// creation is held on its way while trustAgain runs; b.renewMu, held
// by the test, keeps the remake in its check, as a run come back late
// for the queued reset.
func TestConsumerMadeBeforeAFalseAlarmIsNotStarted(t *testing.T) {
	ns, p, b := openWithAFirstEvent(t)
	h := b.cur.Load()
	l := h.live
	js, dropped := dropAsAnothers(t, ns, h)

	held, release := p.holdNext(t, "$JS.API.CONSUMER.CREATE.")
	l.reset()
	waitClosed(t, held, "the remake's creation")
	l.trustAgain() // the renewal's false alarm, as the creation is on its way
	b.renewMu.Lock()
	unlocked := false
	unlock := func() {
		if !unlocked {
			unlocked = true
			b.renewMu.Unlock()
		}
	}
	defer unlock()
	release()
	after, err := js.Publish(t.Context(), DefaultSubjectPrefix+".t", []byte("after"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the event after delivered", func() bool { return h.mem.Retained(h.ids.id(after.Sequence)) != nil })
	unlock()
	later, err := js.Publish(t.Context(), DefaultSubjectPrefix+".t", []byte("later"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the event later delivered", func() bool { return h.mem.Retained(h.ids.id(later.Sequence)) != nil })
	if got := h.mem.Retained(h.ids.id(dropped.Sequence)); got == nil || got.Topic != "t" {
		t.Fatalf("event %d, dropped as another stream's before the false alarm, was never delivered (%v)", dropped.Sequence, got)
	}
	// The one refused is deleted, not left to the server.
	waitFor(t, "one consumer left on the stream", func() bool {
		s, err := js.Stream(t.Context(), DefaultStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(t.Context())
		return err == nil && info.State.Consumers == 1
	})
}
