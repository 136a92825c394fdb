package natsbroker

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/ssehub/ssehub/internal/stream"
	"github.com/ssehub/ssehub/internal/testlog"
)

// The stream stores an event as its data, with a header only for an
// event type and an idempotency key: nothing that every consumer of every
// instance would parse for each event.
func TestPublishStoresOnlyTheEvent(t *testing.T) {
	eachPublishMode(t, func(t *testing.T, options func(*natsServer) Options) {
		ns := startNATS(t)
		a := newInstance(t, options(ns))
		plain, _, err := a.broker.Publish(stream.Publication{Topic: "a", Data: "one"})
		if err != nil {
			t.Fatal(err)
		}
		typed, _, err := a.broker.Publish(stream.Publication{Topic: "a", Type: "update", Data: "two"})
		if err != nil {
			t.Fatal(err)
		}
		keyed, _, err := a.broker.Publish(stream.Publication{Topic: "a", Data: "three", Key: "k-3"})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			msg    *stream.Message
			header nats.Header
		}{
			{plain, nil},
			{typed, nats.Header{eventTypeHeader: {"update"}}},
			{keyed, nats.Header{jetstream.MsgIDHeader: {"a k-3"}}},
		} {
			seq, _ := a.broker.cur.Load().ids.seq(tc.msg.ID)
			raw, err := a.broker.cur.Load().stream.GetMsg(t.Context(), seq)
			if err != nil {
				t.Fatal(err)
			}
			if len(raw.Header) != len(tc.header) || raw.Header.Get(eventTypeHeader) != tc.header.Get(eventTypeHeader) ||
				raw.Header.Get(jetstream.MsgIDHeader) != tc.header.Get(jetstream.MsgIDHeader) {
				t.Errorf("event %d stored with header %v, want %v", tc.msg.ID, raw.Header, tc.header)
			}
		}
	})
}

// A subject stored by a stream other than the broker's (its stream was
// deleted and another made with its subjects) is not acknowledged: the
// broker's consumer will never deliver it. A broker that noticed the
// deletion first refuses for that.
func TestPublishRefusesAnotherStream(t *testing.T) {
	eachPublishMode(t, func(t *testing.T, options func(*natsServer) Options) {
		ns := startNATS(t)
		opts := options(ns)
		a := newInstance(t, opts)
		a.publish(t, "a", "before")
		deleteStream(t, ns, DefaultStream)
		createStreamAgain(t, ns, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{DefaultSubjectPrefix + ".>"}})
		_, _, err := a.broker.Publish(stream.Publication{Topic: "a", Data: "after"})
		if !errors.Is(err, stream.ErrUnavailable) || !errors.Is(err, ErrStreamMismatch) && !errors.Is(err, ErrStreamDeleted) {
			t.Fatalf("publish into stream OTHER: %v, want ErrUnavailable and ErrStreamMismatch or ErrStreamDeleted", err)
		}
	})
}

// Each instance's consumer reads the whole stream unfiltered: a filter
// equal to the stream's subject costs the server a subject match per
// event and consumer, and selects nothing less.
func TestConsumerHasNoSubjectFilter(t *testing.T) {
	ns := startNATS(t)
	a := newInstance(t, testBrokerOptions(ns))
	a.publish(t, "a", "one")
	var n int
	for info := range a.broker.cur.Load().stream.ListConsumers(t.Context()).Info() {
		n++
		if info.Config.FilterSubject != "" || len(info.Config.FilterSubjects) > 0 {
			t.Errorf("consumer %s filters on %q %v", info.Name, info.Config.FilterSubject, info.Config.FilterSubjects)
		}
	}
	if n != 1 {
		t.Fatalf("%d consumers on the stream, want the instance's one", n)
	}
}

