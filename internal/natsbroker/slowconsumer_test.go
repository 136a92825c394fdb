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
	p.slowAnswers(10 * time.Second)
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
	deadline := time.Now().Add(waitLimit)
	for b.cur.Load().seen.last() != last {
		if time.Now().After(deadline) {
			t.Fatalf("delivered up to sequence %d of %d, and no more", b.cur.Load().seen.last(), last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
