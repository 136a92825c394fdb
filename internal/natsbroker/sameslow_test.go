package natsbroker

import (
	"log/slog"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/testlog"
)

// TestFirstDeliveryWaitsForAStreamThatAnswersPastPublishTimeout: the
// first event of a consumer waits for the stream's answer that it is h's
// (same). Each of its questions was dropped after PublishTimeout and
// asked anew: a server that answered each later than that (busy, or with
// the consumer's events queued ahead of its answers on the connection)
// was never heard, and the instance delivered nothing for as long as it
// answered so. Here every answer of JetStream's API comes half a
// PublishTimeout after it.
func TestFirstDeliveryWaitsForAStreamThatAnswersPastPublishTimeout(t *testing.T) {
	ns := startNATS(t)
	p := startProxy(t, ns)
	var logs testlog.Buffer
	opts := testBrokerOptions(ns)
	opts.URLs = []string{p.url()}
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	// Its second question, waiting twice as long, is answered within a
	// few seconds: the test fails once no delivery has passed for
	// waitLimit.
	opts.PublishTimeout = time.Second
	b, err := Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p.slowAnswers(opts.PublishTimeout * 3 / 2)
	ack, err := ns.operator(t).Publish(t.Context(), DefaultSubjectPrefix+".t", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	waitWhileDelivering(t, "the deliveries", func() uint64 { return b.cur.Load().seen.last() }, ack.Sequence, p, &logs)
}