// A publish is answered once stored even when the instance's consumer does
// not deliver it within PublishTimeout (here it is held: its pull requests
// are swallowed, as a restarted server whose JetStream is still recovering
// loses them): 201 with the id of its sequence, not 503, as a retry would
// store it twice. The subscribers get it once the consumer, missing its
// heartbeats, is recreated: in about 2 s (nats.go's default took 10 s).
func TestPublishAnsweredWhileTheConsumerIsBehind(t *testing.T) {
	ns := startNATS(t)
	p := startProxy(t, ns)
	p.swallowRequests("$JS.API.CONSUMER.MSG.NEXT.")
	opts := testBrokerOptions(ns)
	opts.URLs = []string{p.url()}
	opts.PublishTimeout = 300 * time.Millisecond
	a := newInstance(t, opts)
	c := a.subscribe(t, "topic=t", "")
	status, id, _ := a.post(t, "t", `{"data": "stored"}`)
	if status != http.StatusCreated || id != strconv.FormatUint(a.broker.cur.Load().ids.id(1), 10) {
		t.Fatalf("publish with the consumer held: %d, id %q; want 201 with the id of sequence 1", status, id)
	}

	p.passRequests()
	start := time.Now()
	if got := c.next(t); got.ID != id || got.Data != "stored" {
		t.Fatalf("once the consumer resumed: %+v, want id %s", got, id)
	}
	if d := time.Since(start); d > 3*2*consumerHeartbeat {
		t.Errorf("the consumer resumed %v after its pulls passed again, want about %v", d, 2*consumerHeartbeat)
	}
}

// A NATS server whose max_payload is below what hub.max_event_bytes lets
// through: Open warns, naming both, and a publish too large for it is a
// 413 saying so, not a 503 that tells the client to try again; smaller
// ones are stored as ever.
func TestPublishTooLargeForNATS(t *testing.T) {
	eachPublishMode(t, func(t *testing.T, options func(*natsServer) Options) {
		testPublishTooLargeForNATS(t, options)
	})
}

func testPublishTooLargeForNATS(t *testing.T, options func(*natsServer) Options) {
	ns := &natsServer{dir: t.TempDir(), port: -1, maxPayload: 16 << 10}
	ns.start(t)
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	var logs testlog.Buffer
	opts := options(ns)
	opts.MaxEventBytes = 64 << 10
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	a := newInstance(t, opts)
	if !strings.Contains(logs.String(), "max_payload=16384 max_event_bytes=65536") {
		t.Errorf("no warning naming max_payload and max_event_bytes at start:\n%s", logs.String())
	}
	status, _, header := a.post(t, "t", fmt.Sprintf(`{"data": %q}`, strings.Repeat("x", 20<<10)))
	if status != http.StatusRequestEntityTooLarge || header.Get("Retry-After") != "" {
		t.Fatalf("a publish over max_payload: %d (Retry-After %q), want 413", status, header.Get("Retry-After"))
	}
	if id := a.publish(t, "t", strings.Repeat("x", 10<<10)); id == "" {
		t.Fatal("a publish under max_payload was not stored")
	}
}

// hub.history_max_bytes may be as low as hub.max_event_bytes, and the
// stream stores an event with its subject and headers, its data up to 3
// times its body's bytes (U+FFFD): one that takes more than the stream's
// MaxBytes was acknowledged, then let go of at once with every event
// before it, and reached no subscriber. The stream holds the largest
// event, as the local history keeps its newest whatever its size.
func TestStreamHoldsTheLargestEvent(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.MaxEventBytes, opts.HistoryMaxBytes = 4096, 4096
	a, b := newInstance(t, opts), newInstance(t, opts)
	sub := b.subscribe(t, "topic=big", "")
	data := strings.Repeat("x", opts.MaxEventBytes-len(`{"data": ""}`))
	id := a.publish(t, "big", data)
	ev := sub.nextWithin(t, 5*time.Second, "the event acknowledged with id "+id+" reached no subscriber")
	if ev.ID != id || ev.Data != data {
		t.Fatalf("got event %s with %d bytes, want %s with %d", ev.ID, len(ev.Data), id, len(data))
	}
}

// A stream made beforehand with a max_msg_size refuses larger events for
// good: the publish answers 413, as one over the server's max_payload
// does, not a 503 whose Retry-After has the client send it again and
// again.
func TestPublishTooLargeForTheStream(t *testing.T) {
	eachPublishMode(t, func(t *testing.T, options func(*natsServer) Options) {
		ns := startNATS(t)
		opts := options(ns)
		opts.setDefaults()
		cfg := streamConfig(&opts)
		cfg.MaxMsgSize = 1024
		if _, err := ns.operator(t).CreateStream(t.Context(), cfg); err != nil {
			t.Fatal(err)
		}
		a := newInstance(t, opts)
		status, _, header := a.post(t, "t", fmt.Sprintf(`{"data": %q}`, strings.Repeat("x", 2048)))
		if status != http.StatusRequestEntityTooLarge || header.Get("Retry-After") != "" {
			t.Fatalf("a publish over the stream's max_msg_size: %d (Retry-After %q), want 413", status, header.Get("Retry-After"))
		}
		if id := a.publish(t, "t", strings.Repeat("x", 512)); id == "" {
			t.Fatal("a publish under max_msg_size was not stored")
		}
	})
}

