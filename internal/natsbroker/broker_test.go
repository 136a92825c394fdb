package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/ssehub/ssehub/internal/stream"
	"github.com/ssehub/ssehub/internal/testlog"
)

// An event published on one instance reaches the subscribers of both.
func TestPublishReachesSubscribersOfEveryInstance(t *testing.T) {
	eachPublishMode(t, func(t *testing.T, options func(*natsServer) Options) {
		ns := startNATS(t)
		a, b := newInstance(t, options(ns)), newInstance(t, options(ns))
		onA, onB := a.subscribe(t, "topic=news.*", ""), b.subscribe(t, "topic=news.*", "")
		status, id, _ := a.post(t, "news.eu", `{"event": "update", "data": "line 1\nline 2"}`)
		if status != http.StatusCreated {
			t.Fatalf("publish: %d", status)
		}
		want := stream.Event{ID: id, Type: "update", Data: "line 1\nline 2"}
		for name, c := range map[string]*client{"A": onA, "B": onB} {
			if got := c.next(t); got != want {
				t.Errorf("on %s: %+v, want %+v", name, got, want)
			}
		}
		if m := metricsOf(t, a); !strings.Contains(m, "\nssehub_nats_connected 1\n") || !strings.Contains(m, "\nssehub_nats_consumer_lag ") {
			t.Errorf("metrics lack the NATS gauges:\n%s", m)
		}
		id2 := b.publish(t, "news.us", "from B")
		for name, c := range map[string]*client{"A": onA, "B": onB} {
			if got := c.next(t); got.ID != id2 || got.Data != "from B" {
				t.Errorf("on %s: %+v, want id %s", name, got, id2)
			}
		}
	})
}

// Two instances publishing at once: each one's ids increase in its
// publish order, and every subscriber sees all of them in id order.
func TestIDsIncreaseAcrossInstancesPublishingAtOnce(t *testing.T) {
	eachPublishMode(t, func(t *testing.T, options func(*natsServer) Options) {
		ns := startNATS(t)
		a, b := newInstance(t, options(ns)), newInstance(t, options(ns))
		subs := []*client{a.subscribe(t, "topic=>", ""), b.subscribe(t, "topic=>", "")}
		const each = 20
		ids := make([][]uint64, 2)
		var wg sync.WaitGroup
		for i, in := range []*instance{a, b} {
			wg.Go(func() {
				for n := range each {
					status, id, _ := in.post(t, fmt.Sprintf("t%d", i), fmt.Sprintf(`{"data": "%d"}`, n))
					v, err := strconv.ParseUint(id, 10, 64)
					if status != http.StatusCreated || err != nil {
						t.Errorf("publish on %d: %d %q", i, status, id)
						return
					}
					ids[i] = append(ids[i], v)
				}
			})
		}
		wg.Wait()
		all := append(slices.Clone(ids[0]), ids[1]...)
		for i := range ids {
			if !slices.IsSorted(ids[i]) {
				t.Errorf("instance %d's ids out of publish order: %v", i, ids[i])
			}
		}
		slices.Sort(all)
		for k, c := range subs {
			for _, want := range all {
				if got := c.next(t); got.ID != strconv.FormatUint(want, 10) {
					t.Fatalf("subscriber %d: id %s, want %d", k, got.ID, want)
				}
			}
		}
	})
}

// A client on A loses A mid-stream and resumes on B with its last id: it
// gets exactly what it missed, then live events.
func TestResumeOnAnotherInstance(t *testing.T) {
	ns := startNATS(t)
	a, b := newInstance(t, testBrokerOptions(ns)), newInstance(t, testBrokerOptions(ns))
	c := a.subscribe(t, "topic=orders", "")
	a.publish(t, "orders", "1")
	last := c.next(t).ID
	a.close()
	c.ended(t)
	var missed []string
	for i := range 3 {
		missed = append(missed, b.publish(t, "orders", fmt.Sprint("missed ", i)))
		b.publish(t, "other", "not subscribed")
	}
	c = b.subscribe(t, "topic=orders", last)
	for _, id := range missed {
		if got := c.next(t); got.ID != id {
			t.Fatalf("replayed %+v, want id %s", got, id)
		}
	}
	live := b.publish(t, "orders", "live")
	if got := c.next(t); got.ID != live || got.Data != "live" {
		t.Fatalf("live %+v, want id %s", got, live)
	}
}

