package natsbroker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/ssehub/ssehub/internal/handler"
	"github.com/ssehub/ssehub/internal/stream"
)

// A resume from further back than several pages of the stream hands out
// exactly the events after the id that its patterns match, in order, then
// the live ones, each once: across the pages (bounded by bytes and by
// messages read), with wildcard, several and overlapping patterns, and
// with events published on another instance while it subscribes, which
// reach it both in the replay and live (Take drops the second copy). Only
// the first page is read at Subscribe, and counted in Stats().Replayed
// (the whole replay was, before pages).
func TestDeepResumeHandsOutEveryPageOnce(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.HistorySize = 5000
	a := openBroker(t, opts) // makes the stream
	topics := []string{"a.x", "a.y", "b.z", "c"}
	var evs []event
	for i := range 900 {
		size := 40 // 600 small events: pages of replayBatch messages
		if i >= 600 {
			size = 500 + i*7919%3000
			if i%10 == 0 {
				size = 20 << 10
			}
		}
		evs = append(evs, event{topics[i%len(topics)], size})
	}
	all := store(t, ns, a, evs)
	opts.cold = true
	b := openBroker(t, opts) // its local history starts after them
	from := all[4].ID

	for _, patterns := range [][]string{{">"}, {"a.*"}, {"a.x", "b.z"}, {"a.*", "a.x"}, {"c"}} {
		t.Run(strings.Join(patterns, "&"), func(t *testing.T) {
			before := b.Stats().Replayed
			// Events stored while Subscribe runs, through another
			// instance: b's consumer may hand them to the local
			// subscription after the stream's last sequence was read.
			var wg sync.WaitGroup
			var concurrent []*stream.Message
			wg.Go(func() {
				for i := range 40 {
					concurrent = append(concurrent, store(t, ns, a, []event{{topics[i%len(topics)], 100}})...)
				}
			})
			s, err := b.Subscribe(patterns, strconv.FormatUint(from, 10))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Reset() != "" {
				t.Fatalf("reset %q", s.Reset())
			}
			atSubscribe := b.Stats().Replayed - before
			var got []*stream.Message
			got, _ = s.Replay(got, 16<<10)
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
			all = append(all, concurrent...)
			all = append(all, store(t, ns, a, []event{{"a.x", 100}, {"b.z", 100}, {"c", 100}})...)

			got = replayAll(t, s, got, 16<<10)
			replayed := uint64(len(got))
			want := matching(all, patterns, from)
			got = takeThrough(t, s, got, want[len(want)-1].ID)
			if !slices.EqualFunc(got, want, sameEvent) {
				t.Fatalf("got %d events %v\nwant %d %v", len(got), idsOf(got), len(want), idsOf(want))
			}
			// Pages end at replayBatch messages read, and at
			// replayPageBytes plus an event (20 KiB at most here).
			pages := replayed > replayBatch || frameBytes(got[:replayed]) > replayPageBytes+20<<10
			total := b.Stats().Replayed - before
			if total != replayed || atSubscribe == 0 || atSubscribe > replayBatch || (pages && atSubscribe >= replayed) {
				t.Fatalf("Stats().Replayed: %d at Subscribe, %d in all; %d events replayed (several pages: %v): want the first page at Subscribe, then each as read", atSubscribe, total, replayed, pages)
			}
			t.Logf("%d events replayed, %d of them at Subscribe; %d live", replayed, atSubscribe, len(got)-int(replayed))
		})
	}
	// Each page's consumer is gone once idle for PublishTimeout, not
	// nats.go's 5 minutes; the instances' own two stay.
	waitFor(t, "the pages' consumers to go", func() bool { return consumers(t, ns) == 2 })
}

