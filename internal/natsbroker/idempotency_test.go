package natsbroker

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/ssehub/ssehub/internal/stream"
)

// postKeyed publishes body to topic with an Idempotency-Key and returns
// the status, the answer's id and its Idempotent-Replayed header.
func (in *instance) postKeyed(t *testing.T, topic, body, key string) (status int, id, replayed string) {
	t.Helper()
	status, id, header := in.post(t, topic, body, "Idempotency-Key", key)
	return status, id, header.Get("Idempotent-Replayed")
}

// lastSeq is the stream's last sequence, as NATS tells it now.
func lastSeq(t *testing.T, in *instance) uint64 {
	t.Helper()
	info, err := in.broker.cur.Load().stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// A publish repeating a key, through any instance, is acknowledged by
// JetStream as a duplicate and stores nothing: it is answered with the
// first event's id, replayed, and every instance's subscribers get the
// event once. The header that carries the key does not reach them.
func TestPublishKeyStoresOnce(t *testing.T) {
	eachPublishMode(t, func(t *testing.T, options func(*natsServer) Options) {
		ns := startNATS(t)
		a, b := newInstance(t, options(ns)), newInstance(t, options(ns))
		onA, onB := a.subscribe(t, "topic=t", ""), b.subscribe(t, "topic=t", "")
		p := stream.Publication{Topic: "t", Type: "e", Data: "once", Key: "k"}
		first, replayed, err := a.broker.Publish(p)
		if err != nil || replayed {
			t.Fatalf("first publish: replayed %v, %v", replayed, err)
		}
		for _, in := range []*instance{a, b, a} {
			m, replayed, err := in.broker.Publish(p)
			if err != nil || !replayed || m.ID != first.ID || m.Topic != "t" {
				t.Fatalf("repeat: %v replayed %v, %v; want event %d replayed", m, replayed, err, first.ID)
			}
		}
		if seq := lastSeq(t, a); seq != 1 {
			t.Fatalf("the stream's last sequence is %d, want 1: the repeats were stored", seq)
		}
		if got := a.broker.Stats().Published + b.broker.Stats().Published; got != 1 {
			t.Errorf("the instances count %d published, want 1", got)
		}
		if d := a.broker.cur.Load().stream.CachedInfo().Config.Duplicates; d != stream.IdempotencyWindow {
			t.Errorf("the stream's duplicate window is %v, want %v", d, stream.IdempotencyWindow)
		}
		after := a.publish(t, "t", "after")
		for _, c := range []*client{onA, onB} {
			if ev := c.next(t); ev.ID != first.IDString() || ev.Type != "e" || ev.Data != "once" {
				t.Fatalf("first event %+v, want id %d", ev, first.ID)
			}
			if ev := c.next(t); ev.ID != after {
				t.Fatalf("next event %+v, want %s: a repeat was delivered", ev, after)
			}
		}
	})
}

// The same key with another event is refused with ErrKeyReused, nothing
// stored: checked against the local history, or, on an instance that
// started after the first event and does not hold it, against the stream.
func TestPublishKeyReusedForAnotherEvent(t *testing.T) {
	ns := startNATS(t)
	a := newInstance(t, testBrokerOptions(ns))
	first, _, err := a.broker.Publish(stream.Publication{Topic: "t", Data: "one", Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	opts := testBrokerOptions(ns)
	opts.cold = true // its local history starts after the event
	late := newInstance(t, opts)
	if late.broker.cur.Load().mem.Retained(first.ID) != nil {
		t.Fatal("an instance started after the event holds it")
	}
	for _, in := range []*instance{a, late} {
		for _, p := range []stream.Publication{
			{Topic: "t", Data: "two", Key: "k"},
			{Topic: "t", Type: "e", Data: "one", Key: "k"},
		} {
			if m, replayed, err := in.broker.Publish(p); !errors.Is(err, stream.ErrKeyReused) || m != nil || replayed {
				t.Errorf("%+v: %v, replayed %v, %v; want ErrKeyReused", p, m, replayed, err)
			}
		}
		if m, replayed, err := in.broker.Publish(stream.Publication{Topic: "t", Data: "one", Key: "k"}); err != nil || !replayed || m.ID != first.ID {
			t.Errorf("the same event: %v replayed %v, %v; want event %d replayed", m, replayed, err, first.ID)
		}
	}
	if m, replayed, err := a.broker.Publish(stream.Publication{Topic: "u", Data: "two", Key: "k"}); err != nil || replayed || m.ID == first.ID {
		t.Errorf("key k on topic u: %v replayed %v, %v; want a new event", m, replayed, err)
	}
	if seq := lastSeq(t, a); seq != 2 {
		t.Fatalf("the stream's last sequence is %d, want 2", seq)
	}
	if status, _, _ := a.postKeyed(t, "t", `{"data": "two"}`, "k"); status != http.StatusUnprocessableEntity {
		t.Errorf("over HTTP: %d, want 422", status)
	}
}

// Publishes with one key at once store one event: JetStream keeps one
// message per Nats-Msg-Id.
func TestPublishKeyConcurrent(t *testing.T) {
	const publishers = 8
	ns := startNATS(t)
	a := newInstance(t, testBrokerOptions(ns))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ids      = map[uint64]int{}
		replayed int
	)
	start := make(chan struct{})
	for range publishers {
		wg.Go(func() {
			<-start
			m, r, err := a.broker.Publish(stream.Publication{Topic: "t", Data: "once", Key: "k"})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			ids[m.ID]++
			if r {
				replayed++
			}
		})
	}
	close(start)
	wg.Wait()
	if len(ids) != 1 || replayed != publishers-1 {
		t.Errorf("ids %v, %d replayed; want one id, all but one replayed", ids, replayed)
	}
	if seq := lastSeq(t, a); seq != 1 {
		t.Fatalf("the stream's last sequence is %d, want 1", seq)
	}
}

// A publish whose acknowledgement is lost (here by a proxy between the
// instance and NATS) is answered 503, though JetStream stored the event;
// the client's retry with the same Idempotency-Key is answered 201 with
// that event's id, replayed, and the event is stored and delivered once.
func TestPublishKeyRetriedAfterLostAck(t *testing.T) {
	eachPublishMode(t, func(t *testing.T, options func(*natsServer) Options) {
		ns := startNATS(t)
		p := startProxy(t, ns)
		opts := options(ns)
		opts.URLs = []string{p.url()}
		opts.PublishTimeout = time.Second
		a := newInstance(t, opts)
		c := a.subscribe(t, "topic=t", "")
		const body = `{"data": "stored once"}`

		lost := p.loseAcknowledgements()
		if status, _, _ := a.postKeyed(t, "t", body, "retry-me"); status != http.StatusServiceUnavailable {
			t.Fatalf("publish whose acknowledgement is lost: %d, want 503", status)
		}
		select {
		case <-lost:
		default:
			t.Fatal("no acknowledgement was lost")
		}
		if seq := lastSeq(t, a); seq != 1 {
			t.Fatalf("the stream's last sequence is %d, want 1: the event is stored", seq)
		}
		p.passAcknowledgements()

		status, id, replayed := a.postKeyed(t, "t", body, "retry-me")
		if want := strconv.FormatUint(a.broker.cur.Load().ids.id(1), 10); status != http.StatusCreated || id != want || replayed != "true" {
			t.Fatalf("retry: %d id %q, Idempotent-Replayed %q; want 201 with %s, the stored event's, replayed", status, id, replayed, want)
		}
		if seq := lastSeq(t, a); seq != 1 {
			t.Fatalf("the stream's last sequence is %d after the retry, want 1", seq)
		}
		after := a.publish(t, "t", "after")
		if ev := c.next(t); ev.Data != "stored once" {
			t.Fatalf("event %+v, want the one stored", ev)
		}
		if ev := c.next(t); ev.ID != after {
			t.Fatalf("event %+v, want %s: the retry was delivered", ev, after)
		}
	})
}

// A duplicate's acknowledgement is checked against the event under its
// id: another event there is a key used twice when the stream is still
// the history's, and no reason to look for a new stream; when the stream
// was created again meanwhile, it is that, as confirm finds for a
// publish that is no duplicate.
func TestConfirmReplayTellsKeyReuseFromANewStream(t *testing.T) {
	ns := startNATS(t)
	a := newInstance(t, testBrokerOptions(ns))
	p := stream.Publication{Topic: "t", Data: "one", Key: "k"}
	first, _, err := a.broker.Publish(p)
	if err != nil {
		t.Fatal(err)
	}
	h := a.broker.cur.Load()
	if err := a.broker.confirmReplay(t.Context(), h, first, p); err != nil {
		t.Fatalf("the event stored under the key: %v", err)
	}
	p.Data = "two"
	other, _ := stream.NewMessage(first.ID, "t", "", "two")
	if err := a.broker.confirmReplay(t.Context(), h, other, p); !errors.Is(err, stream.ErrKeyReused) {
		t.Fatalf("another event under the key: %v, want ErrKeyReused", err)
	}
	if a.broker.Ready() != nil || a.broker.cur.Load() != h {
		t.Fatal("a key used twice made the broker look for a new stream")
	}

	deleteStream(t, ns, DefaultStream)
	createStreamAgain(t, ns, streamConfig(&a.broker.opts))
	if err := a.broker.confirmReplay(t.Context(), h, other, p); !errors.Is(err, ErrStreamDeleted) {
		t.Fatalf("a duplicate acknowledged by a stream created again: %v, want ErrStreamDeleted", err)
	}
}

// JetStream keeps a key for its duplicate window even once its event has
// left the stream: a retry then stores nothing and is answered with the
// event's id. Its type and data can no longer be compared: another event
// under the key is answered so too (the README says so).
func TestPublishKeyOutlivesItsEventInTheStream(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.HistorySize = 2
	a := newInstance(t, opts)
	p := stream.Publication{Topic: "t", Data: "one", Key: "k"}
	first, _, err := a.broker.Publish(p)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		a.publish(t, "t", "later")
	}
	for _, data := range []string{"one", "two"} {
		p.Data = data
		if m, replayed, err := a.broker.Publish(p); err != nil || !replayed || m.ID != first.ID {
			t.Errorf("%s: %v replayed %v, %v; want event %d replayed", data, m, replayed, err, first.ID)
		}
	}
	if seq := lastSeq(t, a); seq != 4 {
		t.Fatalf("the stream's last sequence is %d, want 4", seq)
	}
}

// A key's retry on an instance whose consumer is behind (it has not read
// the first event yet, as after a reconnect) is a replay, not a 503: the
// wait for the consumer takes all but a share of the publish timeout
// (1/confirmShare), and the check of the first event (the stream's info,
// then the event read from it) is done within that share.
func TestPublishKeyRetriedWhileTheConsumerIsBehind(t *testing.T) {
	t.Parallel() // mostly the waits for the consumer
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	// A share of 2 s. With 1 s of publish timeout, the 200 ms ran out
	// under load (3 runs in 40, the check answered 503 "may have been
	// stored": the stream's info and a message read from it took up to
	// 1.1 s, 0.5 s at the 99th percentile, beside other packages' tests
	// under -race).
	opts.PublishTimeout = 10 * time.Second
	a, b := newInstance(t, opts), newInstance(t, opts)
	h := a.broker.cur.Load()
	h.live.close()
	p := stream.Publication{Topic: "t", Data: "x", Key: "k"}
	first, _, err := b.broker.Publish(p)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		m, replayed, err := a.broker.Publish(p)
		if err != nil || !replayed || m.ID != first.ID {
			t.Fatalf("retry on the instance behind: %v replayed %v, %v; want event %d replayed", m, replayed, err, first.ID)
		}
	}
}