// A broker whose local history does not hold the id (one started cold,
// as before it loaded the stream's tail) resumes from the stream: an id
// older than its local history is read from JetStream, filtered on
// the subscription's patterns, then live events follow without a
// duplicate.
func TestFreshBrokerResumesFromTheStream(t *testing.T) {
	ns := startNATS(t)
	a := newInstance(t, testBrokerOptions(ns))
	var ids []string
	for i := range 6 {
		ids = append(ids, a.publish(t, []string{"x.a", "x.b", "y"}[i%3], strconv.Itoa(i)))
	}
	a.close()

	opts := testBrokerOptions(ns)
	opts.cold = true
	fresh := newInstance(t, opts)
	for _, tc := range []struct {
		query string
		want  []int // indexes into ids, after ids[0]
	}{
		{"topic=x.a", []int{3}},
		{"topic=x.*&topic=x.b", []int{1, 3, 4}}, // overlapping patterns
		{"topic=x.b&topic=y", []int{1, 2, 4, 5}},
		{"topic=z", nil}, // nothing matches: live only, no reset
	} {
		c := fresh.subscribe(t, tc.query, ids[0])
		for _, i := range tc.want {
			if got := c.next(t); got.ID != ids[i] || got.Data != strconv.Itoa(i) {
				t.Fatalf("%s: %+v, want id %s", tc.query, got, ids[i])
			}
		}
	}
	if r := fresh.broker.Stats().Replayed; r != 8 {
		t.Errorf("Stats().Replayed = %d, want 8", r)
	}
	// Subscribed while the stream is read, live events follow exactly once.
	c := fresh.subscribe(t, "topic=>", ids[3])
	live := fresh.publish(t, "y", "live")
	for _, want := range []string{ids[4], ids[5], live} {
		if got := c.next(t); got.ID != want {
			t.Fatalf("got %+v, want id %s", got, want)
		}
	}
}

// Ids the stream cannot resume from start with a reset: another history
// (the stream deleted and made again), older than the retained events,
// newer than the newest, not a number.
func TestResetWhenTheStreamCannotResume(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.HistorySize = 3
	a := newInstance(t, opts)
	old := a.publish(t, "a", "old history")
	a.close()
	// Made again by the operator, who retries nats-server's 10049 just
	// after the deletion (createStreamAgain); an instance's Open that
	// created it failed so (1 run in 18 of the package).
	recreateStream(t, ns, opts)

	b := newInstance(t, opts)
	first := b.publish(t, "a", "0")
	for i := range 4 {
		b.publish(t, "a", strconv.Itoa(i+1))
	}
	firstID, _ := strconv.ParseUint(first, 10, 64)
	opts.cold = true
	for _, last := range []string{old, first, strconv.FormatUint(firstID+100, 10), "garbage"} {
		c := newInstance(t, opts).subscribe(t, "topic=a", last) // a fresh one: no local history
		if got := c.next(t); got.Type != "reset" || got.Data == "" {
			t.Fatalf("from %s: %+v, want a reset", last, got)
		}
	}
}