// Deep resumes that read nothing hold a page each, not their replay:
// 20 of them on a stream of about 2 MB grow the heap by far less than
// 20 times 2 MB (about 40 MB before pages): a third of it here, a
// structural bound, not a measurement. Each holds a page of
// replayPageBytes and one event; 20 grew it by about 7 MB.
func TestDeepResumesHoldAPageEach(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.HistorySize = 1000
	// The 20 resumes read their first pages at once, each to be
	// answered, not within a time: with 2 s, beside other packages'
	// tests under -race, some answered 503 (the stream's info or the
	// page's read unanswered in time).
	opts.PublishTimeout = time.Minute
	a := openBroker(t, opts)
	var evs []event
	for i := 0; len(evs) == 0 || i*5500 < 2<<20; i++ {
		evs = append(evs, event{"t", 1000 + i*7919%9000})
	}
	all := store(t, ns, a, evs)
	streamBytes := frameBytes(all)
	opts.cold = true
	b := openBroker(t, opts) // its local history starts after them
	from := strconv.FormatUint(all[0].ID, 10)
	warm, err := b.Subscribe([]string{"t"}, from) // the server's caches
	if err != nil {
		t.Fatal(err)
	}
	if got := replayAll(t, warm, nil, 1<<20); len(got) != len(all)-1 {
		t.Fatalf("replayed %d events, want %d", len(got), len(all)-1)
	}
	warm.Close()

	const resumes = 20
	before := heapInUse()
	subs := make([]stream.Subscription, resumes)
	var wg sync.WaitGroup
	for i := range subs {
		wg.Go(func() {
			s, err := b.Subscribe([]string{"t"}, from)
			if err != nil {
				t.Error(err)
				return
			}
			subs[i] = s
		})
	}
	wg.Wait()
	growth := heapInUse() - before
	for _, s := range subs {
		if s != nil {
			s.Close()
		}
	}
	t.Logf("%d resumes of a %d-byte stream: heap +%d bytes", resumes, streamBytes, growth)
	if limit := int64(resumes * streamBytes / 3); growth > limit {
		t.Fatalf("%d resumes that read nothing hold %d bytes, over %d (their replays take %d)", resumes, growth, limit, resumes*streamBytes)
	}
}

// A resumer whose next page the stream evicted before it was read ends
// with ErrSlowConsumer once the page it holds is handed out, as a
// resumer the local history overtook does: no event after the gap, no
// live event, and a reconnect with its last id starts with a reset.
// Before pages, the replay was held whole and handed out in full.
func TestOvertakenResumeEndsSlow(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.HistorySize = 60
	a := openBroker(t, opts)
	old := store(t, ns, a, repeat(event{"a", 8 << 10}, opts.HistorySize))
	opts.cold = true
	in := newInstance(t, opts) // its local history starts after them
	s, err := in.broker.Subscribe([]string{"a"}, strconv.FormatUint(old[0].ID, 10))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dropped := in.broker.Stats().Dropped
	got, _ := s.Replay(nil, 16<<10)
	store(t, ns, a, repeat(event{"b", 100}, opts.HistorySize)) // evicts every event of "a"
	store(t, ns, a, []event{{"a", 100}})                       // live, after the gap
	got = replayAll(t, s, got, 16<<10)
	if len(got) == 0 || len(got) >= len(old)-1 || !slices.EqualFunc(got, old[1:len(got)+1], sameEvent) {
		t.Fatalf("handed out %v, want a first page of %v", idsOf(got), idsOf(old[1:]))
	}
	if err := s.Err(); !errors.Is(err, stream.ErrSlowConsumer) {
		t.Fatalf("Err = %v, want ErrSlowConsumer", err)
	}
	if d := in.broker.Stats().Dropped - dropped; d != 1 {
		t.Errorf("Stats().Dropped grew by %d, want 1: an overtaken resume is a drop", d)
	}
	ended(t, s)
	c := in.subscribe(t, "topic=a", got[len(got)-1].IDString())
	if ev := c.next(t); ev.Type != "reset" || !strings.Contains(ev.Data, "older than the retained history") {
		t.Fatalf("reconnect: %+v, want a reset", ev)
	}
}

