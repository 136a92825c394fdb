package natsbroker

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nats-io/nats.go"
	"github.com/ssehub/ssehub/internal/stream"
	"github.com/ssehub/ssehub/internal/testlog"
)

// consumerCreates counts the page consumers (resume.go) created on the
// default stream from now on, as NATS sees the requests go by: those with
// a subject filter. An instance's own consumer has none; it may be
// created again at any time (two heartbeats missed on a loaded machine),
// and is not counted. seen returns the count.
func consumerCreates(t *testing.T, ns *natsServer) *requestCount {
	t.Helper()
	subjects := []string{"$JS.API.CONSUMER.CREATE." + DefaultStream, "$JS.API.CONSUMER.CREATE." + DefaultStream + ".>"}
	return countRequests(t, ns, subjects, func(data []byte) bool {
		return bytes.Contains(data, []byte(`"filter_subject`))
	})
}

// countRequests counts the requests to subjects whose data is counted,
// from now on, as NATS sees them go by; seen returns the count.
func countRequests(t *testing.T, ns *natsServer, subjects []string, counted func(data []byte) bool) *requestCount {
	t.Helper()
	nc := connectNATS(t, ns.ClientURL())
	c := &requestCount{marker: nc.NewInbox(), marked: make(chan struct{})}
	// One channel for every subject: nats.go fills it as the messages
	// come, in order (each subscription's handler has a goroutine of its
	// own, which would not keep the order between them).
	msgs := make(chan *nats.Msg, 1024)
	for _, subject := range append(slices.Clone(subjects), c.marker) {
		if _, err := nc.ChanSubscribe(subject, msgs); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case m := <-msgs:
				switch {
				case m.Subject == c.marker:
					select {
					case c.marked <- struct{}{}:
					case <-stop:
						return
					}
				case counted(m.Data):
					c.n.Add(1)
				}
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() { nc.Close(); close(stop); <-done })
	return c
}

// requestCount is countRequests's count.
type requestCount struct {
	n      atomic.Int64
	marker string        // the subject of seen's markers
	marked chan struct{} // a marker came by
}

// seen returns the count of the requests b sent so far: it sends a
// marker through b's connection after the requests and waits for it to
// come by, after them (NATS keeps the order of a connection's messages).
// Reading the count at once missed a request still on its way
// (TestResumeOfAGoneClientReadsNothing, 1 in 9 runs).
func (c *requestCount) seen(t *testing.T, b *Broker) int64 {
	t.Helper()
	if err := b.nc.Publish(c.marker, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.marked:
	case <-time.After(waitLimit):
		t.Fatal("the marker after the requests did not come by")
	}
	return c.n.Load()
}

// An instance that restarts holds the stream's tail in its local history
// once it is open: a client resuming from before the restart is served
// from there, the stream read through no consumer (before, each such
// resume created one, and a crowd of them went past nats-server's cap on
// a stream's consumers, answered 503).
func TestRestartedInstanceResumesFromItsLocalHistory(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	a := newInstance(t, opts)
	var ids []string
	for i := range 30 {
		ids = append(ids, a.publish(t, []string{"x", "y"}[i%2], strconv.Itoa(i)))
	}
	a.close()

	b := newInstance(t, opts)
	creates := consumerCreates(t, ns)
	c := b.subscribe(t, "topic=x", ids[4])
	for i := 6; i < len(ids); i += 2 {
		if got := c.next(t); got.ID != ids[i] || got.Data != strconv.Itoa(i) {
			t.Fatalf("replayed %+v, want id %s", got, ids[i])
		}
	}
	live := b.publish(t, "x", "live")
	if got := c.next(t); got.ID != live || got.Data != "live" {
		t.Fatalf("live %+v, want id %s", got, live)
	}
	if n := creates.seen(t, b.broker); n != 0 {
		t.Errorf("the resume created %d consumers on the stream, want none: it read the stream, not the local history", n)
	}
	if r := b.broker.replayed.Load(); r != 0 {
		t.Errorf("%d events replayed from the stream, want 0", r)
	}
}

