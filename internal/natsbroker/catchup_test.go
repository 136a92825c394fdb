package natsbroker

import (
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

// A deep resume reads its replay from the stream a page at a time while
// the live events its patterns match queue in its local subscription. On
// a busy topic more of them arrive meanwhile than SubscriberBuffer holds:
// the subscription was dropped as a slow subscriber though its client
// read at once and every event it had not been sent was in the stream.
// It reads them from the stream instead, past the replay's first end,
// and hands over to live once caught up: every event once, in order, no
// drop.
func TestDeepResumeOutrunByLiveEventsReadsThemFromTheStream(t *testing.T) {
	eachPublishMode(t, func(t *testing.T, options func(*natsServer) Options) {
		ns := startNATS(t)
		opts := options(ns)
		opts.HistorySize = 5000
		a := openBroker(t, opts)
		all := store(t, ns, a, repeat(event{"a", 40}, 3*replayBatch))
		opts.cold = true
		opts.SubscriberBuffer = 8
		b := openBroker(t, opts) // its local history starts after them
		from := all[0].ID
		s, err := b.Subscribe([]string{"a"}, strconv.FormatUint(from, 10))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if s.Reset() != "" {
			t.Fatalf("reset %q", s.Reset())
		}
		var got []*stream.Message
		for pages := 0; ; pages++ {
			var done bool
			if got, done = s.Replay(got, replayPageBytes); done {
				break
			}
			if pages > 100 {
				t.Fatal("Replay is never done")
			}
			if pages >= 4 {
				continue // the replay catches up
			}
			// Live events, more than the queue holds, at each of the
			// first pages: a steady publisher on a busy topic.
			live := store(t, ns, a, repeat(event{"a", 40}, 3*spillBuffer))
			all = append(all, live...)
			last, _ := b.cur.Load().ids.seq(live[len(live)-1].ID)
			waitFor(t, "the live events to reach b", func() bool { return b.cur.Load().seen.last() >= last })
		}
		if err := s.Err(); err != nil {
			t.Fatalf("Err = %v after the replay, want nil", err)
		}
		all = append(all, store(t, ns, a, []event{{"a", 40}})...)
		want := all[1:]
		got = takeThrough(t, s, got, want[len(want)-1].ID)
		if !slices.EqualFunc(got, want, sameEvent) {
			t.Fatalf("got %d events %v\nwant %d %v", len(got), idsOf(got), len(want), idsOf(want))
		}
		if d := b.Stats().Dropped; d != 0 {
			t.Errorf("Stats().Dropped = %d, want 0", d)
		}
	})
}

// A client that reads at once and resumes thousands of events back on a
// topic a steady publisher keeps busy gets every event once, in order,
// and is not dropped: with a small hub.subscriber_buffer its queue filled
// while the replay was read from the stream, and its stream ended as a
// slow subscriber's.
func TestDeepResumeOnABusyTopicIsNotDropped(t *testing.T) {
	eachPublishMode(t, func(t *testing.T, options func(*natsServer) Options) {
		ns := startNATS(t)
		opts := options(ns)
		opts.HistorySize = 50_000
		// Each page of the replay is read within PublishTimeout, or the
		// stream ends ("nats replay: broker unavailable: context deadline
		// exceeded"), as it should when NATS does not answer in time; 2 s
		// were not enough for the pages of this resume with -race on a
		// loaded machine, and the stream ended, not dropped as slow. The
		// publisher's publishes get as long.
		opts.PublishTimeout = waitLimit
		a := openBroker(t, opts)
		var all []*stream.Message
		for range 8 { // within nats.go's 4000 async publishes in flight
			all = append(all, store(t, ns, a, repeat(event{"a", 40}, replayBatch))...)
		}
		if t.Failed() {
			t.FailNow()
		}
		opts.cold = true
		opts.SubscriberBuffer = 64
		in := newInstance(t, opts) // its local history starts after them

		var mu sync.Mutex
		var published []uint64
		stop := make(chan struct{})
		stopOnce := sync.OnceFunc(func() { close(stop) })
		var wg sync.WaitGroup
		defer wg.Wait()
		defer stopOnce()
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				msg, _, err := a.Publish(stream.Publication{Topic: "a", Data: "live"})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				published = append(published, msg.ID)
				mu.Unlock()
			}
		})
		// The publisher is under way before the resume.
		waitFor(t, "the publisher to start", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(published) >= 10
		})

		c := in.subscribe(t, "topic=a", strconv.FormatUint(all[0].ID, 10))
		var got []string
		next := func() {
			t.Helper()
			select {
			case ev, ok := <-c.events:
				if !ok {
					t.Fatalf("the stream ended after %d events (%d replayed): broker %+v\n%s", len(got), len(all)-1, in.broker.Stats(), metricLines(in.metrics(t), "ssehub_streams_ended_total"))
				}
				got = append(got, ev.ID)
			case <-time.After(2 * waitLimit): // a page may wait for its read slot, then be read: PublishTimeout each
				t.Fatalf("no event within %v after %d events (%d replayed)", 2*waitLimit, len(got), len(all)-1)
			}
		}
		for len(got) < len(all)-1+200 {
			next()
		}
		stopOnce()
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		want := make([]string, 0, len(all)+len(published))
		for _, m := range all[1:] {
			want = append(want, m.IDString())
		}
		for _, id := range published {
			want = append(want, strconv.FormatUint(id, 10))
		}
		for len(got) < len(want) {
			next()
		}
		if !slices.Equal(got, want) {
			t.Fatalf("got %d events, want %d: first difference at %d", len(got), len(want), firstDifference(got, want))
		}
		if d := in.broker.Stats().Dropped; d != 0 {
			t.Errorf("Stats().Dropped = %d, want 0", d)
		}
		t.Logf("%d replayed, %d live", len(all)-1, len(published))
	})
}

