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
func TestSlowConsumerNoticeRemakesThePendingConsumer(t *testing.T) {
	ns := startNATSWith(t, &natsServer{maxPayload: 2 << 20})
	p := startProxy(t, ns)
	var logs testlog.Buffer
	opts := testBrokerOptions(ns)
	opts.URLs = []string{p.url()}
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	a := newInstance(t, opts)
	h, release := pendingAfterARecreate(t, a, ns, opts)
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
	// See TestSlowConsumerNoticeLosesNoEvent for the wait.
	waitForProgress(t, "the pending history's deliveries", h.seen.last, last, time.Now().Add(hold), &logs)
	if a.broker.pendingHistory() != h {
		t.Fatal("the history was made current before its deliveries were checked")
	}
	release()
}