// The NATS server restarts mid-stream: publishing answers 503 while it is
// down, and the subscriber, still connected, gets every event
// acknowledged once it is back.
func TestNATSRestartMidStream(t *testing.T) {
	eachPublishMode(t, func(t *testing.T, options func(*natsServer) Options) {
		ns := startNATS(t)
		a := newInstance(t, options(ns))
		c := a.subscribe(t, "topic=t", "")
		if id := a.publish(t, "t", "before"); c.next(t).ID != id {
			t.Fatal("first event not delivered")
		}
		ns.stop()
		waitFor(t, "the broker to see NATS gone", func() bool { return a.broker.Ready() != nil })
		status, _, header := a.post(t, "t", `{"data": "while down"}`)
		if status != http.StatusServiceUnavailable || header.Get("Retry-After") == "" {
			t.Fatalf("publish while down: %d, Retry-After %q", status, header.Get("Retry-After"))
		}
		if resp := a.readyz(t); resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("readyz while down: %v", resp.Status)
		}
		// The publish was refused; /readyz's 503 is a probe's answer.
		if resp, err := a.Client().Get(a.URL + "/metrics"); err != nil {
			t.Fatal(err)
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := `ssehub_requests_refused_total{reason="store_unreachable"} 1` + "\n"; !strings.Contains(string(b), want) {
				t.Errorf("/metrics lacks %q: a refused publish and nothing else", want)
			}
		}

		ns.start(t)
		waitFor(t, "the broker to reconnect", func() bool { return settled(a.broker) })
		var want []string
		for i := range 5 {
			want = append(want, a.publish(t, "t", strconv.Itoa(i)))
		}
		for _, id := range want {
			if got := c.next(t); got.ID != id {
				t.Fatalf("after the restart: %+v, want id %s", got, id)
			}
		}
	})
}

// A publish that passed Ready just before the connection was lost (the
// batched publisher's queue holds many such under load) is sent while
// nats.go reconnects: it answers 503 (its wait for the acknowledgement
// ends), and must not be stored after that. nats.go kept it in its
// reconnect buffer and sent it once NATS was back, however long after:
// stored, out of order, after the client had been told it was not (and
// had retried it, past the 2-minute duplicate window of its key after a
// long outage).
func TestPublishSentWhileNATSIsAwayIsNotStoredLater(t *testing.T) {
	eachPublishMode(t, func(t *testing.T, options func(*natsServer) Options) {
		ns := startNATS(t)
		a := newInstance(t, options(ns))
		a.publish(t, "t", "before")
		ns.stop()
		waitFor(t, "the broker to see NATS gone", func() bool { return a.broker.Ready() != nil })
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		_, sent := a.broker.pub.publish(ctx, &nats.Msg{Subject: a.broker.subject("t"), Data: []byte("sent while away")})
		cancel()
		if sent == nil {
			t.Fatal("a publish sent while NATS was away was acknowledged")
		}
		ns.start(t)
		waitFor(t, "the broker to reconnect", func() bool { return settled(a.broker) })
		a.publish(t, "t", "after")
		info, err := a.broker.cur.Load().stream.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs != 2 {
			t.Fatalf("the stream holds %d events, want 2: the publish answered %v was stored once NATS was back", info.State.Msgs, sent)
		}
	})
}

// A stream that exists with other subjects or storage stops Open.
func TestOpenRefusesAMismatchedStream(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	b, err := Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	for _, change := range []func(*Options){
		func(o *Options) { o.SubjectPrefix = "other" },
		func(o *Options) { o.Storage = "memory" },
	} {
		o := opts
		change(&o)
		if b, err := Open(t.Context(), o); !errors.Is(err, ErrStreamMismatch) {
			if b != nil {
				b.Close()
			}
			t.Fatalf("Open with %+v: %v, want ErrStreamMismatch", o, err)
		}
	}
}

// An instance that finds the stream missing, and asks for it to be
// created once another instance has (they start together; or JetStream
// said "not found" for a stream it had not taken back yet, as a server
// that restarts may), with limits of its own: JetStream refuses the
// creation, the name in use with another configuration. The instance
// takes the stream as one found, and sets its limits, as every instance
// that starts does; it failed to start.
func TestOpenTakesAStreamCreatedMeanwhile(t *testing.T) {
	ns := startNATS(t)
	openBroker(t, testBrokerOptions(ns))
	p := startProxy(t, ns)
	opts := testBrokerOptions(ns)
	opts.URLs = []string{p.url()}
	opts.HistorySize = 200
	p.missStream(1)
	b := openBroker(t, opts)
	info, err := b.cur.Load().stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxMsgs != 200 {
		t.Fatalf("the stream keeps %d events, want the instance's 200", info.Config.MaxMsgs)
	}
}