// A resumer whose next page the stream evicted before any event of its
// replay was handed out (its first page, read at Subscribe, matched
// nothing) fell behind nothing: it ends with stream.ErrResumeOvertaken, not
// counted as a drop, as a resumer the local history overtook so does, and
// the stream subscribes again with the same id (a reset here).
func TestResumeOvertakenBeforeItsFirstEventIsNoDrop(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.HistorySize = replayBatch + 100
	a := openBroker(t, opts)
	old := store(t, ns, a, repeat(event{"b", 10}, opts.HistorySize))
	opts.cold = true
	in := newInstance(t, opts) // its local history starts after them
	// Patterns that overlap are read through the stream's whole subject,
	// a page of replayBatch messages, here none matching.
	patterns := []string{"a.*", "*.x"}
	s, err := in.broker.Subscribe(patterns, strconv.FormatUint(old[0].ID, 10))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Reset() != "" {
		t.Fatalf("resume from %d: reset %q, want a replay", old[0].ID, s.Reset())
	}
	dropped := in.broker.Stats().Dropped
	store(t, ns, a, repeat(event{"b", 10}, opts.HistorySize)) // evicts every old one
	got := replayAll(t, s, nil, 16<<10)
	if len(got) != 0 {
		t.Fatalf("handed out %v, want nothing", idsOf(got))
	}
	if err := s.Err(); !errors.Is(err, stream.ErrResumeOvertaken) {
		t.Fatalf("Err = %v, want ErrResumeOvertaken", err)
	}
	if d := in.broker.Stats().Dropped - dropped; d != 0 {
		t.Errorf("Stats().Dropped grew by %d, want 0", d)
	}
	ended(t, s)
	again, err := in.broker.Subscribe(patterns, strconv.FormatUint(old[0].ID, 10))
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if !strings.Contains(again.Reset(), "older than the retained history") {
		t.Errorf("the same resume again: reset %q, want one", again.Reset())
	}
}

// A resumer the stream overtook before it handed out an event keeps its
// place among the local broker's MaxSubscribers until it is closed, and
// the resume made in its place (Resubscribe) takes it over: on a full
// instance another subscriber is refused meanwhile, not the resume. The
// place was freed when the subscription ended, another subscriber could
// take it, and the resume was then refused.
func TestResumeOvertakenByTheStreamKeepsItsPlace(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.HistorySize = replayBatch + 100
	a := openBroker(t, opts)
	old := store(t, ns, a, repeat(event{"b", 10}, opts.HistorySize))
	opts.cold, opts.MaxSubscribers = true, 1
	in := newInstance(t, opts)         // its local history starts after them
	patterns := []string{"a.*", "*.x"} // a page of replayBatch, none matching
	from := strconv.FormatUint(old[0].ID, 10)
	s, err := in.broker.Subscribe(patterns, from)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	store(t, ns, a, repeat(event{"b", 10}, opts.HistorySize)) // evicts every old one
	if got := replayAll(t, s, nil, 16<<10); len(got) != 0 || !errors.Is(s.Err(), stream.ErrResumeOvertaken) {
		t.Fatalf("handed out %v, Err %v; want nothing, ErrResumeOvertaken", idsOf(got), s.Err())
	}
	ended(t, s)
	if other, err := in.broker.Subscribe([]string{"c"}, ""); !errors.Is(err, stream.ErrTooManySubscribers) {
		if other != nil {
			other.Close()
		}
		t.Fatalf("another subscriber while the overtaken one is not closed: %v, want ErrTooManySubscribers", err)
	}
	again, err := in.broker.Resubscribe(t.Context(), s, patterns, from)
	if err != nil {
		t.Fatalf("the resume in its place: %v", err)
	}
	defer again.Close()
	if !strings.Contains(again.Reset(), "older than the retained history") {
		t.Errorf("the resume in its place: reset %q, want one", again.Reset())
	}
	s.Close() // its place is again's now: nothing to free
	if n := in.broker.Stats().Subscribers; n != 1 {
		t.Errorf("%d subscribers after the overtaken one closed, want 1, the resume", n)
	}
	again.Close()
	if n := in.broker.Stats().Subscribers; n != 0 {
		t.Errorf("%d subscribers once all closed, want 0", n)
	}
}

