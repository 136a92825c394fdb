package natsbroker

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/testlog"
)

// As TestSlowConsumerNoticeLosesNoEvent, for the consumer of a history a
// renewal has made and not yet made current (pending): its first event
// waits for the stream's answer, held back, while 80 events of 1 MiB
// arrive behind it, and the NATS client drops what passes its pending
// limit. Only the current history's consumer made again at the notice,
// the pending one's last events waited for the next publish.
//
// The answers are held until the notice has come and the last event has
// reached the client, not for a fixed time: held for 10 s, a loaded
// machine let them go before 64 MiB had reached the client, and no notice
// came. Let go of before the last event, the events after those dropped
// told the consumer of the gap without the notice. Let go of, the answers
// come behind what the server has queued for the connection meanwhile
// (each consumer made again reads on from the last event delivered, the
// current history's too, which reads the new stream): on a loaded machine
// the deliveries passed the proxy at 10 to 20 MiB/s, each answer came 2
// to 4 s after its question, past the 2 s each of deliver's questions
// (same) waits, and the pending history's deliveries stood still for 11
// to 19 s while that queue drained, then all came. So the test fails once
// neither its deliveries nor the connection's have moved for waitLimit.
func TestSlowConsumerNoticeRemakesThePendingConsumer(t *testing.T) {
	ns, p, opts := startProxiedWith(t, &natsServer{maxPayload: 2 << 20})
	var logs testlog.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	// Missed heartbeats make the consumer again too: come behind the
	// deliveries queued once the answers are let go of, two in a row
	// were missed, and the consumer made again for them delivered the
	// events the client dropped, with or without the notice's remake.
	// Missed after 24 s, they come after the test has failed.
	opts.heartbeat = 12 * time.Second
	// Pulls past the client's pending limit (64 MiB), as the consumer's
	// are (pullBytes) on a NATS server that takes messages of 64 MiB (its
	// largest max_payload): with the bound this server's gets, 4 MiB,
	// the client never holds enough for a slow consumer notice.
	opts.pullBytes = 128 << 20
	a := newInstance(t, opts)
	h, release := pendingAfterARecreate(t, a, ns, opts)
	consumer := h.live.current.Load().name
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
	sent := noticedAndSent(t, &logs, p, ns, consumer, last)
	waitWhileDelivering(t, "the slow consumer notice and the last event sent", sent, last, p, &logs)
	letGo()
	waitWhileDelivering(t, "the pending history's deliveries", h.seen.last, last, p, &logs)
	if a.broker.pendingHistory() != h {
		t.Fatal("the history was made current before its deliveries were checked")
	}
	release()
}

// noticedAndSent returns a function for waitWhileDelivering that is last
// once the slow consumer notice is in logs and the server has sent
// consumer all it will, 0 before. The last event is written to the client
// before the answers held are let go of: the client drops it before the
// first event's answer comes, and nothing but the notice tells of the
// gap. Or the last the server sends the consumer: its pull (nats.go's,
// for 30 s) may end first on a loaded machine (it did at event 74, 27 s
// into the publishes), and the client, its handler waiting, pulls again
// only once it has missed two heartbeats.
func noticedAndSent(t *testing.T, logs *testlog.Buffer, p *natsProxy, ns *natsServer, consumer string, last uint64) func() uint64 {
	js := ns.operator(t)
	return func() uint64 {
		if !strings.Contains(logs.String(), "slow consumer") {
			return 0
		}
		reached := p.reachedBy(consumer)
		if reached == last {
			return last
		}
		cons, err := js.Consumer(t.Context(), DefaultStream, consumer)
		if err != nil {
			t.Fatal(err)
		}
		if info := cons.CachedInfo(); info.NumWaiting == 0 && info.Delivered.Stream == reached {
			return last
		}
		return 0
	}
}

// waitWhileDelivering waits for at() to reach want, and fails the test,
// with logs, once neither at() nor the count of deliveries p has passed
// on to clients has moved for waitLimit: it fails when the deliveries
// stop, not when the connection is slow to carry them.
func waitWhileDelivering(t *testing.T, what string, at func() uint64, want uint64, p *natsProxy, logs *testlog.Buffer) {
	t.Helper()
	got, passed, moved := at(), p.deliveries(), time.Now()
	for got != want {
		time.Sleep(10 * time.Millisecond)
		now, nowPassed := at(), p.deliveries()
		switch {
		case now != got || nowPassed != passed:
			got, passed, moved = now, nowPassed, time.Now()
		case time.Since(moved) > waitLimit:
			t.Fatalf("%s stopped at %d of %d, no delivery passing for %v\n%s", what, got, want, waitLimit, logs.String())
		}
	}
}