// A key's retry on an instance whose consumer is behind, on a NATS slow to
// answer JetStream's API: it is answered within the publish timeout, as
// every publish is, not after the wait for the consumer and a whole
// publish timeout more for the check of the first event (its stream's
// info, then the event read from it).
func TestPublishKeyRetriedWhileTheConsumerIsBehindAnswersInTime(t *testing.T) {
	ns, p, opts := startProxied(t)
	opts.PublishTimeout = time.Second
	a := newInstance(t, opts)
	a.broker.cur.Load().live.close()
	pub := stream.Publication{Topic: "t", Data: "x", Key: "k"}
	if _, err := ns.operator(t).PublishMsg(t.Context(), &nats.Msg{Subject: a.broker.subject("t"), Data: []byte(pub.Data), Header: a.broker.header(pub)}); err != nil {
		t.Fatal(err)
	}
	p.slowAnswers(opts.PublishTimeout * 3 / 5)
	start := time.Now()
	m, replayed, err := a.broker.Publish(pub)
	took := time.Since(start)
	if err != nil && !errors.Is(err, stream.ErrMaybeStored) {
		t.Fatalf("retry: %v, want a replay or an error wrapping stream.ErrMaybeStored", err)
	}
	if limit := opts.PublishTimeout + opts.PublishTimeout/2; took > limit {
		t.Fatalf("retry answered (%v replayed %v, %v) after %v, past %v", m, replayed, err, took, limit)
	}
}

