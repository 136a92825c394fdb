package natsbroker

import (
	"sync"
	"testing"
	"time"
)

// holdRenewalSwap makes the next renewal of h that puts a new history in
// h's place (renewFrom) wait, the new history current, until release; held
// is closed once it waits. The test's end releases it too.
func holdRenewalSwap(t *testing.T, h *history) (held <-chan struct{}, release func()) {
	t.Helper()
	waiting, until := make(chan struct{}), make(chan struct{})
	release = sync.OnceFunc(func() { close(until) })
	t.Cleanup(release)
	var once sync.Once
	swapped := func() {
		once.Do(func() {
			close(waiting)
			<-until
		})
	}
	h.renewSwapped.Store(&swapped)
	return waiting, release
}

// newHistoryHeldAfterABackup has the stream deleted and created again
// (recreateStream), and holds a's renewal once it has made the new
// stream's history current, before the renewal ends. Meanwhile a
// publishes an event to the new stream, the store is backed up (NATS
// stopped and started again: a's consumer is made again after the
// reconnect) and a's consumer delivers three more events. It returns the
// new history and the backup, not yet restored.
func newHistoryHeldAfterABackup(t *testing.T, ns *natsServer, a *instance, opts Options) (h *history, backup string, release func()) {
	t.Helper()
	prev := a.broker.cur.Load()
	held, release := holdRenewalSwap(t, prev)
	recreateStream(t, ns, opts)
	select {
	case <-held:
	case <-time.After(waitLimit):
		t.Fatal("the new stream was not taken")
	}
	h = a.broker.cur.Load()
	if h == prev {
		t.Fatal("the renewal held with the old history current")
	}
	kept, backup, gone := backUpThenLose(t, ns, a, 3)
	receives(t, a.subscribe(t, "topic=t", kept), gone) // delivered by the consumer
	return h, backup, release
}

// A renewal that put the history of a stream created again in the old
// one's place has not ended yet when the new history's stream is restored
// from a backup (the store put back while NATS was stopped), and the
// consumer, made again after the restart, asks for a stream check: the
// check goes to the renewal running (renewAgain), which asks it, for the
// new history, as it ends, and finds the restore (the stream's last
// sequence below the events delivered) while the instance is idle. The
// renewal, looking only at the history it had renewed, no longer the
// current one, dropped it: the instance went on with the restored stream
// as its own, and its consumer, made again after the last sequence it
// had delivered, got none of the events stored there up to it.
func TestCheckAskedForTheNewHistoryBeforeTheRenewalEndsIsAsked(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	a := newInstance(t, opts)
	h, backup, release := newHistoryHeldAfterABackup(t, ns, a, opts)
	made := h.live.current.Load()
	restore(t, ns, backup)
	waitFor(t, "the consumer made again", func() bool { return h.live.current.Load() != made })
	release()
	waitNewHistory(t, a, h, "the restored stream taken")
}

// As TestCheckAskedForTheNewHistoryBeforeTheRenewalEndsIsAsked, with new
// events stored in the restored stream (by another instance) past the
// sequences the instance delivered: the consumer, made again, gets
// another event under the last sequence delivered, and asks for a
// renewal of the new history, which the renewal running asks as it ends.
// Dropped, the consumer, having found the stream another, dropped every
// event from then on: the instance's subscribers got nothing more.
func TestRenewalAskedForTheNewHistoryBeforeTheRenewalEndsIsAsked(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	a := newInstance(t, opts)
	h, backup, release := newHistoryHeldAfterABackup(t, ns, a, opts)
	restore(t, ns, backup)
	publishAfterTheRestore(t, newInstance(t, opts), 4)
	waitFor(t, "another event found under the last sequence delivered", h.rewritten.Load)
	release()
	waitNewHistory(t, a, h, "the restored stream taken")
	c := a.subscribe(t, "topic=t", "")
	receives(t, c, publishAfterTheRestore(t, a, 1))
}
