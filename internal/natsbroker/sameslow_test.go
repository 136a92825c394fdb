package natsbroker

import (
	"log/slog"
	"testing"
	"testing/synctest"
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

// TestFirstDeliveryAsksAgainOnceNATSIsBack: a round of same's questions
// that goes unanswered (here swallowed, as by a connection that breaks)
// is followed by a pause of ReconnectWait before the next. Once the
// connection was back, the consumer's first event, and every one after
// it, waited out the rest of that pause. The clock is synctest's, the
// pause an hour: the event must come within minutes of the reconnect.
// Without the fix the test hangs until go test's -timeout, which names
// it: the bubble's clock stands still, the delivery in its pause holding
// the consumer's lock, which another goroutine waits for on a mutex (not
// a durable block).
func TestFirstDeliveryAsksAgainOnceNATSIsBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, opts, js := startBubbled(t)
		opts.PublishTimeout = time.Second
		opts.ReconnectWait = time.Hour
		b, err := Open(t.Context(), opts)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		swallowed := p.swallowRequests("$JS.API.STREAM.INFO.")
		ack, err := js.Publish(t.Context(), DefaultSubjectPrefix+".t", []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		<-swallowed
		// Past the round's 1 s: same is in its pause.
		time.Sleep(10 * time.Second)
		if got := b.cur.Load().seen.last(); got >= ack.Sequence {
			t.Fatalf("delivered %d with the stream's info swallowed", got)
		}
		p.mu.Lock()
		p.swallow = nil
		p.mu.Unlock()
		back := b.reconnected()
		if err := b.nc.ForceReconnect(); err != nil {
			t.Fatal(err)
		}
		<-back
		reconnected := time.Now()
		for b.cur.Load().seen.last() < ack.Sequence {
			if time.Since(reconnected) > 10*time.Minute {
				t.Fatalf("not delivered %v after the reconnect", time.Since(reconnected))
			}
			time.Sleep(time.Second)
		}
	})
}
