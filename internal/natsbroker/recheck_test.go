package natsbroker

import (
	"sync"
	"testing"
	"time"
)

// holdCheckAnswer makes the next stream check of h that NATS answers
// (check) wait, its answer in hand, until release; held is closed once it
// waits. The test's end releases it too.
func holdCheckAnswer(t *testing.T, h *history) (held <-chan struct{}, release func()) {
	t.Helper()
	waiting, until := make(chan struct{}), make(chan struct{})
	release = sync.OnceFunc(func() { close(until) })
	t.Cleanup(release)
	var once sync.Once
	answered := func() {
		once.Do(func() {
			close(waiting)
			<-until
		})
	}
	h.checkAnswered.Store(&answered)
	return waiting, release
}

// rechecking reports whether a check of b was asked while one ran, and
// waits to be asked once that one is answered.
func rechecking(b *Broker) bool {
	b.renewMu.Lock()
	defer b.renewMu.Unlock()
	return b.recheck
}

// A stream check answered before the stream was restored from a backup
// (the store put back while NATS was stopped), the answer acted on only
// after the restore and the consumer made again after the reconnect: the
// check the remade consumer asks for meanwhile is asked once the first is
// answered, and it finds the restore (the stream's last sequence below
// the events the instance delivered), while the instance is idle. Skipped
// because one ran, the check the consumer asked for was lost: the first
// one, answered with the stream as it was before the restore, took it for
// the instance's own, and nothing else asked until the next publish or
// event; the remade consumer, started at the last sequence delivered, got
// nothing from the restored stream.
func TestCheckAskedWhileOneWaitsIsAskedOnceItIsAnswered(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	a := newInstance(t, opts)
	kept, backup, gone := backUpThenLose(t, ns, a, 3)
	receives(t, a.subscribe(t, "topic=t", kept), gone) // delivered by the consumer
	h := a.broker.cur.Load()

	held, release := holdCheckAnswer(t, h)
	a.broker.check(h)
	select {
	case <-held:
	case <-time.After(waitLimit):
		t.Fatal("the check was not answered")
	}
	restore(t, ns, backup)
	waitFor(t, "a check asked (the consumer made again) while the first one waits", func() bool { return rechecking(a.broker) })
	if a.broker.cur.Load() != h {
		t.Fatal("the restored stream taken before the first check was answered")
	}
	release()
	waitNewHistory(t, a, h, "the restored stream taken")
}