// firstDifference is the index of the first element where x and y
// differ.
func firstDifference(x, y []string) int {
	for i := range min(len(x), len(y)) {
		if x[i] != y[i] {
			return i
		}
	}
	return min(len(x), len(y))
}

// A resume answered with a Reset, or a deep one of overlapping patterns,
// outrun by live events before its first Replay: every matching event
// after its start once, in order, no drop, and each counted once as
// delivered. Stats().Delivered went down as the local queue was let go
// of (it is ssehub_events_delivered_total, a counter).
func TestResumesOutrunByLiveEventsCountEachEventOnce(t *testing.T) {
	for _, tc := range []struct {
		name     string
		last     func(old []*stream.Message) string
		patterns []string
	}{
		{"reset", func([]*stream.Message) string { return "nope" }, []string{"a.x"}},
		{"reset overlapping", func([]*stream.Message) string { return "nope" }, []string{"a.*", "*.x"}},
		{"deep overlapping", func(old []*stream.Message) string { return old[0].IDString() }, []string{"a.*", "*.x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := startNATS(t)
			opts := testBrokerOptions(ns)
			a := openBroker(t, opts)
			old := store(t, ns, a, []event{{"a.x", 10}, {"b.x", 10}, {"a.y", 10}, {"b.y", 10}})
			opts.cold = true
			opts.SubscriberBuffer = 4
			b := openBroker(t, opts)
			s, err := b.Subscribe(tc.patterns, tc.last(old))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var delivered uint64
			// Stats().Delivered is a counter: it never goes down.
			check := func() {
				t.Helper()
				d := b.Stats().Delivered
				if d < delivered {
					t.Fatalf("Stats().Delivered went down from %d to %d", delivered, d)
				}
				delivered = d
			}
			var want []*stream.Message
			if s.Reset() == "" {
				want = append(want, old[1:3]...)
			}
			match := func(m *stream.Message) bool {
				return slices.ContainsFunc(tc.patterns, func(p string) bool { return stream.Match(p, m.Topic) })
			}
			// One at a time, each reaching b before the next: the queue
			// is let go of now and then, Stats() looked at each time.
			for _, ev := range slices.Repeat([]event{{"a.x", 10}, {"b.y", 10}, {"b.x", 10}, {"a.y", 10}}, 10) {
				live := store(t, ns, a, []event{ev})
				if match(live[0]) {
					want = append(want, live[0])
				}
				last, _ := b.cur.Load().ids.seq(live[0].ID)
				waitFor(t, "the live event to reach b", func() bool { return b.cur.Load().seen.last() >= last })
				check()
			}
			var got []*stream.Message
			for pages := 0; ; pages++ {
				var done bool
				got, done = s.Replay(got, 1)
				check()
				if done {
					break
				}
				if pages > 1000 {
					t.Fatal("Replay is never done")
				}
			}
			if err := s.Err(); err != nil {
				t.Fatalf("Err = %v after the replay, want nil", err)
			}
			lastLive := store(t, ns, a, []event{{"a.x", 10}})
			want = append(want, lastLive...)
			got = takeThrough(t, s, got, lastLive[0].ID)
			if !slices.EqualFunc(got, want, sameEvent) {
				t.Fatalf("got %d events %v\nwant %d %v", len(got), idsOf(got), len(want), idsOf(want))
			}
			if st := b.Stats(); st.Dropped != 0 || st.Delivered != uint64(len(got)) {
				t.Errorf("Stats() = %d dropped, %d delivered; want 0, %d: each event counted once", st.Dropped, st.Delivered, len(got))
			}
		})
	}
}

