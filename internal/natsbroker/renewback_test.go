package natsbroker

import (
	"testing"
	"time"
)

// TestRenewalAsksAgainOnceNATSIsBack: a check of the stream under way
// (its consumer deleted, its stream answered "not found" as by a
// JetStream still recovering) when NATS goes away backs off while it
// cannot ask, up to 10 s between questions. Once NATS was back, the
// instance stayed unready, every publish answered 503, for the rest of
// that pause: up to 10 s after NATS and its stream answered again. The
// check asks again as soon as the connection is back.
func TestRenewalAsksAgainOnceNATSIsBack(t *testing.T) {
	ns, p, a := checkingAMissedStream(t, 10*time.Second) // a pause long enough to tell
	ns.stop()
	// Long enough for the renewal's pause to reach its 10 s.
	waitFor(t, "the instance to see NATS gone", func() bool { return !a.broker.Connected() })
	time.Sleep(11 * time.Second)
	p.missStream(0)
	ns.start(t)
	waitFor(t, "the instance to reconnect", a.broker.Connected)
	back := time.Now()
	for a.broker.Ready() != nil {
		if time.Since(back) > 2*time.Second {
			t.Fatalf("still unready %v after NATS is back: %v", time.Since(back), a.broker.Ready())
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.publish(t, "t", "after")
}

// A stream JetStream answers "not found" for some seconds while the
// connection stays up (a server restarted, recovering its store: longer
// on a loaded machine): the check of the stream backed off up to 10 s
// between questions, and the instance stayed unready, every publish
// answered 503, up to 10 s after the stream answered again (a restore
// test failed so in CI). Its pause grows to renewWaitMax, 2 s.
func TestRenewalAsksSoonOnceTheStreamAnswersAgain(t *testing.T) {
	t.Parallel() // waits for the renewal's pauses, not on the CPU
	_, p, a := checkingAMissedStream(t, 0)
	// Long enough for a pause doubling from 20 ms to pass 4 s (from
	// 5.1 s after the first question, 10.2 s) and the bound below.
	time.Sleep(6 * time.Second)
	p.missStream(0)
	answered := time.Now()
	for a.broker.Ready() != nil {
		if time.Since(answered) > 3*time.Second { // renewWaitMax and a second

			t.Fatalf("still unready %v after the stream answered again: %v", time.Since(answered), a.broker.Ready())
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.publish(t, "t", "after")
}

// checkingAMissedStream starts an instance behind a proxy, with
// renewMax (0: renewWaitMax), whose stream the proxy has JetStream
// answer "not found" for, and deletes its consumer: it returns once the
// instance checks its stream (renewFrom), asking again and again.
func checkingAMissedStream(t *testing.T, renewMax time.Duration) (*natsServer, *natsProxy, *instance) {
	t.Helper()
	ns, p, opts := startProxied(t)
	opts.renewMax = renewMax
	a := newInstance(t, opts)
	a.publish(t, "t", "before")

	p.missStream(1 << 30)
	h := a.broker.cur.Load()
	if err := ns.operator(t).DeleteConsumer(t.Context(), DefaultStream, h.live.current.Load().name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the instance to check its stream", func() bool { return h.stale.Load() })
	return ns, p, a
}