// A NATS that cannot be reached at start (nats.url left at its default
// in a container, a wrong port) stops start-up with an error naming the
// servers it tried, not nats.go's "no servers available for connection"
// alone; never their credentials.
func TestOpenNamesTheServersItCannotReach(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	b, err := Open(t.Context(), Options{URLs: []string{"nats://user:secret@" + addr}, Logger: slog.New(slog.DiscardHandler)})
	if b != nil {
		b.Close()
	}
	if err == nil || !strings.Contains(err.Error(), addr) || strings.Contains(err.Error(), "secret") {
		t.Fatalf("Open on %s, where no server listens: %v, want an error naming it, without its password", addr, err)
	}
}

// A NATS user that may not publish the hub's subjects is never answered:
// its publishes waited for their timeout and answered 503 with "context
// deadline exceeded", the instance ready all along. The error, which the
// refusals' log line gives, names the server's permissions violation.
func TestPublishNamesAPermissionsViolation(t *testing.T) {
	eachPublishMode(t, func(t *testing.T, options func(*natsServer) Options) {
		ns := startNATSWith(t, &natsServer{denied: []string{DefaultSubjectPrefix + ".>"}})
		opts := options(ns)
		opts.URLs = []string{ns.restrictedURL()}
		opts.PublishTimeout = 500 * time.Millisecond
		b, err := Open(t.Context(), opts)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		_, _, err = b.Publish(stream.Publication{Topic: "t", Data: "denied"})
		if !errors.Is(err, stream.ErrUnavailable) || !strings.Contains(err.Error(), "Permissions Violation") {
			t.Fatalf("publish by a user that may not: %v, want ErrUnavailable naming the permissions violation", err)
		}
		if errors.Is(err, stream.ErrMaybeStored) {
			t.Fatalf("publish denied: %v, says it may have been stored", err)
		}
	})
}

// The server's asynchronous errors, a permissions violation here, are in
// the service's log: nats.go wrote them to stderr as plain text, outside
// it and its format.
func TestNATSErrorsAreLogged(t *testing.T) {
	ns := startNATSWith(t, &natsServer{denied: []string{DefaultSubjectPrefix + ".>"}})
	opts := testBrokerOptions(ns)
	opts.URLs = []string{ns.restrictedURL()}
	opts.PublishTimeout = 500 * time.Millisecond
	var logs testlog.Buffer
	opts.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	b, err := Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, _, err := b.Publish(stream.Publication{Topic: "t", Data: "denied"}); err == nil {
		t.Fatal("a publish by a user that may not was stored")
	}
	waitFor(t, "the permissions violation in the log", func() bool {
		return strings.Contains(logs.String(), `"msg":"nats error","err":"nats: permissions violation`)
	})
}

// So with a user that may not create the stream: start-up failed after 5
// s with "context deadline exceeded" alone.
func TestOpenNamesAPermissionsViolation(t *testing.T) {
	ns := startNATSWith(t, &natsServer{denied: []string{"$JS.API.STREAM.CREATE.>"}})
	opts := testBrokerOptions(ns)
	opts.URLs = []string{ns.restrictedURL()}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	b, err := Open(ctx, opts)
	if b != nil {
		b.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "Permissions Violation") {
		t.Fatalf("Open by a user that may not create the stream: %v, want an error naming the permissions violation", err)
	}
}

