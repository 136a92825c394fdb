package natsbroker

import (
	"strings"
	"testing"
)

// TestConsumerTakesEventsStoredPastAReconnectsMaxPayload: events stored
// while the instance's server took messages of 8 MiB, still in the
// stream once the connection is back on a server that takes 1 MiB (the
// same one restarted so; or another of a cluster whose servers do not
// share max_payload: routes carry messages of any size). Bounded by the
// new server's max_payload alone, a pull asked for fewer bytes than the
// next event takes, the server answered 409 and sent nothing, and
// nats.go asked again for as many: the consumer stopped there for good.
func TestConsumerTakesEventsStoredPastAReconnectsMaxPayload(t *testing.T) {
	ns, p, opts := startProxiedWith(t, &natsServer{maxPayload: 8 << 20})
	b, logs := openLogging(t, opts)
	// The events reach the stream while the server takes 8 MiB, and
	// none reaches the instance: they are lost on the way (as on a
	// connection that breaks), then the server comes back taking 1 MiB.
	data := strings.Repeat("x", 6<<20)
	lost := p.loseDeliveries(data)
	js := ns.operator(t)
	var last uint64
	for range 2 {
		ack, err := js.Publish(t.Context(), DefaultSubjectPrefix+".t", []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		last = ack.Sequence
	}
	waitClosed(t, lost, "a delivery lost")
	back := b.reconnected()
	ns.stop()
	p.passDeliveries()
	ns.maxPayload = 1 << 20
	ns.start(t)
	waitClosed(t, back, "the reconnect")
	if got := b.nc.MaxPayload(); got != 1<<20 {
		t.Fatalf("max_payload %d after the reconnect, want 1 MiB", got)
	}
	waitWhileDelivering(t, "the deliveries", func() uint64 { return b.cur.Load().seen.last() }, last, p, logs)
}