// NATS gone in the middle of a replay: the next page cannot be read, and
// the subscription ends with an error wrapping stream.ErrUnavailable,
// once the page it holds is handed out; neither the rest of the replay
// nor the live events queued meanwhile are handed out. Before pages, the
// replay was held whole and handed out in full, then the live events.
func TestNATSGoneMidReplayEndsTheResume(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.HistorySize = 200
	a := openBroker(t, opts) // makes the stream
	old := store(t, ns, a, repeat(event{"t", 8 << 10}, 100))
	opts.cold = true
	b := openBroker(t, opts) // its local history starts after them
	s, err := b.Subscribe([]string{"t"}, strconv.FormatUint(old[0].ID, 10))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 2 { // queued as live events: Publish returns once they are
		if _, _, err := b.Publish(stream.Publication{Topic: "t", Data: "live"}); err != nil {
			t.Fatal(err)
		}
	}
	ns.stop()
	waitFor(t, "the broker to see NATS gone", func() bool { return b.Ready() != nil })
	got := replayAll(t, s, nil, 16<<10)
	if len(got) == 0 || len(got) >= len(old)-1 || !slices.EqualFunc(got, old[1:len(got)+1], sameEvent) {
		t.Fatalf("handed out %v, want a first page of %v", idsOf(got), idsOf(old[1:]))
	}
	if err := s.Err(); !errors.Is(err, stream.ErrUnavailable) {
		t.Fatalf("Err = %v, want ErrUnavailable", err)
	}
	ended(t, s)
}

