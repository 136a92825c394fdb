package natsbroker

import (
	"testing"
	"time"
)

// The check of whether the stream was deleted, answered that JetStream
// is temporarily unavailable (10008), as a cluster's servers answer
// while the stream elects a leader, asks again each askEvery, as it does
// a question left unanswered, until the stream answers: then publishes
// are taken again. It paused ReconnectWait instead, doubled up to
// renewWaitMax, and the stream stayed "being checked" (publishes waiting,
// then refused) up to 2 s past the election's end. ReconnectWait is set
// past waitLimit here: paused so, the check is not over in time.
func TestCheckAsksAgainThroughAnElection(t *testing.T) {
	_, p, opts := startProxied(t)
	opts.ReconnectWait = time.Minute
	b := openBroker(t, opts)
	p.mu.Lock()
	p.infoUnavailable = 2 // the check's first two questions
	p.mu.Unlock()
	h := b.cur.Load()
	b.renew(h)
	// The publishes' view: Ready, the check fresh, is ready all along
	// (TestReadyWhileAFreshCheckHasNoAnswer).
	waitFor(t, "the check to find the stream there after the election", func() bool { return b.ready(h) == nil })
	if n := p.refusals(); n != 2 {
		t.Fatalf("%d of the check's questions answered JetStream temporarily unavailable, want 2", n)
	}
}