// An event type may start or end with blanks (a space, a tab), which NATS
// drops from a header's value: the stream gave back "update" for
// " update" and "update ", so the publish, its event in the local history another than
// the one it had sent, answered 503 (and its retry with its key 503 too)
// though stored, each retry storing it again, and subscribers got it
// with another type than the memory broker gives.
func TestEventTypeKeepsItsBlanks(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	a := newInstance(t, opts)
	onA := a.subscribe(t, "topic=t", "")
	before := a.publish(t, "t", "before")
	onA.next(t)
	for i, typ := range []string{" update", "\tupdate", "update ", "update\t", "  "} {
		body, key := fmt.Sprintf(`{"event": %q, "data": "x"}`, typ), "k"+strconv.Itoa(i)
		status, id, _ := a.post(t, "t", body, "Idempotency-Key", key)
		if status != http.StatusCreated {
			t.Fatalf("publish with event type %q: %d, want 201", typ, status)
		}
		if ev := onA.next(t); ev.ID != id || ev.Type != typ {
			t.Fatalf("event type %q delivered as %q (id %s, want %s)", typ, ev.Type, ev.ID, id)
		}
		if status, again, replayed := a.postKeyed(t, "t", body, key); status != http.StatusCreated || again != id || replayed != "true" {
			t.Fatalf("its retry with its key: %d id %s replayed %q, want 201 id %s replayed", status, again, replayed, id)
		}
	}
	// Read from the stream, on an instance whose memory starts after it.
	cold := opts
	cold.cold = true
	c := newInstance(t, cold).subscribe(t, "topic=t", before)
	for _, typ := range []string{" update", "\tupdate", "update ", "update\t", "  "} {
		if ev := c.next(t); ev.Type != typ {
			t.Fatalf("event type %q replayed from the stream as %q", typ, ev.Type)
		}
	}
}

// A publish that JetStream acknowledged is answered with its event even
// when the connection drops before the local consumer delivers it: it
// is stored, under the id the acknowledgement gives, and a 503 would
// have a client's plain retry store it twice.
func TestPublishAcknowledgedAsNATSGoesAwayIsAnswered(t *testing.T) {
	t.Parallel() // waits for the publish timeout, not on the CPU
	eachPublishMode(t, func(t *testing.T, options func(*natsServer) Options) {
		ns := startNATS(t)
		p := startProxy(t, ns)
		opts := options(ns)
		opts.URLs = []string{p.url()}
		b := openBroker(t, opts)
		p.loseDeliveries("acknowledged")
		type answer struct {
			msg *stream.Message
			err error
		}
		answered := make(chan answer, 1)
		go func() {
			msg, _, err := b.Publish(stream.Publication{Topic: "t", Data: "acknowledged"})
			answered <- answer{msg, err}
		}()
		waitFor(t, "the acknowledgement", func() bool { return b.published.Load() == 1 })
		// Away until the publish's wait for its delivery has ended.
		p.mu.Lock()
		p.downUntil = time.Now().Add(2 * opts.PublishTimeout)
		p.mu.Unlock()
		p.cut()
		a := <-answered
		if a.err != nil {
			t.Fatalf("publish of an event stored answered %v", a.err)
		}
		p.passDeliveries()
		waitFor(t, "NATS back", func() bool { return settled(b) })
		if n := storedEvents(t, b); n != 1 {
			t.Fatalf("the stream holds %d events, want 1", n)
		}
		seq, _ := b.cur.Load().ids.seq(a.msg.ID)
		if stored, err := b.cur.Load().stream.GetMsg(t.Context(), seq); err != nil || string(stored.Data) != "acknowledged" {
			t.Fatalf("the event under id %d: %v, %v", a.msg.ID, stored, err)
		}
	})
}