// consumers counts the consumers of the default stream.
func consumers(t *testing.T, ns *natsServer) int {
	t.Helper()
	js := ns.operator(t)
	st, err := js.Stream(t.Context(), DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	names := st.ConsumerNames(t.Context())
	for range names.Name() {
		n++
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// ended fails the test unless s has ended as the handler sees it: Ready
// closed, and Take handing out nothing and reporting it closed.
func ended(t *testing.T, s stream.Subscription) {
	t.Helper()
	select {
	case _, ok := <-s.Ready():
		if ok {
			select {
			case <-s.Ready(): // a wake-up was pending: then the close
			case <-time.After(waitLimit):
				t.Fatal("Ready not closed")
			}
		}
	case <-time.After(waitLimit):
		t.Fatal("Ready not closed")
	}
	if got, open := s.Take(nil, 0); len(got) > 0 || open {
		t.Fatalf("Take = %v, %v after the end; want nothing, closed", idsOf(got), open)
	}
}

// openBroker opens a Broker, closed when the test ends.
func openBroker(t testing.TB, opts Options) *Broker {
	t.Helper()
	b, err := Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// event is an event to store: its topic and the size of its data.
type event struct {
	topic string
	size  int
}

func repeat(ev event, n int) []event { return slices.Repeat([]event{ev}, n) }

// store stores evs in the stream straight through JetStream, as another
// instance would, without waiting for b's consumer, and returns them as
// b's subscriptions hand them out. It reports failures with t.Error, so
// a goroutine of the test may call it; what failed is left out.
func store(t testing.TB, ns *natsServer, b *Broker, evs []event) []*stream.Message {
	// Within waitLimit, not nats.go's 2 s: on a loaded machine the
	// in-process server took longer to answer ("i/o timeout").
	nc, err := nats.Connect(ns.ClientURL(), nats.Timeout(waitLimit))
	if err != nil {
		t.Error(err)
		return nil
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	acks := make([]jetstream.PubAckFuture, len(evs))
	for i, ev := range evs {
		if acks[i], err = js.PublishAsync(b.subject(ev.topic), []byte(strings.Repeat("x", ev.size))); err != nil {
			t.Error(err)
			return nil
		}
	}
	ids := b.cur.Load().ids
	var out []*stream.Message
	for i, f := range acks {
		select {
		case ack := <-f.Ok():
			m, err := stream.NewMessage(ids.id(ack.Sequence), evs[i].topic, "", string(f.Msg().Data))
			if err != nil {
				t.Error(err)
				continue
			}
			out = append(out, m)
		case err := <-f.Err():
			t.Error(err)
		case <-time.After(waitLimit):
			t.Error("no acknowledgement within", waitLimit)
			return out
		}
	}
	return out
}

// replayAll calls Replay until it is done and returns got with every
// event it handed out appended.
func replayAll(t *testing.T, s stream.Subscription, got []*stream.Message, maxBytes int) []*stream.Message {
	t.Helper()
	for range 100_000 {
		var done bool
		if got, done = s.Replay(got, maxBytes); done {
			return got
		}
	}
	t.Fatal("Replay is never done")
	return nil
}

// takeThrough takes s's live events until the one with id last, and
// returns got with them appended.
func takeThrough(t *testing.T, s stream.Subscription, got []*stream.Message, last uint64) []*stream.Message {
	t.Helper()
	timeout := time.After(waitLimit)
	for len(got) == 0 || got[len(got)-1].ID < last {
		select {
		case <-s.Ready():
		case <-timeout:
			t.Fatalf("no live event up to %d; got %v", last, idsOf(got))
		}
		var open bool
		if got, open = s.Take(got, 0); !open {
			t.Fatalf("the subscription ended: %v", s.Err())
		}
	}
	return got
}

// matching returns the events of all after id from whose topic matches
// one of patterns, by id.
func matching(all []*stream.Message, patterns []string, from uint64) []*stream.Message {
	var out []*stream.Message
	for _, m := range all {
		if m.ID > from && slices.ContainsFunc(patterns, func(p string) bool { return stream.Match(p, m.Topic) }) {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(x, y *stream.Message) int { return cmp.Compare(x.ID, y.ID) })
	return out
}

func sameEvent(x, y *stream.Message) bool { return x.ID == y.ID && string(x.Frame) == string(y.Frame) }

func idsOf(msgs []*stream.Message) string {
	var b strings.Builder
	for i, m := range msgs {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprint(&b, m.ID)
	}
	return b.String()
}

func frameBytes(msgs []*stream.Message) int {
	n := 0
	for _, m := range msgs {
		n += len(m.Frame)
	}
	return n
}

// heapInUse is the heap's live bytes after a collection.
func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// A pattern another covers is left out of a page's filter, so that
// "a.*" with "a.x" still reads only "a.*" from the server; patterns that
// overlap without one covering the other are read through the whole
// subject, which NATS needs for filters that overlap.
func TestFiltersLeaveOutCoveredPatterns(t *testing.T) {
	b := &Broker{opts: Options{SubjectPrefix: "p"}}
	for _, tt := range []struct {
		patterns, want []string
	}{
		{[]string{"a.x", "a.*"}, []string{"p.a.*"}},
		{[]string{"a.>", "a.x", "a.*.y"}, []string{"p.a.>"}},
		{[]string{"a.x", "a.y", "a.x"}, []string{"p.a.x", "p.a.y"}},
		{[]string{"a.*", "*.x"}, []string{"p.>"}},
	} {
		if got := b.filters(tt.patterns); !slices.Equal(got, tt.want) {
			t.Errorf("filters(%q) = %q, want %q", tt.patterns, got, tt.want)
		}
	}
}

// A deep resume whose patterns make the pages read the whole subject
// ("a.*" and "*.x" overlap) over a long stretch with no match: each
// Replay reads one page and returns, so the subscriber's loop watches
// its client and heartbeat between pages, and the stream still gets the
// match after the stretch. Before, one Replay read every page of the
// stretch (seconds for 100,000 events), and a handler that found nothing
// to send waited for a live event. Each page's consumer is deleted once
// read.
func TestDeepResumeReadsAPagePerReplay(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.HistorySize = 3000
	a := openBroker(t, opts)
	first := store(t, ns, a, []event{{"a.x", 10}})
	store(t, ns, a, repeat(event{"b.y", 10}, 3*replayBatch))
	match := store(t, ns, a, []event{{"a.x", 10}})
	opts.cold = true
	in := newInstance(t, opts) // its local history starts after them
	s, err := in.broker.Subscribe([]string{"a.*", "*.x"}, first[0].IDString())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, done := s.Replay(nil, 1<<20); len(got) != 0 || done {
		t.Fatalf("first Replay: %v, done %v; want one more page read, nothing yet", idsOf(got), done)
	}
	if got := replayAll(t, s, nil, 1<<20); len(got) != 1 || !sameEvent(got[0], match[0]) {
		t.Fatalf("the rest of the replay: %v, want %v", idsOf(got), idsOf(match))
	}
	if n := consumers(t, ns); n != 2 {
		t.Errorf("%d consumers on the stream once the replay is read, want the instances' own 2", n)
	}
	c := in.subscribe(t, "topic=a.*&topic=*.x", first[0].IDString())
	if got := c.next(t); got.ID != match[0].IDString() {
		t.Fatalf("over HTTP: %+v, want the match %s", got, match[0].IDString())
	}
}

// behindThreePages returns an instance, on the detached transport or
// Gin's, whose local history starts after three pages of events of topic
// t, stored through another instance and returned; its page reads wait
// for a read slot up to publishTimeout.
func behindThreePages(t *testing.T, detached bool, publishTimeout time.Duration) (*instance, []*stream.Message) {
	t.Helper()
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.HistorySize = 4 * replayBatch
	opts.PublishTimeout = publishTimeout
	a := openBroker(t, opts) // makes the stream
	all := store(t, ns, a, repeat(event{"t", 100}, 3*replayBatch))
	opts.cold = true // the local history starts after them
	b, err := Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	h := handler.New(handler.Options{
		Logger: slog.New(slog.DiscardHandler),
		Stream: handler.StreamOptions{HeartbeatInterval: time.Minute, WriteTimeout: 5 * time.Second, Detached: detached},
		Hub:    handler.HubOptions{Broker: b, PublishTokens: []string{testToken}},
	})
	in := &instance{Server: httptest.NewServer(h), broker: b, h: h}
	t.Cleanup(in.close)
	return in, all
}

// With stream.transport: detached, a stream runs on after its handler
// returned, which ends its request's context: a deep resume's page read
// that has to wait for a read slot waits for one, within PublishTimeout,
// as on Gin's transport. (The subscription waited for its pages on the
// request's context: such a read failed at once, busy, and the stream
// ended.)
func TestDeepResumeOverTheDetachedTransport(t *testing.T) {
	in, all := behindThreePages(t, true, 5*time.Second)
	b := in.broker
	c := in.subscribe(t, "topic=t", strconv.FormatUint(all[0].ID, 10))
	// Its first page was read at Subscribe. Every read slot is taken now:
	// the next page's read waits for one, within PublishTimeout. The test
	// takes events until none comes for a second, then gives them back.
	for range cap(b.reads) {
		b.reads <- struct{}{}
	}
	waited := false
	for n := 1; n < len(all); n++ {
		var ev stream.Event
		var ok bool
		select {
		case ev, ok = <-c.events:
		case <-time.After(time.Second):
			waited = true
			for range cap(b.reads) {
				<-b.reads
			}
			ev = c.next(t)
			ok = true
		}
		if !ok {
			t.Fatalf("the stream ended after %d of %d events (waited for a read slot: %v)", n-1, len(all)-1, waited)
		}
		if ev.ID != strconv.FormatUint(all[n].ID, 10) {
			t.Fatalf("event %d: id %s, want %d", n, ev.ID, all[n].ID)
		}
	}
	if !waited {
		t.Fatal("the stream never waited for a read slot: the test shows nothing")
	}
}

// With stream.transport: detached, a client gone while its stream waits
// for a read slot ends the wait, as on Gin's transport: its stream ends
// before a slot frees, and no page is read for it. (The wait went on until
// PublishTimeout, then read a page for nobody.)
func TestGoneClientEndsItsPageWait(t *testing.T) {
	for _, detached := range []bool{false, true} {
		t.Run("detached="+strconv.FormatBool(detached), func(t *testing.T) {
			in, all := behindThreePages(t, detached, time.Minute)
			b := in.broker
			c := in.subscribe(t, "topic=t", strconv.FormatUint(all[0].ID, 10))
			for range cap(b.reads) {
				b.reads <- struct{}{}
			}
			// The first page, read at Subscribe, arrives; the stream then
			// waits for a slot for the next one: nothing comes for a
			// second.
			for got := 0; ; got++ {
				select {
				case _, ok := <-c.events:
					if !ok {
						t.Fatalf("the stream ended after %d events", got)
					}
					continue
				case <-time.After(time.Second):
				}
				if got == 0 || got >= len(all)-1 {
					t.Fatalf("%d events before the wait, want the first page", got)
				}
				break
			}
			replayed := b.replayed.Load()
			c.cancel() // the client goes away while its stream waits
			waitFor(t, "the stream of the gone client to end", func() bool { return b.Stats().Subscribers == 0 })
			for range cap(b.reads) {
				<-b.reads
			}
			if n := b.replayed.Load(); n != replayed {
				t.Errorf("%d events read from the stream for a client gone", n-replayed)
			}
		})
	}
}

// A client gone while its resume waits at Subscribe (for a read slot, or
// NATS's answer) was refused nothing: its request is not counted in
// ssehub_requests_refused_total, nor in the warning of the event store's
// 503s, where an operator read it as the store busy or unreachable.
func TestClientGoneWhileItsResumeWaitsIsNoRefusal(t *testing.T) {
	in, all := behindThreePages(t, false, time.Minute)
	b := in.broker
	for range cap(b.reads) {
		b.reads <- struct{}{}
	}
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", in.URL+"/api/v1/events?topic=t", nil)
	req.Header.Set("Last-Event-ID", strconv.FormatUint(all[0].ID, 10))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := in.Client().Do(req); err == nil {
			resp.Body.Close()
			t.Error("the resume was answered while every read slot was taken")
		}
	}()
	waitFor(t, "the resume to wait", func() bool { return b.Stats().Subscribers == 1 })
	cancel()
	<-done
	var text string
	waitFor(t, "the resume's request to be counted", func() bool {
		text = metricsText(t, in)
		return strings.Contains(text, `ssehub_http_requests_total{code=`) && strings.Contains(text, `route="/api/v1/events"`)
	})
	for range cap(b.reads) {
		<-b.reads
	}
	for _, want := range []string{
		`ssehub_requests_refused_total{reason="store_busy"} 0`,
		`ssehub_requests_refused_total{reason="store_full"} 0`,
		`ssehub_requests_refused_total{reason="store_unreachable"} 0`,
	} {
		if !strings.Contains(text, "\n"+want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// metricsText returns in's /metrics.
func metricsText(t *testing.T, in *instance) string {
	t.Helper()
	resp, err := in.Client().Get(in.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// A deep resume is idle once its replay is handed out, not before; then
// it follows the instance's newest id, for events that are not its own
// too.
func TestDeepResumeIsIdleOnceItsReplayIsHandedOut(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	a := openBroker(t, opts) // makes the stream
	all := store(t, ns, a, append(repeat(event{"busy", 40}, 10), event{"quiet", 40}, event{"busy", 40}))
	opts.cold = true
	b := openBroker(t, opts) // its local history starts after them
	s, err := b.Subscribe([]string{"quiet"}, strconv.FormatUint(all[2].ID, 10))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if id, ok := s.Idle(); ok {
		t.Fatalf("Idle %d before the replay is handed out", id)
	}
	if got := replayAll(t, s, nil, 1<<20); len(got) != 1 || got[0].ID != all[10].ID {
		t.Fatalf("replay of %d events, want the one for quiet, %d", len(got), all[10].ID)
	}
	last := all[len(all)-1].ID
	if id, ok := s.Idle(); !ok || id < last {
		t.Fatalf("replay handed out: Idle %d %v, want at least %d true", id, ok, last)
	}
	newer := store(t, ns, a, []event{{"busy", 40}})[0].ID
	deadline := time.Now().Add(waitLimit)
	for {
		id, ok := s.Idle()
		if ok && id == newer {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Idle %d %v %v after an event for others, want %d true", id, ok, waitLimit, newer)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Events a resume's replay read from the stream and handed out before the
// local consumer delivered them are counted as delivered
// (ssehub_events_delivered_total) once, whether the local consumer gets
// to them before the subscription is closed (the local subscription
// counts them, and Take drops them) or after. Closed first, they went
// uncounted: only the local subscription counted them, and, closed, it
// counted nothing more.
func TestAReplayAheadOfTheLocalConsumerIsCountedDelivered(t *testing.T) {
	for _, closeFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("closeFirst=%v", closeFirst), func(t *testing.T) {
			ns := startNATS(t)
			opts := testBrokerOptions(ns)
			a := openBroker(t, opts)
			old := store(t, ns, a, repeat(event{"a", 40}, 5))
			opts.cold = true
			b := openBroker(t, opts) // its local history starts after them
			l := b.cur.Load().live
			l.mu.Lock() // the local consumer delivers nothing meanwhile
			locked := true
			unlock := func() {
				if locked {
					locked = false
					l.mu.Unlock()
				}
			}
			defer unlock()
			late := store(t, ns, a, repeat(event{"a", 40}, 3))
			before := b.Stats().Delivered
			s, err := b.Subscribe([]string{"a"}, strconv.FormatUint(old[0].ID, 10))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got := replayAll(t, s, nil, replayPageBytes)
			if want := append(old[1:], late...); !slices.EqualFunc(got, want, sameEvent) {
				t.Fatalf("replay %v, want %v", idsOf(got), idsOf(want))
			}
			if closeFirst {
				s.Close()
			}
			unlock()
			last, _ := b.cur.Load().ids.seq(late[len(late)-1].ID)
			waitFor(t, "the late events to reach b", func() bool { return b.cur.Load().seen.last() >= last })
			if !closeFirst {
				if more, _ := s.Take(nil, 0); len(more) != 0 {
					t.Fatalf("Take after the replay: %v, want nothing: the replay sent them", idsOf(more))
				}
				s.Close()
			}
			if d := b.Stats().Delivered - before; d != uint64(len(got)) {
				t.Errorf("Stats().Delivered grew by %d, want %d: each event handed out once", d, len(got))
			}
		})
	}
}

// A resume that panics once its local subscription is made (here in the
// test's hook, in the place of a fault reading the stream) leaves no
// subscription behind: its place among MaxSubscribers is freed as the
// panic goes up, as it is when reading the stream fails. It stayed
// taken, and the subscription registered, for the instance's life.
func TestAResumeThatPanicsFreesItsPlace(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	a := openBroker(t, opts)
	old := store(t, ns, a, repeat(event{"a", 40}, 3))
	opts.cold = true
	opts.MaxSubscribers = 1
	b := openBroker(t, opts) // its local history starts after them
	b.subscribed = func() { panic("fault") }
	func() {
		defer func() {
			if r := recover(); r != "fault" {
				t.Errorf("recovered %v, want the fault", r)
			}
		}()
		s, err := b.Subscribe([]string{"a"}, strconv.FormatUint(old[0].ID, 10))
		t.Errorf("Subscribe returned %v, %v; want the panic", s, err)
	}()
	if n := b.Stats().Subscribers; n != 0 {
		t.Errorf("%d subscribers after the panic, want 0", n)
	}
	b.subscribed = nil
	s, err := b.Subscribe([]string{"a"}, strconv.FormatUint(old[0].ID, 10))
	if err != nil {
		t.Fatalf("the next resume: %v", err)
	}
	s.Close()
}

// As TestAReplayAheadOfTheLocalConsumerIsCountedDelivered, the local
// consumer delivering them, and the subscription closed (a client gone,
// or Close), while Replay is handing them out: each is counted once. Replay
// looked at what the local subscription had been sent before it took
// its lock, and counted again those sent to it in between.
func TestAReplayAheadClosedWhileHandedOutIsCountedOnce(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	a := openBroker(t, opts)
	old := store(t, ns, a, repeat(event{"a", 40}, 2))
	opts.cold = true
	b := openBroker(t, opts) // its local history starts after them
	h := b.cur.Load()
	h.live.mu.Lock() // the local consumer delivers nothing meanwhile
	late := store(t, ns, a, repeat(event{"a", 40}, 3))
	last, _ := h.ids.seq(late[len(late)-1].ID)
	before := b.Stats().Delivered
	s, err := b.Subscribe([]string{"a"}, strconv.FormatUint(old[0].ID, 10))
	if err != nil {
		h.live.mu.Unlock()
		t.Fatal(err)
	}
	b.handingOut = func() {
		b.handingOut = nil
		h.live.mu.Unlock()
		waitFor(t, "the late events to reach b", func() bool { return h.seen.last() >= last })
		s.Close()
	}
	got := replayAll(t, s, nil, replayPageBytes)
	if want := append(old[1:], late...); !slices.EqualFunc(got, want, sameEvent) {
		t.Fatalf("replay %v, want %v", idsOf(got), idsOf(want))
	}
	if d := b.Stats().Delivered - before; d != uint64(len(got)) {
		t.Errorf("Stats().Delivered grew by %d, want %d: each event handed out once", d, len(got))
	}
}
