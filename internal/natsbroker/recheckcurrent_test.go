package natsbroker

import (
	"sync"
	"testing"
	"time"
)

// renewing reports whether a renewal of b runs.
func renewing(b *Broker) bool {
	b.renewMu.Lock()
	defer b.renewMu.Unlock()
	return b.renewing
}

// holdCheckAnswerOnce is holdCheckAnswer for the first check of h
// answered once cond holds; the checks answered before go on.
func holdCheckAnswerOnce(t *testing.T, h *history, cond func() bool) (held <-chan struct{}, release func()) {
	t.Helper()
	waiting, until := make(chan struct{}), make(chan struct{})
	release = sync.OnceFunc(func() { close(until) })
	t.Cleanup(release)
	var once sync.Once
	answered := func() {
		if !cond() {
			return
		}
		once.Do(func() {
			close(waiting)
			<-until
		})
	}
	h.checkAnswered.Store(&answered)
	return waiting, release
}

// waitCheckHeld waits until the check held (holdCheckAnswer) waits with
// its answer.
func waitCheckHeld(t *testing.T, held <-chan struct{}) {
	t.Helper()
	select {
	case <-held:
	case <-time.After(waitLimit):
		t.Fatal("the check was not answered")
	}
}

// checkOfTheNewHistoryAsked has, while a check of prev, a's history,
// waits with its answer (release lets it go on), the stream deleted and
// created again, and waits until a's renewal has put the new stream's
// history in prev's place and ended. The new stream, once a's consumer
// has delivered three events more than a backup holds, is restored from
// it: the consumer, made again after the restart, asks for a check of the
// new history while the first one waits. The test fails unless, once the
// first is let go, a takes the restored stream for another history.
func checkOfTheNewHistoryAsked(t *testing.T, ns *natsServer, a *instance, opts Options, prev *history, release func()) {
	t.Helper()
	recreateStream(t, ns, opts)
	waitNewHistory(t, a, prev, "the new stream taken")
	waitFor(t, "the renewal ended", func() bool { return !renewing(a.broker) })
	h := a.broker.cur.Load()

	kept, backup, gone := backUpThenLose(t, ns, a, 3)
	receives(t, a.subscribe(t, "topic=t", kept), gone) // delivered by the consumer
	made := h.live.current.Load()
	restore(t, ns, backup)
	waitFor(t, "the consumer made again", func() bool { return h.live.current.Load() != made })
	if !rechecking(a.broker) {
		t.Fatal("no check asked while the first one waits")
	}
	release()
	waitNewHistory(t, a, h, "the restored stream taken")
}

// A stream check of the instance's history, answered while the stream was
// still that history's, waits with its answer while the stream is deleted
// and created again, and a renewal (which does not wait for a check) puts
// the new stream's history in the old one's place and ends. The new
// stream is then restored from a backup (the store put back while NATS
// was stopped), and the consumer, made again after the restart, asks for
// a check of the new history while the first one waits: that check is
// asked once the first is answered, for the history current then, and it
// finds the restore (the stream's last sequence below the events
// delivered) while the instance is idle. Asked again for the history the
// first check was for, no longer current, it was dropped: the instance
// went on with the restored stream as its own, and its consumer, made
// again after the last sequence it had delivered, got none of the events
// stored there up to it.
func TestCheckAskedForTheNewHistoryWhileAnOldOneWaitsIsAsked(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	a := newInstance(t, opts)
	prev := a.broker.cur.Load()
	held, release := holdCheckAnswer(t, prev)
	a.broker.check(prev)
	waitCheckHeld(t, held)
	checkOfTheNewHistoryAsked(t, ns, a, opts, prev, release)
}

// As TestCheckAskedForTheNewHistoryWhileAnOldOneWaitsIsAsked, with the
// first check's answer that the stream is no longer the old history's:
// the stream was restored from a backup that lost events delivered (the
// consumer, made again after the restart, asked that check). Its answer
// renews nothing once another history is current, and the check asked
// for that one meanwhile is asked all the same. Dropped with the renewal
// of the old history, which was no longer current, it was lost: the
// instance went on with the new stream restored under it.
func TestCheckAskedForTheNewHistoryWhileAnOldOneFoundItsStreamGoneIsAsked(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	a := newInstance(t, opts)
	kept, backup, gone := backUpThenLose(t, ns, a, 3)
	receives(t, a.subscribe(t, "topic=t", kept), gone) // delivered by the consumer
	prev := a.broker.cur.Load()
	// Not the check of the consumer made again after the backup's
	// restart: held, its answer may be of the stream before the restore.
	made := prev.live.current.Load()
	held, release := holdCheckAnswerOnce(t, prev, func() bool { return prev.live.current.Load() != made })
	restore(t, ns, backup)
	waitCheckHeld(t, held) // of the consumer made again after the restore
	if a.broker.cur.Load() != prev {
		t.Fatal("the restored stream taken before the check was answered")
	}
	checkOfTheNewHistoryAsked(t, ns, a, opts, prev, release)
}