// A deep resume whose replay reads on from the stream past its first end
// (its queue spilling on a busy topic) but whose client reads more slowly
// than the topic is published to never catches up. It does not read
// pages for ever, holding a page and taking the instance's read slots:
// once the stream has let go of its next page it ends as a slow
// subscriber, counted as dropped, and gives back its slots and consumers.
func TestSlowSpillingResumeIsDroppedOnceTheStreamLetsGo(t *testing.T) {
	ns, a, b, s, all := deepSpillingResume(t, 600)
	dropped := b.Stats().Dropped
	publish := func(n int) {
		live := store(t, ns, a, repeat(event{"a", 40}, n))
		if t.Failed() {
			t.FailNow()
		}
		last, _ := b.cur.Load().ids.seq(live[len(live)-1].ID)
		waitFor(t, "the live events to reach b", func() bool { return b.cur.Load().seen.last() >= last })
	}
	got, _ := s.Replay(nil, 1)
	publish(3 * spillBuffer) // spilled before the replay's first end
	// The rest of the replay's first end, at once.
	got, done := s.Replay(got, frameBytes(all[1:])-frameBytes(got))
	if done || !slices.EqualFunc(got, all[1:], sameEvent) {
		t.Fatalf("Replay: %d events, done %v; want the %d of the first end, and more to read", len(got), done, len(all)-1)
	}
	steps := 0
	for ; !done; steps++ {
		if steps > 200 {
			t.Fatalf("after %d steps %d events handed out and the replay is not done", steps, len(got))
		}
		publish(100) // more than the client reads in a step
		got, done = s.Replay(got, 200)
	}
	if err := s.Err(); !errors.Is(err, stream.ErrSlowConsumer) {
		t.Fatalf("Err = %v after %d steps and %d events, want ErrSlowConsumer", err, steps, len(got))
	}
	if d := b.Stats().Dropped - dropped; d != 1 {
		t.Errorf("Stats().Dropped grew by %d, want 1", d)
	}
	ended(t, s)
	if n, m := len(b.held), len(b.reads); n != 0 || m != 0 {
		t.Errorf("%d pages held and %d reads under way after the drop, want none", n, m)
	}
	waitFor(t, "the pages' consumers to go", func() bool { return consumers(t, ns) == 2 }) // a's and b's own
	t.Logf("dropped after %d steps, %d events handed out", steps, len(got))
}