// A key's retry through an instance whose NATS user may not read a
// stream's message by its sequence ($JS.API.STREAM.MSG.GET, which the
// NATS server leaves unanswered), and whose memory does not hold the
// first event: the event cannot be compared, and the retry is answered as
// one, as when the stream no longer holds it. It was answered 503 "may
// have been stored; a retry with the same Idempotency-Key stores it
// once", and so was each retry after it.
func TestPublishKeyRetriedWithoutMessageGetPermission(t *testing.T) {
	ns := startNATSWith(t, &natsServer{denied: []string{"$JS.API.STREAM.MSG.GET.>"}})
	opts := testBrokerOptions(ns)
	opts.PublishTimeout = time.Second
	b := openBroker(t, opts)
	pub := stream.Publication{Topic: "t", Data: "x", Key: "k"}
	first, _, err := b.Publish(pub)
	if err != nil {
		t.Fatal(err)
	}
	opts.URLs = []string{ns.restrictedURL()}
	opts.cold = true // its memory starts after the first event
	a := openBroker(t, opts)
	m, replayed, err := a.Publish(pub)
	if err != nil || !replayed || m.ID != first.ID {
		t.Fatalf("retry: %v replayed %v, %v; want event %d replayed", m, replayed, err, first.ID)
	}
}

// A publish repeating a key, whose first event the local history no
// longer holds, JetStream answering once that the stream is not found
// when the instance asks whether the stream is still its own (as a
// server that has not yet taken the stream back may): the repeat is
// answered with the first event, replayed. It was answered 503.
func TestPublishKeyRepeatedThroughAStreamNotFoundOnce(t *testing.T) {
	ns := startNATS(t)
	p := startProxy(t, ns)
	opts := testBrokerOptions(ns)
	opts.HistorySize = 1
	opts.URLs = []string{p.url()}
	a := newInstance(t, opts)
	pub := stream.Publication{Topic: "t", Data: "once", Key: "k"}
	first, _, err := a.broker.Publish(pub)
	if err != nil {
		t.Fatal(err)
	}
	a.publish(t, "t", "next") // the local history holds it alone
	p.missStream(1)
	m, replayed, err := a.broker.Publish(pub)
	if err != nil || !replayed || m.ID != first.ID {
		t.Fatalf("repeat: %v replayed %v, %v; want event %d replayed", m, replayed, err, first.ID)
	}
}
