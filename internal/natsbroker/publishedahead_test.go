package natsbroker

import (
	"net/http"
	"testing"
	"time"
)

// An event whose publish the instance answered with its id before its
// consumer delivered it (the delivery lost on the way; the stream asked
// instead: confirmStream), then the stream restored from a backup that
// lacks it: a resume from that id is reset at the last event the restore
// kept, and gets the events stored since, as one from an id a subscriber
// got is. The instance counted only the events its consumer delivered or
// a resume's pages read: it took the restored stream for its own, and
// delivered the new event stored under the published one's sequence
// under its id, which its publisher had been told was its event's; a
// resume from it passed over that event without a word.
func TestResumeFromAPublishedEventTheRestoreLostBeforeItsDelivery(t *testing.T) {
	t.Parallel()
	ns, p, opts := startProxied(t)
	logOnFailure(t, &opts)
	a := newInstance(t, opts)
	kept := a.publish(t, "t", "in the backup")
	backup := backUpSeen(t, ns, a)

	lost := p.loseDeliveries("published ahead of the consumer")
	published := publishUntilAccepted(t, a, "t", "published ahead of the consumer")
	select {
	case <-lost:
	case <-time.After(acceptLimit):
		t.Fatal("the consumer's delivery was not lost")
	}
	p.passDeliveries()

	h := a.broker.cur.Load()
	restore(t, ns, backup)
	waitRestoreTaken(t, a, h)
	after := publishAfterTheRestore(t, a, 2)
	if after[0] != published {
		t.Fatalf("the restored stream stored at id %s, want %s", after[0], published)
	}
	resumesFromTheLost(t, a, []string{published}, kept, after)
}

// As TestResumeFromAPublishedEventTheRestoreLostBeforeItsDelivery, the id
// answered to a retry with the same Idempotency-Key (the first publish's
// acknowledgement lost, answered 503) as a replay of the event the first
// one stored, before the consumer delivered it: a resume from that id is
// reset at the last event the restore kept. The instance did not count
// it, took the restored stream for its own, and a resume from the id
// passed over the new event stored under its sequence.
func TestResumeFromAReplayedPublishTheRestoreLostBeforeItsDelivery(t *testing.T) {
	t.Parallel()
	ns, p, opts := startProxied(t)
	logOnFailure(t, &opts)
	a := newInstance(t, opts)
	kept := a.publish(t, "t", "in the backup")
	backup := backUpSeen(t, ns, a)

	body := `{"data": "replayed ahead of the consumer"}`
	lostDelivery := p.loseDeliveries("replayed ahead of the consumer")
	lostAck := p.loseAcknowledgements()
	if status, _, _ := a.postKeyed(t, "t", body, "retry-me"); status != http.StatusServiceUnavailable {
		t.Fatalf("publish whose acknowledgement is lost: %d, want 503", status)
	}
	for _, lost := range []<-chan struct{}{lostAck, lostDelivery} {
		select {
		case <-lost:
		case <-time.After(acceptLimit):
			t.Fatal("neither the acknowledgement nor the delivery was lost")
		}
	}
	p.passAcknowledgements()
	// The retry may be answered 503 itself on a loaded machine (its
	// acknowledgement not back in time); it is sent again with the same
	// key, which stores nothing twice.
	status, replayedID, replayed := a.postKeyed(t, "t", body, "retry-me")
	for deadline := time.Now().Add(waitLimit); status == http.StatusServiceUnavailable && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		status, replayedID, replayed = a.postKeyed(t, "t", body, "retry-me")
	}
	if status != http.StatusCreated || replayed != "true" {
		t.Fatalf("the retry: %d, replayed %q, want 201 replayed", status, replayed)
	}
	p.passDeliveries()

	h := a.broker.cur.Load()
	restore(t, ns, backup)
	waitRestoreTaken(t, a, h)
	after := publishAfterTheRestore(t, a, 2)
	if after[0] != replayedID {
		t.Fatalf("the restored stream stored at id %s, want %s", after[0], replayedID)
	}
	resumesFromTheLost(t, a, []string{replayedID}, kept, after)
}

// logOnFailure has opts log, at every level, to a buffer the test prints
// should it fail.
func logOnFailure(t *testing.T, opts *Options) {
	logs := watchLog(opts)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the instance's log:\n%s", logs.String())
		}
	})
}

// waitRestoreTaken waits until a has put another history in prev's place
// and is ready: it has taken the restored stream. As waitNewHistory, within
// acceptLimit, not waitLimit: the way there is a restarted server's
// reconnect, the consumer made again, the stream's check and a renewal of
// several JetStream answers (its new consumer's among them). A restore
// never noticed fails here, with the log: so it did under load (once in
// 28 runs beside other packages' tests under -race, 5 times in about 370
// beside CPU hogs), the instance's log silent from its reconnect on, as
// the published event's id, answered unconfirmed, was not counted
// (TestPublishAnsweredUnconfirmedCountsItsID).
func waitRestoreTaken(t *testing.T, a *instance, prev *history) {
	t.Helper()
	deadline := time.Now().Add(acceptLimit)
	for a.broker.cur.Load() == prev || !settled(a.broker) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for the restored stream taken (%v)", acceptLimit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