// A deep resume on a topic that gets more than hub.subscriber_buffer
// events while one page is read spills at every page and never catches
// up, though its client reads each page at once: it read a page from the
// stream per queue's worth of events for as long as the topic was busy,
// a consumer and a read slot each, where a live subscriber reads none, and
// never went over to the local history that held them all. Once it has
// read on past its replay's first end by more than the stream holds
// (HistorySize), it is dropped as a slow subscriber, as it was before
// its queue spilled; its client resumes from the local history.
func TestSpillingResumeThatNeverCatchesUpIsDropped(t *testing.T) {
	ns, a, b, s, all := deepSpillingResume(t, 1000)
	sub := s.(*subscription)
	dropped := b.Stats().Dropped
	var got []*stream.Message
	done, steps := false, 0
	for ; !done; steps++ {
		if steps > 200 {
			t.Fatalf("after %d steps (%d events published) %d events handed out and the replay is not done", steps, len(all), len(got))
		}
		// More than the queue holds, while each page is read.
		live := store(t, ns, a, repeat(event{"a", 40}, 3*spillBuffer))
		if t.Failed() {
			t.FailNow()
		}
		all = append(all, live...)
		last, _ := b.cur.Load().ids.seq(live[len(live)-1].ID)
		waitFor(t, "the live events to reach b", func() bool { return b.cur.Load().seen.last() >= last })
		// The next page, read now, handed out whole: the client reads
		// at once.
		if got, done = s.Replay(got, 1); !done && len(sub.page) > 0 {
			got, done = s.Replay(got, frameBytes(sub.page))
		}
	}
	if err := s.Err(); !errors.Is(err, stream.ErrSlowConsumer) {
		t.Fatalf("Err = %v after %d steps, want ErrSlowConsumer", err, steps)
	}
	if len(got) == 0 || !slices.EqualFunc(got, all[1:len(got)+1], sameEvent) {
		t.Fatalf("handed out %d events, not the first of those after the resume's id", len(got))
	}
	if d := b.Stats().Dropped - dropped; d != 1 {
		t.Errorf("Stats().Dropped grew by %d, want 1", d)
	}
	ended(t, s)
	again, err := b.Subscribe([]string{"a"}, got[len(got)-1].IDString())
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if _, fromStream := again.(*subscription); fromStream || again.Reset() != "" {
		t.Errorf("the reconnect reads the stream (%v) or is reset (%q), want a resume from the local history", fromStream, again.Reset())
	}
	t.Logf("dropped after %d steps, %d events handed out", steps, len(got))
}

// deepSpillingResume stores 300 events of topic a in a stream that keeps
// historySize, through instance a, and resumes from the first of them on
// b, an instance started after them (its local history does not hold
// them) with a queue of spillBuffer: a resume read from the stream, whose
// queue spills once a topic this busy outruns it. all is what a stored.
func deepSpillingResume(t *testing.T, historySize int) (ns *natsServer, a, b *Broker, s stream.Subscription, all []*stream.Message) {
	t.Helper()
	ns = startNATS(t)
	opts := testBrokerOptions(ns)
	opts.HistorySize = historySize
	a = openBroker(t, opts)
	all = store(t, ns, a, repeat(event{"a", 40}, 300))
	opts.cold = true
	opts.SubscriberBuffer = spillBuffer
	b = openBroker(t, opts)
	s, err := b.Subscribe([]string{"a"}, strconv.FormatUint(all[0].ID, 10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return ns, a, b, s, all
}

// spillBuffer is the queue of deepSpillingResume's subscription.
const spillBuffer = 8

// A deep resume whose topic gets more live events than SubscriberBuffer
// holds right after its local subscription is made, before its replay is
// read, is not dropped: those events are in the stream, and the replay
// reads on to them. The local subscription spilled only from a moment
// after it was made, and one that overflowed before was dropped as a
// slow subscriber.
func TestDeepResumeOutrunAsItSubscribesIsNotDropped(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	a := openBroker(t, opts)
	all := store(t, ns, a, repeat(event{"a", 40}, 10))
	opts.cold = true
	opts.SubscriberBuffer = 2
	b := openBroker(t, opts) // its local history starts after them
	b.subscribed = func() {
		b.subscribed = nil
		live := store(t, ns, a, repeat(event{"a", 40}, 3*opts.SubscriberBuffer))
		all = append(all, live...)
		last, _ := b.cur.Load().ids.seq(live[len(live)-1].ID)
		waitFor(t, "the live events to reach b", func() bool { return b.cur.Load().seen.last() >= last })
	}
	s, err := b.Subscribe([]string{"a"}, strconv.FormatUint(all[0].ID, 10))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Reset() != "" {
		t.Fatalf("reset %q", s.Reset())
	}
	got := replayAll(t, s, nil, replayPageBytes)
	if err := s.Err(); err != nil {
		t.Fatalf("Err = %v after the replay, want nil", err)
	}
	all = append(all, store(t, ns, a, []event{{"a", 40}})...)
	want := all[1:]
	got = takeThrough(t, s, got, want[len(want)-1].ID)
	if !slices.EqualFunc(got, want, sameEvent) {
		t.Fatalf("got %d events %v\nwant %d %v", len(got), idsOf(got), len(want), idsOf(want))
	}
	if d := b.Stats().Dropped; d != 0 {
		t.Errorf("Stats().Dropped = %d, want 0", d)
	}
}
