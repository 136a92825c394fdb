package natsbroker

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/testlog"
)

// TestSlowConsumerNoticeLosesNoEvent: events stored faster than the
// instance's consumer hands them out pile up in the NATS client, which
// drops what passes its pending limit (64 MiB) and tells of a slow
// consumer. The consumer noticed the gap only at the next event it got:
// the last ones of a burst stayed undelivered, with publishes answered
// after their wait, until someone published again. Here the first event
// of a consumer waits for the stream's answer (deliver's check that it is
// h's stream), held back, while 80 events of 1 MiB arrive behind it.
func TestSlowConsumerNoticeLosesNoEvent(t *testing.T) {
	ns := startNATSWith(t, &natsServer{maxPayload: 2 << 20})
	p := startProxy(t, ns)
	var logs testlog.Buffer
	opts := testBrokerOptions(ns)
	opts.URLs = []string{p.url()}
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	b, err := Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const hold = 10 * time.Second
	p.slowAnswers(hold)
	js := ns.operator(t)
	data := []byte(strings.Repeat("x", 1<<20))
	var last uint64
	for range 80 {
		ack, err := js.Publish(t.Context(), DefaultSubjectPrefix+".t", data)
		if err != nil {
			t.Fatal(err)
		}
		last = ack.Sequence
	}
	waitFor(t, "the slow consumer notice", func() bool { return strings.Contains(logs.String(), "slow consumer") })
	p.slowAnswers(0)
	// 80 MiB took 9 to 15 s to hand out with -race on two busy cores:
	// the test fails when the deliveries stop short of the last event,
	// not when they are slow. An answer held back is let go of hold
	// after it came, at the latest: the deliveries may wait for it.
	waitForProgress(t, "the deliveries", func() uint64 { return b.cur.Load().seen.last() }, last, time.Now().Add(hold), &logs)
}

// waitForProgress waits for at() to reach want, and fails the test, with
// logs, once it has not moved for waitLimit; the wait for its first move
// counts from quietUntil, if later than now.
func waitForProgress(t *testing.T, what string, at func() uint64, want uint64, quietUntil time.Time, logs *testlog.Buffer) {
	t.Helper()
	got, moved := at(), time.Now()
	if quietUntil.After(moved) {
		moved = quietUntil
	}
	for got != want {
		time.Sleep(10 * time.Millisecond)
		if now := at(); now != got {
			got, moved = now, time.Now()
		} else if time.Since(moved) > waitLimit {
			t.Fatalf("%s stopped at sequence %d of %d for %v\n%s", what, got, want, waitLimit, logs.String())
		}
	}
}
