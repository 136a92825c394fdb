package natsbroker

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/ssehub/ssehub/internal/testlog"
)

// TestConsumerPullsABoundedNumberOfBytes: the instance's consumer asks
// NATS for at most pullBytes of events it has not handled yet, whatever
// their number. Asked for 500 events (nats.go's default) with no bound
// in bytes, the server sent a burst of 1 MiB events all at once on the
// instance's one connection, ahead of the answers of JetStream's API and
// of the pulls' heartbeats: with 80 MiB queued, each answer came 2 to 4 s
// after its question on a loaded machine, and deliveries, waiting for the
// stream's answer (same), stood still for 11 to 19 s
// (TestSlowConsumerNoticeRemakesThePendingConsumer).
//
// Here the consumer's first event waits for the stream's answer, held
// back, while 20 events of 1 MiB are stored behind it: the server sends
// what the consumer's pull asked for, then stops (its pull ended, or
// every event sent). What it sent is counted in bytes as it counts them
// against a pull (subject, reply subject, headers and data), and compared
// with the bound; no time is measured.
func TestConsumerPullsABoundedNumberOfBytes(t *testing.T) {
	ns, p, opts := startProxiedWith(t, &natsServer{maxPayload: 2 << 20})
	b, logs := openLogging(t, opts)
	consumer := b.cur.Load().live.current.Load().name
	bound := b.pullBytes()
	letGo := p.holdAnswers(t)
	js := ns.operator(t)
	data := []byte(strings.Repeat("x", 1<<20))
	const events = 20
	var last uint64
	for range events {
		ack, err := js.Publish(t.Context(), DefaultSubjectPrefix+".t", data)
		if err != nil {
			t.Fatal(err)
		}
		last = ack.Sequence
	}
	if events*len(data) <= bound {
		t.Fatalf("%d events of %d bytes fit in a pull of %d bytes: the test tells nothing", events, len(data), bound)
	}
	info := sentAll(t, ns, consumer, last)
	each := deliveryBytes(consumer, DefaultSubjectPrefix+".t", len(data))
	if sent := int(info.Delivered.Consumer) * each; sent > bound {
		t.Fatalf("the server sent %d events (%d bytes at most each, %d in all) to a consumer that had handled none: more than a pull's bound, %d bytes", info.Delivered.Consumer, each, sent, bound)
	}
	if info.Delivered.Consumer == 0 {
		t.Fatal("the server sent the consumer nothing")
	}
	letGo()
	// Bounded, the pulls go on as events are handled: every one comes.
	waitWhileDelivering(t, "the deliveries", func() uint64 { return b.cur.Load().seen.last() }, last, p, logs)
}

// deliveryBytes is the most a delivery of consumer, of a message to
// subject with data bytes of data and no headers, counts against a
// pull's max bytes, as the server counts it: subject, reply subject
// ($JS.ACK.<stream>.<consumer>. and 6 numbers, 20 digits at most each),
// and the data.
func deliveryBytes(consumer, subject string, data int) int {
	return len(subject) + len("$JS.ACK."+DefaultStream+"."+consumer+".") + 6*21 + data
}

// sentAll waits until the server has sent consumer every event it will
// while the instance handles none: the last one, or what its pulls asked
// for (none is waiting any more). It returns the consumer's info then.
func sentAll(t *testing.T, ns *natsServer, consumer string, last uint64) *jetstream.ConsumerInfo {
	t.Helper()
	js := ns.operator(t)
	cons, err := js.Consumer(t.Context(), DefaultStream, consumer)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLimit)
	for {
		info, err := cons.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if info.Delivered.Stream == last || info.Delivered.Stream > 0 && info.NumWaiting == 0 {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server sent up to sequence %d of %d, %d pulls waiting, for %v", info.Delivered.Stream, last, info.NumWaiting, waitLimit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConsumerTakesEventsAsLargeAsMaxPayload: a pull's bound is at least
// the largest message the NATS server takes (its max_payload), with the
// subjects a delivery carries. Asked for fewer bytes than the next
// message takes, the server answers "409 Message Size Exceeds MaxBytes"
// and sends nothing, and nats.go asks again for as many: the consumer
// never delivers that event, nor any after it. Here the server takes
// 8 MiB, twice the least bound.
func TestConsumerTakesEventsAsLargeAsMaxPayload(t *testing.T) {
	ns, p, opts := startProxiedWith(t, &natsServer{maxPayload: 8 << 20})
	b, logs := openLogging(t, opts)
	if minPullBytes >= 8<<20 {
		t.Fatalf("the least bound, %d bytes, takes an event of 8 MiB: the test tells nothing", minPullBytes)
	}
	js := ns.operator(t)
	// As large as a publish may be: max_payload bounds its headers
	// (none) and data.
	data := []byte(strings.Repeat("x", 8<<20))
	var last uint64
	for range 3 {
		ack, err := js.Publish(t.Context(), DefaultSubjectPrefix+".t", data)
		if err != nil {
			t.Fatal(err)
		}
		last = ack.Sequence
	}
	waitWhileDelivering(t, "the deliveries", func() uint64 { return b.cur.Load().seen.last() }, last, p, logs)
}

// openLogging opens a Broker with opts, logging to the buffer it returns,
// and closes it as t ends.
func openLogging(t *testing.T, opts Options) (*Broker, *testlog.Buffer) {
	t.Helper()
	logs := new(testlog.Buffer)
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	return openBroker(t, opts), logs
}
