package natsbroker

import (
	"fmt"
	"testing"
	"time"
)

// isForeign reports whether h's consumer has taken the stream it reads
// for another (deliver).
func (h *history) isForeign() bool {
	h.live.mu.Lock()
	defer h.live.mu.Unlock()
	return h.foreign
}

// A renewal waits with its answer (the stream is the instance's) while
// the stream is deleted and another created: the consumer, made again on
// it, takes it for another (its creation time) and drops its events.
// Then the stream is restored from a backup that holds every event the
// instance delivered, its creation time the instance's: the renewal, asked
// again, ends as a false alarm, and the instance goes on with the stream,
// its subscribers getting the events stored from then on. Left taken for
// another, the consumer dropped every event after the false alarm, and
// the instance, ready and storing its publishes, delivered nothing.
func TestConsumerDeliversAgainAfterAFalseAlarm(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	a := newInstance(t, opts)
	c := a.subscribe(t, "topic=t", "")
	receives(t, c, []string{a.publish(t, "t", "in the backup")})
	backup := backUpSeen(t, ns, a)
	h := a.broker.cur.Load()
	held, release := holdRenewalAnswer(t, h)
	a.broker.renew(h)
	select {
	case <-held:
	case <-time.After(waitLimit):
		t.Fatal("the renewal was not answered")
	}
	recreateStream(t, ns, opts)
	js := ns.operator(t)
	for i := range 2 {
		if _, err := js.Publish(t.Context(), DefaultSubjectPrefix+".t", fmt.Appendf(nil, "of another stream %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the new stream taken for another", h.isForeign)
	restore(t, ns, backup)
	release()
	waitFor(t, "ready", func() bool { return settled(a.broker) })
	if a.broker.cur.Load() != h {
		t.Fatal("the restored stream, the instance's own, taken for another history")
	}
	receives(t, c, publishAfterTheRestore(t, a, 2))
}
