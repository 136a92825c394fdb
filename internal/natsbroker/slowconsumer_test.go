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
	ns, p, opts := startProxiedWith(t, &natsServer{maxPayload: 2 << 20})
	var logs testlog.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	// Missed heartbeats make the consumer again too, and its remake
	// delivers what the client dropped without the notice: missed after
	// 24 s, they come after the test has failed
	// (TestSlowConsumerNoticeRemakesThePendingConsumer).
	opts.heartbeat = 12 * time.Second
	// Pulls past the client's pending limit (64 MiB), as the consumer's
	// are (pullBytes) on a NATS server that takes messages of 64 MiB (its
	// largest max_payload): with the bound this server's gets, 4 MiB,
	// the client never holds enough for a slow consumer notice.
	opts.pullBytes = 128 << 20
	b, err := Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	consumer := b.cur.Load().live.current.Load().name
	// Held until the notice, not for a fixed time that a loaded machine
	// runs out before 64 MiB have reached the client.
	letGo := p.holdAnswers(t)
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
	waitWhileDelivering(t, "the slow consumer notice and the last event sent", noticedAndSent(t, &logs, p, ns, consumer, last), last, p, &logs)
	letGo()
	// The test fails when the deliveries stop short of the last event,
	// not when they are slow.
	waitWhileDelivering(t, "the deliveries", func() uint64 { return b.cur.Load().seen.last() }, last, p, &logs)
}
