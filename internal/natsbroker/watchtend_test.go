package natsbroker

import (
	"testing"
)

// While the write of its limits again waits for NATS's answer (a server
// busy, as just after a restart: here the write is swallowed), watch goes
// on asking its question each PingInterval: in its loop, the write held
// the next question for PublishTimeout, and with the metadata's write
// after it, twice that, and an instance on a server cut off from its
// cluster moved as much later. The write is asked once: the questions
// asked while it waits start no other.
func TestWatchAsksOnWhileAWriteWaits(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.PingInterval = metadataAskEvery
	newInstance(t, opts) // creates the stream, with a mark
	op := ns.operator(t)
	stale := streamNow(t, op)

	p := startProxy(t, ns)
	newer := opts
	newer.URLs = []string{p.url()}
	newer.HistorySize = 200
	newer.PublishTimeout = 3 * waitLimit // longer than waitFor waits
	b := newInstance(t, newer)
	if got := streamNow(t, op).MaxMsgs; got != 200 {
		t.Fatalf("b started with max_msgs %d on the stream, want 200", got)
	}
	swallowed := p.swallowRequests(updateSubject)
	if _, err := op.UpdateStream(t.Context(), stale); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, swallowed, "b's write of its limits again")
	asked := b.broker.jsAnswers.Load()
	waitFor(t, "watch's questions while the write waits", func() bool { return b.broker.jsAnswers.Load() >= asked+3 })
	if n := p.swallowedRequests(); n != 1 {
		t.Errorf("%d writes of the limits asked while the first waited, want 1", n)
	}
}