// The local history loaded at start holds the stream's events with the
// ids the stream gave them, those stored while it loads included, each
// once and in order: a resume from the first is served from it, every
// later event once, then the live ones.
func TestWarmUpHoldsTheStreamsEventsOnce(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.HistorySize = 1000
	a := openBroker(t, opts)
	all := store(t, ns, a, repeat(event{"t", 100}, 300))

	// Events stored through another instance while b opens: before it
	// reads the stream's state, while it loads the tail, after.
	stop := make(chan struct{})
	var during []*stream.Message
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			during = append(during, store(t, ns, a, []event{{"u", 50 + i}})...)
		}
	})
	b := openBroker(t, opts)
	close(stop)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	all = append(all, during...)
	all = append(all, store(t, ns, a, repeat(event{"t", 10}, 3))...)
	last := all[len(all)-1].ID
	h := b.cur.Load()
	waitFor(t, "b's consumer to deliver the last event", func() bool { return h.ids.id(h.seen.last()) >= last })

	for _, m := range all {
		if got := h.mem.Retained(m.ID); got == nil || !sameEvent(got, m) {
			t.Fatalf("the local history holds %v under id %d, want the stream's event %q", got, m.ID, m.Frame)
		}
	}
	s, err := b.Subscribe([]string{">"}, all[0].IDString())
	if err != nil || s.Reset() != "" {
		t.Fatalf("resume from the first event: %v, reset %q", err, s.Reset())
	}
	defer s.Close()
	got := replayAll(t, s, nil, 1<<20)
	more := store(t, ns, a, []event{{"t", 1}})
	got = takeThrough(t, s, got, more[0].ID)
	if want := append(all[1:], more...); !slices.EqualFunc(got, want, sameEvent) {
		t.Fatalf("got %d events %v\nwant %d %v", len(got), idsOf(got), len(want), idsOf(want))
	}
	if r := b.replayed.Load(); r != 0 {
		t.Errorf("%d events replayed from the stream, want 0", r)
	}
	t.Logf("%d events stored while the instance opened", len(during))
}

// The local history loaded at start keeps the local bounds: the stream's
// last HistorySize events, fewer when HistoryMaxBytes holds fewer, the
// newest kept.
func TestWarmUpKeepsTheLocalBounds(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.HistorySize = 50
	opts.HistoryMaxBytes = 64 << 10
	a := openBroker(t, opts)
	all := store(t, ns, a, repeat(event{"t", 2000}, 80)) // the stream keeps about 30
	b := openBroker(t, opts)
	s := b.Stats()
	if s.HistoryBytes > opts.HistoryMaxBytes || s.HistoryBytes == 0 {
		t.Errorf("the local history takes %d bytes, want some and at most %d", s.HistoryBytes, opts.HistoryMaxBytes)
	}
	mem := b.cur.Load().mem
	held := 0
	for _, m := range all {
		if mem.Retained(m.ID) != nil {
			held++
		}
	}
	if mem.Retained(all[len(all)-1].ID) == nil || held == 0 || held >= 50 {
		t.Errorf("the local history holds %d events (the newest: %v), want the newest and fewer than 50", held, mem.Retained(all[len(all)-1].ID) != nil)
	}
}

// BenchmarkWarmUp times Open on a stream of 10,000 events of 256 bytes,
// which loads them all into the instance's local history before it
// returns ("warm", reported as ms/open; the events/s of the whole Open
// beside it), against Open that loads nothing ("cold"): the difference is
// the load's. Each round opens an instance and closes it; the one that
// stored the events stays.
func BenchmarkWarmUp(b *testing.B) {
	const events, size = 10_000, 256
	ns := startNATS(b)
	opts := testBrokerOptions(ns)
	opts.HistorySize = events
	a := openBroker(b, opts)
	if n := len(store(b, ns, a, repeat(event{"t", size}, events))); n != events {
		b.Fatalf("stored %d events, want %d", n, events)
	}
	for _, cold := range []bool{false, true} {
		name, want := "warm", uint64(events)
		if cold {
			name, want = "cold", 0
		}
		b.Run(name, func(b *testing.B) {
			opts.cold = cold
			var took time.Duration
			for b.Loop() {
				start := time.Now()
				in, err := Open(b.Context(), opts)
				took += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				if got := in.cur.Load().mem.Stats().Published; got != want {
					b.Fatalf("loaded %d events, want %d", got, want)
				}
				in.Close()
			}
			b.ReportMetric(float64(took.Microseconds())/1000/float64(b.N), "ms/open")
			if !cold {
				b.ReportMetric(float64(int(want)*b.N)/took.Seconds(), "events/s")
			}
		})
	}
}

