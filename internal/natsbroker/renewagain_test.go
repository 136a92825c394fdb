package natsbroker

import (
	"sync"
	"testing"
	"time"
)

// holdRenewalAnswer makes the next renewal of h whose question is
// answered (renewFrom) wait, its answer in hand, until release; held is
// closed once it waits. The test's end releases it too.
func holdRenewalAnswer(t *testing.T, h *history) (held <-chan struct{}, release func()) {
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
	h.renewAnswered.Store(&answered)
	return waiting, release
}

// renewalHeldBeforeARestore has a (its consumer having delivered three
// events after a backup) renew its history, and holds the renewal with
// its answer, taken before the stream is restored from the backup (the
// store put back while NATS was stopped): the stream is a's, a false
// alarm. It returns a's history and the backup, not yet restored.
func renewalHeldBeforeARestore(t *testing.T, ns *natsServer, a *instance) (h *history, backup string, release func()) {
	t.Helper()
	kept, backup, gone := backUpThenLose(t, ns, a, 3)
	receives(t, a.subscribe(t, "topic=t", kept), gone) // delivered by the consumer
	h = a.broker.cur.Load()
	held, release := holdRenewalAnswer(t, h)
	a.broker.renew(h)
	select {
	case <-held:
	case <-time.After(waitLimit):
		t.Fatal("the renewal was not answered")
	}
	return h, backup, release
}

// A renewal whose question was answered before the stream was restored
// from a backup, and the consumer, made again after the restart, is asked
// for a stream check meanwhile: the check is asked once the renewal ends
// as a false alarm, and finds the restore (the stream's last sequence
// below the events delivered) while the instance is idle. Dropped because
// a renewal ran, it was lost, and the renewal, with its answer of the
// stream as it was before the restore, took it for the instance's own.
func TestCheckAskedWhileARenewalWaitsIsAskedOnceItEnds(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	a := newInstance(t, testBrokerOptions(ns))
	h, backup, release := renewalHeldBeforeARestore(t, ns, a)
	made := h.live.current.Load()
	restore(t, ns, backup)
	waitFor(t, "the consumer made again", func() bool { return h.live.current.Load() != made })
	release()
	waitNewHistory(t, a, h, "the restored stream taken")
}

// As TestCheckAskedWhileARenewalWaitsIsAskedOnceItEnds, with new events
// stored in the restored stream (by another instance) past the sequences
// the instance delivered: the consumer, made again, gets another event
// under the last sequence delivered, and asks for a renewal, which is
// asked once the one running ends as a false alarm. Dropped because one
// ran, it was lost, and the consumer, having found the stream another,
// dropped every event from then on: the instance's subscribers got
// nothing more.
func TestRenewalAskedWhileOneWaitsIsAskedOnceItEnds(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	a := newInstance(t, opts)
	h, backup, release := renewalHeldBeforeARestore(t, ns, a)
	restore(t, ns, backup)
	publishAfterTheRestore(t, newInstance(t, opts), 4)
	waitFor(t, "another event found under the last sequence delivered", h.rewritten.Load)
	release()
	waitNewHistory(t, a, h, "the restored stream taken")
}