// A NATS server run without JetStream (no -js, no jetstream block, or an
// account without it) stops start-up with a message that says so, not
// nats.go's "no responders available for request".
func TestOpenWithoutJetStreamSaysSo(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(waitLimit) {
		t.Fatal("nats server not ready")
	}
	opts := testBrokerOptions(&natsServer{Server: s})
	b, err := Open(t.Context(), opts)
	if b != nil {
		b.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "JetStream") {
		t.Fatalf("Open on a NATS server without JetStream: %v, want an error naming JetStream", err)
	}
}

// A stream made beforehand (by an operator, with the nats CLI) whose
// subjects and storage are the hub's but which does not keep its events
// up to its limits, or does not acknowledge them, stops start-up with a
// message naming the setting. Opened on one that discards new events
// when full, every publish past its limit answered 503 for good; on a
// work-queue stream, start-up failed with an error about ack policies.
func TestOpenRefusesAStreamThatDoesNotKeepTheEvents(t *testing.T) {
	for _, tc := range []struct {
		setting string
		change  func(*jetstream.StreamConfig)
	}{
		{"DiscardNew", func(c *jetstream.StreamConfig) { c.Discard = jetstream.DiscardNew }},
		{"WorkQueue", func(c *jetstream.StreamConfig) { c.Retention = jetstream.WorkQueuePolicy }},
		{"Interest", func(c *jetstream.StreamConfig) { c.Retention = jetstream.InterestPolicy }},
		{"no_ack", func(c *jetstream.StreamConfig) { c.NoAck = true }},
		// Deleted from within, a subject's older events were ids with no
		// event to every resume: silent gaps.
		{"max_msgs_per_subject", func(c *jetstream.StreamConfig) { c.MaxMsgsPerSubject = 1 }},
	} {
		t.Run(tc.setting, func(t *testing.T) {
			ns := startNATS(t)
			opts := testBrokerOptions(ns)
			opts.setDefaults()
			cfg := streamConfig(&opts)
			tc.change(&cfg)
			if _, err := ns.operator(t).CreateStream(t.Context(), cfg); err != nil {
				t.Fatal(err)
			}
			b, err := Open(t.Context(), opts)
			if b != nil {
				b.Close()
			}
			if !errors.Is(err, ErrStreamMismatch) || !strings.Contains(err.Error(), tc.setting) {
				t.Fatalf("Open on a stream with %s: %v, want ErrStreamMismatch naming it", tc.setting, err)
			}
		})
	}
}