// A start whose consumer delivers nothing of the stream's tail (its pull
// requests lost, as a NATS server too busy to answer loses them) fails
// after PublishTimeout, saying so, rather than serve without the tail or
// hang; nothing of it is left running.
func TestOpenFailsWhenTheTailCannotBeRead(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	a := openBroker(t, opts)
	store(t, ns, a, repeat(event{"t", 10}, 5))
	p := startProxy(t, ns)
	p.swallowRequests("$JS.API.CONSUMER.MSG.NEXT.")
	opts.URLs = []string{p.url()}
	opts.PublishTimeout = 300 * time.Millisecond
	start := time.Now()
	b, err := Open(t.Context(), opts)
	if err == nil {
		b.Close()
		t.Fatal("Open succeeded without the stream's tail")
	}
	if !errors.Is(err, stream.ErrUnavailable) || !strings.Contains(err.Error(), "loading the tail") {
		t.Errorf("Open: %v; want ErrUnavailable saying the tail could not be loaded", err)
	}
	t.Logf("failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
}

// A stream deleted and created again while an instance loads its tail is
// renewed as at any other time: Open returns with the new stream's
// history, whose ids are the new stream's, and publishes.
func TestStreamReplacedWhileTheTailLoads(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	a := openBroker(t, opts)
	store(t, ns, a, repeat(event{"t", 10}, 5))
	a.Close()
	p := startProxy(t, ns)
	swallowed := p.swallowRequests("$JS.API.CONSUMER.MSG.NEXT.")
	opts.URLs = []string{p.url()}
	opts.PublishTimeout = waitLimit // the renewal, not a stall, is what ends the load
	type opened struct {
		b   *Broker
		err error
	}
	done := make(chan opened, 1)
	go func() {
		b, err := Open(t.Context(), opts)
		done <- opened{b, err}
	}()
	select {
	case <-swallowed:
	case <-time.After(waitLimit):
		t.Fatal("the consumer asked for no events")
	}
	created := recreateStream(t, ns, opts)
	p.passRequests()
	var o opened
	select {
	case o = <-done:
	case <-time.After(waitLimit):
		t.Fatal("Open did not return after the stream was replaced")
	}
	if o.err != nil {
		t.Fatal(o.err)
	}
	defer o.b.Close()
	if h := o.b.cur.Load(); !h.created.Equal(created) {
		t.Fatalf("the history is of the stream created at %v, want the new one's %v", h.created, created)
	}
	m, _, err := o.b.Publish(stream.Publication{Topic: "t", Data: "new"})
	if err != nil || m.ID != newIDs(created).id(1) {
		t.Fatalf("publish: %v, %v; want the new stream's first id", m, err)
	}
}

// The stream keeps its last sequence when that message is deleted (a
// subject purged, a message removed by hand), and no consumer delivers
// it: an instance that starts then loads what is there and opens, rather
// than wait for it and fail, which made every restart fail until
// something was published.
func TestOpenLoadsATailWhoseLastMessageWasDeleted(t *testing.T) {
	for _, tt := range []struct {
		name   string
		remove func(t *testing.T, st jetstream.Stream)
	}{
		{"message removed", func(t *testing.T, st jetstream.Stream) {
			if err := st.DeleteMsg(t.Context(), 5); err != nil {
				t.Fatal(err)
			}
		}},
		{"subject purged", func(t *testing.T, st jetstream.Stream) {
			if err := st.Purge(t.Context(), jetstream.WithPurgeSubject(DefaultSubjectPrefix+".gone")); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := startNATS(t)
			opts := testBrokerOptions(ns)
			a := openBroker(t, opts)
			kept := store(t, ns, a, repeat(event{"keep", 10}, 4))
			store(t, ns, a, repeat(event{"gone", 10}, 1))
			a.Close()
			st, err := ns.operator(t).Stream(t.Context(), DefaultStream)
			if err != nil {
				t.Fatal(err)
			}
			tt.remove(t, st)
			b, err := Open(t.Context(), opts)
			if err != nil {
				t.Fatalf("Open after the stream's last message was deleted: %v", err)
			}
			defer b.Close()
			h := b.cur.Load()
			for _, m := range kept {
				if got := h.mem.Retained(m.ID); got == nil || !bytes.Equal(got.Frame, m.Frame) {
					t.Errorf("event %d not in the local history loaded at start", m.ID)
				}
			}
		})
	}
}

// Messages deleted from within the stream's tail (a subject purged)
// before an instance starts: the tail it loads holds every event left,
// and a resume from before the deleted ones is served from there, not
// from the stream. Each deletion was taken for events lost: the local
// history let go of what it had loaded before it, and the clients that
// came back after the restart each read the stream.
func TestOpenLoadsATailWithMessagesDeletedWithin(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	a := newInstance(t, opts)
	var ids []string
	for i := range 30 {
		ids = append(ids, a.publish(t, []string{"x", "y"}[i%2], strconv.Itoa(i)))
	}
	a.close()
	st, err := ns.operator(t).Stream(t.Context(), DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(t.Context(), jetstream.WithPurgeSubject(DefaultSubjectPrefix+".y")); err != nil {
		t.Fatal(err)
	}

	b := newInstance(t, opts)
	creates := consumerCreates(t, ns)
	c := b.subscribe(t, "topic=x", ids[4])
	if got := c.next(t); got.ID != ids[6] {
		t.Fatalf("resumed from %s: %+v, want event %s", ids[4], got, ids[6])
	}
	if n := creates.seen(t, b.broker); n != 0 {
		t.Errorf("the resume created %d consumers on the stream, want none: the local history had let go of the tail", n)
	}
}

// A stream at its limit lets go of its oldest event with each one stored:
// one stored as an instance starts, once it has read the stream's state
// and before its consumer reads the tail, lets go of the tail's first.
// Nothing was subscribed to the instance, nor loaded: its tail starts
// after it, and no warning says that events were lost and subscriptions
// ended. It did, at the start of a busy hub's instances.
func TestTailLetGoOfAsTheInstanceStartsWarnsOfNoLoss(t *testing.T) {
	ns := startNATS(t)
	p := startProxy(t, ns)
	opts := testBrokerOptions(ns)
	opts.HistorySize = 5
	a := openBroker(t, opts)
	store(t, ns, a, repeat(event{"t", 10}, opts.HistorySize)) // the stream is full

	var logs testlog.Buffer
	opts.URLs, opts.Logger = []string{p.url()}, slog.New(slog.NewTextHandler(&logs, nil))
	swallowed := p.swallowRequests("$JS.API.CONSUMER.CREATE.")
	type opened struct {
		b   *Broker
		err error
	}
	done := make(chan opened, 1)
	go func() {
		b, err := Open(t.Context(), opts)
		done <- opened{b, err}
	}()
	select {
	case <-swallowed: // the stream's state read, the consumer not made
	case <-time.After(waitLimit):
		t.Fatal("no consumer asked for")
	}
	store(t, ns, a, repeat(event{"t", 10}, 1)) // lets go of the tail's first
	p.passRequests()
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	defer o.b.Close()
	if n := logs.Count("let go of events"); n != 0 {
		t.Errorf("%d warnings of events lost at start, want none:\n%s", n, logs.String())
	}
}

// Resumes from each id around the start of the tail an instance loaded
// (the stream holding more than its local bytes bound keeps): those
// below it read the stream, those within it the local history, and each
// gets every event after its id once, in order, then a live one.
func TestResumesAroundTheLoadedTailsStart(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.HistorySize = 100
	opts.HistoryMaxBytes = 1000
	opts.MaxEventBytes = 4096 // the stream keeps at least 14 KiB
	a := newInstance(t, opts)
	var ids []string
	for i := range 40 {
		ids = append(ids, a.publish(t, "t", fmt.Sprintf("event %02d %s", i, strings.Repeat("x", 60))))
	}
	b := newInstance(t, opts)
	mem := b.broker.cur.Load().mem
	at := slices.IndexFunc(ids, func(id string) bool {
		n, _ := strconv.ParseUint(id, 10, 64)
		return mem.Retained(n) != nil
	})
	if at < 4 {
		t.Fatalf("the loaded tail starts at event %d of 40, want it well within", at)
	}
	t.Logf("the loaded tail starts at event %d of 40", at)
	var clients []*client
	var from []int
	for k := at - 3; k <= at+2; k++ {
		clients = append(clients, b.subscribe(t, "topic=t", ids[k]))
		from = append(from, k)
	}
	live := a.publish(t, "t", "live")
	for i, c := range clients {
		want := append(slices.Clone(ids[from[i]+1:]), live)
		for _, id := range want {
			if got := c.next(t); got.ID != id {
				t.Fatalf("resumed from event %d (tail starts at %d): got %+v, want id %s", from[i], at, got, id)
			}
		}
	}
}
