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

// Two instances that set their limits from the same copy: the one whose
// write came last has its limits on the stream, and the other, finding
// that one's mark, no longer keeps its own. A stale copy's write undid
// both: each set its own again, and the one whose write came last then
// stayed, whichever had started last.
func TestLimitsOfAnInstanceWhoseWriteCameFirstAreNotSetAgain(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.PingInterval = time.Second
	opts.PublishTimeout = 5 * time.Second
	newInstance(t, opts).close() // creates the stream, with a mark
	op := ns.operator(t)
	stale := streamNow(t, op)

	// C reads the config, and writes its limits once B has.
	pc := startProxy(t, ns)
	heldC, releaseC := pc.holdNext(t, updateSubject)
	last := opts
	last.URLs = []string{pc.url()}
	last.HistorySize = 300
	opened := make(chan error, 1)
	var c *Broker
	go func() {
		var err error
		c, err = Open(t.Context(), last)
		if c != nil {
			t.Cleanup(c.Close)
		}
		opened <- err
	}()
	waitClosed(t, heldC, "c's write of its limits")
	pb := startProxy(t, ns)
	first := opts
	first.URLs = []string{pb.url()}
	first.HistorySize = 200
	b := newInstance(t, first)
	releaseC()
	if err := <-opened; err != nil {
		t.Fatal(err)
	}
	if got := streamNow(t, op).MaxMsgs; got != 300 {
		t.Fatalf("max_msgs %d, want c's 300", got)
	}
	asked := b.broker.jsAnswers.Load()
	waitFor(t, "b's question", func() bool { return b.broker.jsAnswers.Load() >= asked+2 })

	// B's write of its limits again, if any, comes after C's.
	heldC, releaseC = pc.holdNext(t, updateSubject)
	heldB, releaseB := pb.holdNext(t, updateSubject)
	if _, err := op.UpdateStream(t.Context(), stale); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, heldC, "c's write of its limits again")
	asked = b.broker.jsAnswers.Load()
	waitFor(t, "b's write held, or its questions", func() bool {
		select {
		case <-heldB:
			return true
		default:
			return b.broker.jsAnswers.Load() >= asked+2
		}
	})
	releaseC()
	waitFor(t, "c's limits set again", func() bool { return streamNow(t, op).MaxMsgs == 300 })
	releaseB()
	asked = c.jsAnswers.Load()
	waitFor(t, "c's questions", func() bool { return c.jsAnswers.Load() >= asked+2 })
	if got := streamNow(t, op).MaxMsgs; got != 300 {
		t.Fatalf("max_msgs %d, want c's 300", got)
	}
}