func metricsOf(t *testing.T, in *instance) string {
	t.Helper()
	resp, err := in.Client().Get(in.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func deleteStream(t *testing.T, ns *natsServer, name string) {
	t.Helper()
	js := ns.operator(t)
	if err := js.DeleteStream(context.Background(), name); err != nil {
		t.Fatal(err)
	}
}

// Take drops the live events a replay from the stream holds already,
// exactly by id, and nothing after them.
func TestTakeDropsWhatTheReplayHolds(t *testing.T) {
	mem := stream.NewMemory(stream.MemoryOptions{FirstID: 10})
	defer mem.Close()
	live, err := mem.Subscribe([]string{"a"}, "")
	if err != nil {
		t.Fatal(err)
	}
	s := &subscription{Subscription: live, client: t.Context(), after: 12}
	for id := uint64(11); id <= 13; id++ {
		if _, err := mem.Deliver(id, "a", "", ""); err != nil {
			t.Fatal(err)
		}
	}
	got, open := s.Take(nil, 0)
	if len(got) != 1 || got[0].ID != 13 || !open || s.after != 0 {
		t.Fatalf("Take = %v, %v (after %d), want only 13", got, open, s.after)
	}
	_, _ = mem.Deliver(14, "a", "", "")
	if got, _ := s.Take(got[:0], 0); len(got) != 1 || got[0].ID != 14 {
		t.Fatalf("then Take = %v, want 14", got)
	}
}

// TestDisconnectWarningOnlyWhenNATSGoes: losing the NATS server is
// warned of; the broker's own Close, which closes the connection too, is
// not (it was, once per clean shutdown, with err=<nil>).
func TestDisconnectWarningOnlyWhenNATSGoes(t *testing.T) {
	const warning = "nats disconnected"
	ns := startNATS(t)
	var logs testlog.Buffer
	opts := testBrokerOptions(ns)
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	b, err := Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	b.nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	b.Close()
	<-closed // nats.go runs its handlers in order: the disconnect's has run
	if n := logs.Count(warning); n != 0 {
		t.Errorf("%d disconnect warnings after Close, want none:\n%s", n, logs.String())
	}

	b, err = Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.stop()
	waitFor(t, "the disconnect warning", func() bool { return logs.Count(warning) == 1 })
	// Close during the outage does not wait for the consumer's pending
	// request to time out (10 s): it ends with the connection.
	start := time.Now()
	b.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v with NATS away", d)
	}
}

// Close while the consumer waits for an answer NATS does not give (a
// server just gone, or too busy to answer, with the connection not yet
// known to be lost): Close ends the connection first, which ends the
// request. (nats.go's ordered consumer, used before live, held its lock
// across that request for 10 s, and stopping it waited for the lock.)
func TestCloseWhileTheConsumerWaitsForNATS(t *testing.T) {
	ns, p, opts := startProxied(t)
	b, err := Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	swallowed := p.swallowRequests("$JS.API.CONSUMER.CREATE.")
	deleteConsumers(t, ns)
	select {
	case <-swallowed: // the consumer asked to be created again, unanswered
	case <-time.After(waitLimit):
		t.Fatal("the consumer did not ask to be created again")
	}
	start := time.Now()
	b.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v while the consumer waited for NATS", d)
	}
}

