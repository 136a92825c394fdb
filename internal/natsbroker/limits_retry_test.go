package natsbroker

import (
	"log/slog"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/testlog"
)

// limitsUndoneWarning is in the warning that an instance could not set
// its limits again.
const limitsUndoneWarning = "could not be set again"

// An instance whose limits a stale copy undid, and whose write of them
// again NATS left unanswered (busy, as just after a restart), never set
// them again: the stream kept the limits undone while it ran. It tries
// again later, as share does its metadata.
func TestLimitsSetAgainAfterAnUnansweredWrite(t *testing.T) {
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
	newer.PublishTimeout = 500 * time.Millisecond
	var log testlog.Buffer
	newer.Logger = slog.New(slog.NewTextHandler(&log, nil))
	newInstance(t, newer)
	if got := streamNow(t, op).MaxMsgs; got != 200 {
		t.Fatalf("b started with max_msgs %d on the stream, want 200", got)
	}
	swallowed := p.swallowRequests(updateSubject)
	if _, err := op.UpdateStream(t.Context(), stale); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, swallowed, "b's write of its limits again")
	waitFor(t, "the warning", func() bool { return log.Count(limitsUndoneWarning) > 0 })
	p.passRequests()
	waitFor(t, "b's limits set again", func() bool { return streamNow(t, op).MaxMsgs == 200 })
}

// Once the instance that set the limits had stopped, a stale copy's
// write undid them for good: the other instances of the same limits,
// which had found them set, wrote no mark and knew none. Each instance
// whose limits are the stream's keeps them as the one that set them did.
func TestLimitsSetAgainOnceTheInstanceThatSetThemStopped(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.PingInterval = metadataAskEvery
	newInstance(t, opts).close() // creates the stream, with a mark
	op := ns.operator(t)
	stale := streamNow(t, op)

	newer := opts
	newer.HistorySize = 200
	b := newInstance(t, newer)
	other := newInstance(t, newer)
	if got := streamNow(t, op).MaxMsgs; got != 200 {
		t.Fatalf("b started with max_msgs %d on the stream, want 200", got)
	}
	asked := other.broker.jsAnswers.Load()
	waitFor(t, "watch's question", func() bool { return other.broker.jsAnswers.Load() >= asked+1 })
	b.close()
	if _, err := op.UpdateStream(t.Context(), stale); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the limits set again", func() bool { return streamNow(t, op).MaxMsgs == 200 })

	// An operator's edit that keeps the metadata stays.
	edited := streamNow(t, op)
	edited.MaxMsgs = 300
	if _, err := op.UpdateStream(t.Context(), edited); err != nil {
		t.Fatal(err)
	}
	asked = other.broker.jsAnswers.Load()
	waitFor(t, "watch's questions", func() bool { return other.broker.jsAnswers.Load() >= asked+4 })
	if got := streamNow(t, op).MaxMsgs; got != 300 {
		t.Fatalf("max_msgs %d, want the operator's 300", got)
	}
}
