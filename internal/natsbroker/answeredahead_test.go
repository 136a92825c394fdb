package natsbroker

import (
	"strconv"
	"testing"
	"time"
)

// A publish acknowledged, its delivery lost on the way to the consumer and
// the stream's question that would confirm it left unanswered, is answered
// with its id (a 503 would have a client's plain retry store it twice):
// that id is handed out, and counts in what a check compares the stream's
// last sequence with (reached). Not counted, a stream restored from a
// backup that lacks it was taken for h's (its last sequence at the last
// event the consumer delivered), and the new event stored under its
// sequence was delivered under the id its publisher had been told was its
// event's (TestResumeFromAPublishedEventTheRestoreLostBeforeItsDelivery,
// 5 runs in about 370 beside CPU hogs, its stream's question slower than
// the share of PublishTimeout left to it).
func TestPublishAnsweredUnconfirmedCountsItsID(t *testing.T) {
	t.Parallel()
	_, p, opts := startProxied(t)
	a := newInstance(t, opts)
	a.publish(t, "t", "delivered")
	h := a.broker.cur.Load()
	lost := p.loseDeliveries("answered unconfirmed")
	swallowed := p.swallowRequests("$JS.API.STREAM.INFO.")
	id := a.publish(t, "t", "answered unconfirmed")
	for _, c := range []<-chan struct{}{lost, swallowed} {
		select {
		case <-c:
		case <-time.After(waitLimit):
			t.Fatal("the delivery was not lost, or the stream not asked")
		}
	}
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	seq, ok := h.ids.seq(n)
	if !ok {
		t.Fatalf("id %s is not of the current history", id)
	}
	if got := h.reached(); got < seq {
		t.Fatalf("the history reached %d after the publish answered with the id of %d", got, seq)
	}
}