// A NATS server that hangs (the connection open, nothing answered) is
// left after two unanswered pings: the instance is no longer ready, and
// publishes answer at once instead of each waiting for its timeout.
func TestHungServerIsLeftAfterTwoPings(t *testing.T) {
	_, p, opts := startProxied(t)
	opts.PingInterval = 100 * time.Millisecond
	b, err := Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p.hang()
	deadline := time.Now().Add(waitLimit)
	for b.Ready() == nil {
		if time.Now().After(deadline) {
			t.Fatalf("still ready %v after the server hung", waitLimit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := b.Ready(); !errors.Is(err, stream.ErrUnavailable) {
		t.Fatalf("Ready = %v, want ErrUnavailable", err)
	}
}

// The ping interval defaults to DefaultPingInterval, not nats.go's 2
// minutes.
func TestPingIntervalDefault(t *testing.T) {
	var o Options
	o.setDefaults()
	if o.PingInterval != DefaultPingInterval {
		t.Errorf("PingInterval %v, want %v", o.PingInterval, DefaultPingInterval)
	}
}

// watch's connections to other servers carry the main connection's
// credentials: nats.go's list of servers has no user, password or token,
// so they are taken from the URLs given (or the credentials file).
func TestAuthOptionsTakeTheURLsCredentials(t *testing.T) {
	for _, tc := range []struct {
		urls                  []string
		user, password, token string
	}{
		{[]string{"nats://a:1", "nats://u:p@b:2"}, "u", "p", ""},
		{[]string{"tls://secret@a:1"}, "", "", "secret"},
		{[]string{"nats://a:1"}, "", "", ""},
	} {
		o := nats.GetDefaultOptions()
		for _, opt := range authOptions(&Options{URLs: tc.urls}) {
			if err := opt(&o); err != nil {
				t.Fatal(err)
			}
		}
		if o.User != tc.user || o.Password != tc.password || o.Token != tc.token {
			t.Errorf("%v: user %q password %q token %q, want %q %q %q", tc.urls, o.User, o.Password, o.Token, tc.user, tc.password, tc.token)
		}
	}
}

// A publish unanswered for another cause (a server too busy to answer)
// after the NATS user was allowed the subject again: its error names no
// permissions violation. nats.go keeps the last one it was told of, and
// the refusals' log line named the violation of minutes before.
func TestPublishNamesNoStalePermissionsViolation(t *testing.T) {
	ns := startNATSWith(t, &natsServer{denied: []string{DefaultSubjectPrefix + ".t"}})
	p := startProxy(t, ns)
	opts := testBrokerOptions(ns)
	opts.URLs = []string{"nats://restricted:restricted@" + p.ln.Addr().String()}
	opts.PublishTimeout = 500 * time.Millisecond
	b := openBroker(t, opts)
	_, _, err := b.Publish(stream.Publication{Topic: "t", Data: "denied"})
	if !strings.Contains(fmt.Sprint(err), "Permissions Violation") {
		t.Fatalf("publish while denied: %v, want an error naming the permissions violation", err)
	}
	ns.deny(t, DefaultSubjectPrefix+".nothing")
	p.swallowRequests(DefaultSubjectPrefix + ".")
	_, _, err = b.Publish(stream.Publication{Topic: "t", Data: "unanswered"})
	if err == nil || strings.Contains(err.Error(), "Permissions Violation") {
		t.Fatalf("publish allowed, unanswered: %v, want an error naming no permissions violation", err)
	}
}

// Two publishes denied at once, to two subjects: each error names its
// violation. nats.go keeps the last one it was told of, and the other
// publish's error named none.
func TestConcurrentPublishesNameTheirPermissionsViolations(t *testing.T) {
	ns := startNATSWith(t, &natsServer{denied: []string{DefaultSubjectPrefix + ".a", DefaultSubjectPrefix + ".b"}})
	opts := testBrokerOptions(ns)
	opts.URLs = []string{ns.restrictedURL()}
	opts.PublishTimeout = 500 * time.Millisecond
	b := openBroker(t, opts)
	errs := make(chan error, 2)
	for _, topic := range []string{"a", "b"} {
		go func() {
			_, _, err := b.Publish(stream.Publication{Topic: topic, Data: "denied"})
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; !strings.Contains(fmt.Sprint(err), "Permissions Violation") {
			t.Errorf("publish while denied: %v, want an error naming the permissions violation", err)
		}
	}
}

// An instance that closes deletes its consumer: the NATS server kept it
// for its inactive threshold, 5 minutes, so that each restart or deploy
// left one more in the stream's consumers (which the server caps,
// resumes' pages included) for operators to find.
func TestCloseDeletesTheConsumer(t *testing.T) {
	ns := startNATS(t)
	openBroker(t, testBrokerOptions(ns))
	for range 3 {
		b, err := Open(t.Context(), testBrokerOptions(ns))
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
	}
	if n := consumers(t, ns); n != 1 {
		t.Fatalf("%d consumers after 3 instances closed, want 1, the open instance's", n)
	}
}

// Take in pieces drops the live events the replay holds piece by piece:
// a piece of them only is handed out empty, the subscription open, and
// the first later one ends the dropping, with none lost or repeated.
func TestTakeInPiecesDropsWhatTheReplayHolds(t *testing.T) {
	mem := stream.NewMemory(stream.MemoryOptions{FirstID: 10})
	defer mem.Close()
	live, err := mem.Subscribe([]string{"a"}, "")
	if err != nil {
		t.Fatal(err)
	}
	s := &subscription{Subscription: live, client: t.Context(), after: 13}
	for id := uint64(11); id <= 15; id++ {
		if _, err := mem.Deliver(id, "a", "", ""); err != nil {
			t.Fatal(err)
		}
	}
	var ids []uint64
	for range 5 {
		got, open := s.Take(nil, 1) // one event a piece
		if !open {
			t.Fatal("ended")
		}
		for _, m := range got {
			ids = append(ids, m.ID)
		}
	}
	if !slices.Equal(ids, []uint64{14, 15}) || s.after != 0 {
		t.Fatalf("took %v (after %d), want [14 15]", ids, s.after)
	}
}