// A publish sent to NATS that no acknowledgement came back for may have
// been stored: its 503 says so, where "unreachable, try again" had a
// client's plain retry store it twice. One that was never sent (NATS
// away) is answered unreachable, as before.
func TestPublishUnansweredSays503MayHaveStoredIt(t *testing.T) {
	t.Parallel() // waits for the publish timeout, not on the CPU
	eachPublishMode(t, func(t *testing.T, options func(*natsServer) Options) {
		ns := startNATS(t)
		p := startProxy(t, ns)
		opts := options(ns)
		opts.URLs = []string{p.url()}
		in := newInstance(t, opts)
		p.loseAcknowledgements()
		status, answer, _ := in.postAnswer(t, "t", `{"data": "unanswered"}`)
		want := `{"error":"the event store did not answer in time: the event may have been stored; a retry with the same Idempotency-Key stores it once"}`
		if status != http.StatusServiceUnavailable || answer != want {
			t.Errorf("publish unanswered: %d %s, want 503 %s", status, answer, want)
		}
		if n := storedEvents(t, in.broker); n != 1 {
			t.Errorf("the stream holds %d events, want 1", n)
		}
		p.passAcknowledgements()
		p.mu.Lock()
		p.downUntil = time.Now().Add(time.Hour)
		p.mu.Unlock()
		p.cut()
		waitFor(t, "NATS away", func() bool { return !in.broker.Connected() })
		status, answer, _ = in.postAnswer(t, "t", `{"data": "not sent"}`)
		want = `{"error":"the event store is unreachable: try again in a moment"}`
		if status != http.StatusServiceUnavailable || answer != want {
			t.Errorf("publish while NATS is away: %d %s, want 503 %s", status, answer, want)
		}
	})
}

// A publish in flight when the instance closes may be stored (NATS was
// sent it): its 503 says so, rather than "shutting down, try again",
// which had a client's plain retry store it twice.
func TestPublishInFlightAtCloseSaysItMayHaveBeenStored(t *testing.T) {
	t.Parallel() // waits for the publish timeout, not on the CPU
	eachPublishMode(t, func(t *testing.T, options func(*natsServer) Options) {
		ns := startNATS(t)
		p := startProxy(t, ns)
		opts := options(ns)
		opts.URLs = []string{p.url()}
		b, err := Open(t.Context(), opts)
		if err != nil {
			t.Fatal(err)
		}
		p.slowAcknowledgements(opts.PublishTimeout)
		answered := make(chan error, 1)
		go func() {
			_, _, err := b.Publish(stream.Publication{Topic: "t", Data: "in flight"})
			answered <- err
		}()
		st, err := ns.operator(t).Stream(t.Context(), DefaultStream)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the event stored", func() bool {
			info, err := st.Info(t.Context())
			return err == nil && info.State.Msgs == 1
		})
		b.Close()
		err = <-answered
		if err != nil && !errors.Is(err, stream.ErrMaybeStored) {
			t.Fatalf("publish of an event stored answered %v, want one wrapping stream.ErrMaybeStored", err)
		}
	})
}

// While NATS is unreachable a publish answers 503 at once, also while the
// instance tries a server that takes its connection and says nothing (a
// hung process, whose system still accepts connections): nats.go holds
// the connection's lock for each such attempt, up to its connect timeout
// (2 s), and the publish's look at the connection's state waited for it,
// as /readyz did.
func TestPublishWhileReconnectingToAHungServerAnswersAtOnce(t *testing.T) {
	_, p, opts := startProxied(t)
	opts.PingInterval = 100 * time.Millisecond
	b := openBroker(t, opts)
	p.hang()
	waitFor(t, "NATS left", func() bool { return !b.Connected() })
	n := p.connections()
	waitFor(t, "an attempt to connect again", func() bool { return p.connections() > n })
	start := time.Now()
	_, _, err := b.Publish(stream.Publication{Topic: "t", Data: "x"})
	took := time.Since(start)
	if !errors.Is(err, stream.ErrUnavailable) {
		t.Fatalf("publish while NATS is away: %v, want an error wrapping stream.ErrUnavailable", err)
	}
	if took > 500*time.Millisecond {
		t.Fatalf("publish while NATS is away answered after %v", took)
	}
	start = time.Now()
	if err := b.Ready(); !errors.Is(err, stream.ErrUnavailable) || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("Ready while NATS is away: %v after %v", err, time.Since(start))
	}
}
