package stream

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"weak"
)

// publishWeak publishes n events to topic and returns weak pointers to
// them: the caller keeps no reference.
func publishWeak(t *testing.T, b *Memory, topic string, n int) []weak.Pointer[Message] {
	t.Helper()
	out := make([]weak.Pointer[Message], n)
	for i := range out {
		out[i] = weak.Make(mustPublish(t, b, topic, "", strconv.Itoa(i)))
	}
	return out
}

// A resume holds a position in the history, not a copy of its replay:
// events the history evicts while the subscriber is still reading its
// replay are freed, and reading on ends the subscription as too slow, with
// nothing of its queue handed out after the gap.
func TestAResumeHoldsNoEvictedEvent(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{HistorySize: 8})
	first := mustPublish(t, b, "a", "", "first").IDString()
	old := publishWeak(t, b, "a", 7) // ids 2..8: the replay
	s := mustSubscribe(t, b, first, "a")

	got, done := s.Replay(nil, 1)
	if done || len(got) != 1 || got[0].ID != 2 {
		t.Fatalf("first piece %v, done %v; want [2], not done", ids(got), done)
	}
	got = nil
	publishWeak(t, b, "a", 16) // ids 9..24: 17..24 retained, 9..24 queued
	runtime.GC()
	for i, w := range old {
		if w.Value() != nil {
			t.Errorf("event %d, evicted from the history, is still held", i+2)
		}
	}

	got, done = s.Replay(got, 1)
	if !done || len(got) != 0 {
		t.Fatalf("replay after its rest was evicted: %v, done %v; want nothing, done", ids(got), done)
	}
	if !errors.Is(s.Err(), ErrSlowConsumer) {
		t.Fatalf("Err() = %v, want ErrSlowConsumer", s.Err())
	}
	if st := b.Stats(); st.Dropped != 1 || st.Subscribers != 0 || st.Replayed != 1 {
		t.Errorf("stats %+v, want 1 dropped, 0 subscribers, 1 replayed", st)
	}
	if msgs, open := s.Take(nil, 0); len(msgs) != 0 || open {
		t.Errorf("Take after the gap: %v, open %v; want nothing, ended", ids(msgs), open)
	}
	select {
	case <-s.Ready():
	default:
		t.Error("Ready is not closed")
	}
	// The client reconnects with the last id it got and is told.
	again := mustSubscribe(t, b, "2", "a")
	if again.Reset() == "" {
		t.Error("resume from the last id sent: no reset, want one")
	}
}

// A resume from the oldest position the history holds, whose first event
// the history lets go of before the first Replay (one publish, to a topic
// the subscription does not match), ends with ErrResumeOvertaken, not
// counted as a drop: the subscriber was sent nothing, and subscribing
// again with the same id is answered with a Reset. One that has been
// handed an event of its replay is still dropped as too slow
// (TestAResumeHoldsNoEvictedEvent).
func TestAResumeOvertakenBeforeItsReplayIsNoDrop(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{HistorySize: 5})
	mustPublish(t, b, "a", "", "first") // id 1, of the replay
	for range 4 {
		mustPublish(t, b, "b", "", "other") // ids 2..5
	}
	oldest := "0" // the position before id 1, the oldest retained
	s := mustSubscribe(t, b, oldest, "a")
	if s.Reset() != "" {
		t.Fatalf("resume from %s: reset %q, want a replay", oldest, s.Reset())
	}
	mustPublish(t, b, "b", "", "evicts 1") // id 6

	got, done := s.Replay(nil, 1<<20)
	if !done || len(got) != 0 {
		t.Fatalf("replay after its start was evicted: %v, done %v; want nothing, done", ids(got), done)
	}
	if err := s.Err(); !errors.Is(err, ErrResumeOvertaken) || errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("Err() = %v, want ErrResumeOvertaken", err)
	}
	// It keeps its place until closed (TestAnOvertakenResumeKeepsItsPlace).
	if st := b.Stats(); st.Dropped != 0 || st.Subscribers != 1 {
		t.Errorf("stats %+v, want 0 dropped, 1 subscriber", st)
	}
	if msgs, open := s.Take(nil, 0); len(msgs) != 0 || open {
		t.Errorf("Take after the gap: %v, open %v; want nothing, ended", ids(msgs), open)
	}
	again := mustSubscribe(t, b, oldest, "a")
	if again.Reset() == "" {
		t.Error("resume again from the same id: no reset, want one")
	}
}

// A resume overtaken before its replay keeps its place among
// MaxSubscribers until it is closed, and the resume made in its place
// (Resubscribe) takes that place over: on a full broker another
// subscriber is refused meanwhile, not the resume. The place was freed
// when the subscription ended, another subscriber could take it, and the
// resume was then refused.
func TestAnOvertakenResumeKeepsItsPlace(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{HistorySize: 5, MaxSubscribers: 1})
	mustPublish(t, b, "a", "", "first") // id 1, of the replay
	for range 4 {
		mustPublish(t, b, "b", "", "other") // ids 2..5
	}
	s := mustSubscribe(t, b, "0", "a")
	mustPublish(t, b, "b", "", "evicts 1")
	if _, done := s.Replay(nil, 1<<20); !done || !errors.Is(s.Err(), ErrResumeOvertaken) {
		t.Fatalf("replay: done %v, Err %v; want done, ErrResumeOvertaken", done, s.Err())
	}
	if other, err := b.Subscribe([]string{"c"}, ""); !errors.Is(err, ErrTooManySubscribers) {
		if other != nil {
			other.Close()
		}
		t.Fatalf("another subscriber while the overtaken one is not closed: %v, want ErrTooManySubscribers", err)
	}
	again, err := b.Resubscribe(t.Context(), s, []string{"a"}, "0")
	if err != nil {
		t.Fatalf("the resume in its place: %v", err)
	}
	if again.Reset() == "" {
		t.Error("the resume in its place: no reset, want one")
	}
	live := mustPublish(t, b, "a", "", "live")
	if got := queued(again); !slices.Equal(got, []uint64{live.ID}) {
		t.Errorf("queued %v, want the live event %d", got, live.ID)
	}
	s.Close() // its place is again's now: nothing to free
	if st := b.Stats(); st.Subscribers != 1 {
		t.Errorf("%d subscribers after the overtaken one closed, want 1, the resume", st.Subscribers)
	}
	// In place of one that holds none, it is Subscribe.
	if other, err := b.Resubscribe(t.Context(), s, []string{"a"}, "0"); !errors.Is(err, ErrTooManySubscribers) {
		if other != nil {
			other.Close()
		}
		t.Fatalf("a second resume in place of the same one: %v, want ErrTooManySubscribers", err)
	}
	again.Close()
	if st := b.Stats(); st.Subscribers != 0 {
		t.Errorf("%d subscribers once all closed, want 0", st.Subscribers)
	}
}

// Closed, an overtaken subscription frees its place, whether its own
// replay was overtaken or a broker reading the replay from elsewhere
// ended it so (Overtake): a subscriber that does not subscribe again
// holds none.
func TestClosingAnOvertakenResumeFreesItsPlace(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{HistorySize: 5, MaxSubscribers: 1})
	mustPublish(t, b, "b", "", "other")
	s := mustSubscribe(t, b, "", "a")
	b.Overtake(s)
	if err := s.Err(); !errors.Is(err, ErrResumeOvertaken) {
		t.Fatalf("Err() = %v after Overtake, want ErrResumeOvertaken", err)
	}
	select {
	case <-s.Ready():
	default:
		t.Error("Ready is not closed")
	}
	if st := b.Stats(); st.Subscribers != 1 {
		t.Errorf("%d subscribers, want 1: the overtaken one keeps its place", st.Subscribers)
	}
	s.Close()
	s.Close()
	if st := b.Stats(); st.Subscribers != 0 {
		t.Errorf("%d subscribers once closed, want 0", st.Subscribers)
	}
	again := mustSubscribe(t, b, "", "a")
	again.Close()
}

// A resume from before a restart (a Reset, and a replay of every retained
// event) whose history lets go of its oldest events before the first
// Replay is not overtaken: its subscriber was told events may have been
// missed, and it is sent what the history holds when it reads, then live
// events. It ended with ErrResumeOvertaken, and subscribing again with the
// same id gave a replay of every retained event again, which the next
// publish overtook again on a busy hub.
func TestAResumeFromBeforeARestartIsNotOvertaken(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{HistorySize: 5, FirstID: 100})
	mustPublish(t, b, "a", "", "let go of") // id 100
	mustPublish(t, b, "b", "", "other")     // id 101
	retained := mustPublish(t, b, "a", "", "retained")
	mustPublish(t, b, "b", "", "other") // ids 103, 104
	mustPublish(t, b, "b", "", "other")
	s := mustSubscribe(t, b, "5", "a")
	if s.Reset() == "" {
		t.Fatal("resume from before the restart: no reset, want one")
	}
	mustPublish(t, b, "b", "", "evicts 100") // id 105
	live := mustPublish(t, b, "a", "", "live")

	got, done := s.Replay(nil, 1<<20)
	if !done || !slices.Equal(ids(got), []uint64{retained.ID}) {
		t.Fatalf("replay after its start was evicted: %v, done %v; want [%d], done", ids(got), done, retained.ID)
	}
	if err := s.Err(); err != nil {
		t.Fatalf("Err() = %v, want none", err)
	}
	if got := queued(s); !slices.Equal(got, []uint64{live.ID}) {
		t.Errorf("queued %v, want the live event %d", got, live.ID)
	}
	if st := b.Stats(); st.Dropped != 0 || st.Subscribers != 1 {
		t.Errorf("stats %+v, want 0 dropped, 1 subscriber", st)
	}
}

// Reading a replay in pieces, whatever their size, hands out exactly what
// Subscribe used to copy (the retained matching events after the id, ids
// Deliver skipped included), and the live events published meanwhile
// follow it with no gap and no duplicate.
func TestAReplayInPiecesIsTheRetainedHistory(t *testing.T) {
	topics := []string{"a", "b", "a.x", "a.y", "c.x"}
	patterns := [][]string{{">"}, {"a"}, {"a.*"}, {"a", "c.x"}, {"a.>", "b", ">"}, {"zz"}}
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 1))
		size := 4 + r.IntN(40)
		b := newTestMemory(t, MemoryOptions{HistorySize: size, HistoryMaxBytes: 1 << 20, SubscriberBuffer: 1 << 10})
		id := uint64(1)
		for range r.IntN(3 * size) {
			id += 1 + uint64(r.IntN(2)) // skips an id now and then
			if _, err := b.Deliver(id, topics[r.IntN(len(topics))], "", "x"); err != nil {
				t.Fatal(err)
			}
		}
		// Each resume publishes live events, which move the history on:
		// the resume points are counted from its oldest retained id.
		for k := range uint64(size + 1) {
			for _, ps := range patterns {
				after := max(b.hist.oldest-1, b.hist.first) + k
				if after >= b.hist.next {
					break
				}
				name := fmt.Sprintf("seed %d, history %d, after %d, %v", seed, size, after, ps)
				want := b.hist.since(after)
				s := mustSubscribe(t, b, strconv.FormatUint(after, 10), ps...)
				if s.Reset() != "" {
					t.Fatalf("%s: reset %q", name, s.Reset())
				}
				want = slices.DeleteFunc(want, func(m *Message) bool { return !s.(*memorySubscription).matches(m.Topic) })
				var got []*Message
				var live []*Message // published during the replay, matching
				for done := false; !done; {
					got, done = s.Replay(got, r.IntN(40)) // a frame is 13 to 20 bytes
					if r.IntN(3) == 0 {
						// It may evict the oldest id, but each piece
						// advances the replay by one id at least: the
						// rest of the replay is never evicted.
						m, _, err := b.Publish(Publication{Topic: topics[r.IntN(len(topics))], Data: "live"})
						if err != nil {
							t.Fatal(err)
						}
						if s.(*memorySubscription).matches(m.Topic) {
							live = append(live, m)
						}
					}
				}
				if !slices.Equal(got, want) {
					t.Fatalf("%s: replay %v, want %v", name, ids(got), ids(want))
				}
				taken, open := s.Take(nil, 0)
				if !open || !slices.Equal(taken, live) {
					t.Fatalf("%s: live %v (open %v), want %v", name, ids(taken), open, ids(live))
				}
				if s.Err() != nil {
					t.Fatalf("%s: %v", name, s.Err())
				}
				s.Close()
			}
		}
	}
}

// A replay longer than what Replay looks at under the broker's lock at
// once (replayScan ids) comes out whole, in pieces of the byte budget.
func TestALongReplayComesOutWhole(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{HistorySize: 5 * replayScan})
	for i := range 5 * replayScan {
		mustPublish(t, b, "t"+strconv.Itoa(i%4), "", "x")
	}
	for _, budget := range []int{1, 100, 64 << 10} {
		s := mustSubscribe(t, b, "1", "t1")
		want := slices.DeleteFunc(b.hist.since(1), func(m *Message) bool { return m.Topic != "t1" })
		var got []*Message
		pieces := 0
		for done := false; !done; pieces++ {
			n := len(got)
			got, done = s.Replay(got, budget)
			if !done && len(got) == n {
				t.Fatalf("budget %d: an empty piece before the end", budget)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("budget %d: %d events replayed, want %d", budget, len(got), len(want))
		}
		if budget == 1 && pieces < len(want) {
			t.Errorf("budget 1: %d pieces for %d events", pieces, len(want))
		}
		s.Close()
	}
}

// TestReplayOfNoMatchReturnsInPieces resumes a subscription whose topic
// has nothing in a long history: each Replay call looks at a bounded
// stretch of it and returns none, not done, so that the stream asking
// for it can watch its client and its heartbeat in between, and the last
// call is done.
func TestReplayOfNoMatchReturnsInPieces(t *testing.T) {
	const (
		perCall = replayCallScans * replayScan
		events  = 3*perCall + 1
	)
	b := newTestMemory(t, MemoryOptions{HistorySize: events + 1})
	first := mustPublish(t, b, "a", "", "first").IDString()
	for range events {
		mustPublish(t, b, "a", "", "x")
	}
	s := mustSubscribe(t, b, first, "b")
	for call := 1; call <= 4; call++ {
		got, done := s.Replay(nil, 1<<30)
		if len(got) != 0 || done != (call == 4) {
			t.Fatalf("call %d of the replay of %d events matching none: %v, done %v; want nothing, done only at call 4 (%d events a call)",
				call, events, ids(got), done, perCall)
		}
	}
}

// A subscription that spills (Spill) lets go of its queue and the event
// to queue when the queue is full, rather than be dropped, and StopSpill
// tells the newest id let go of until the replay read elsewhere covers
// it; once stopped, a full queue drops it as any other.
func TestASpillingSubscriptionLetsGoOfItsQueue(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{SubscriberBuffer: 2})
	s := mustSubscribe(t, b, "", "a")
	b.Spill(s)
	var pub []*Message
	for range 5 {
		// The first two queued, the queue let go of at the third, the
		// last two queued.
		pub = append(pub, mustPublish(t, b, "a", "", "x"))
	}
	if err := s.Err(); err != nil {
		t.Fatalf("Err() = %v while spilling, want nil", err)
	}
	if spilled, stopped := b.StopSpill(s, pub[1].ID); stopped || spilled != pub[2].ID {
		t.Fatalf("StopSpill(%d) = %d, %v; want %d, not stopped", pub[1].ID, spilled, stopped, pub[2].ID)
	}
	if spilled, stopped := b.StopSpill(s, pub[2].ID); !stopped || spilled != 0 {
		t.Fatalf("StopSpill(%d) = %d, %v; want stopped", pub[2].ID, spilled, stopped)
	}
	if got, open := s.Take(nil, 0); !open || !slices.Equal(ids(got), ids(pub[3:])) {
		t.Fatalf("Take = %v, %v; want %v, open", ids(got), open, ids(pub[3:]))
	}
	for range 3 {
		mustPublish(t, b, "a", "", "x")
	}
	if err := s.Err(); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("Err() = %v once stopped and overflowed, want ErrSlowConsumer", err)
	}
	if st := b.Stats(); st.Dropped != 1 {
		t.Errorf("Stats().Dropped = %d, want 1: the drop after StopSpill only", st.Dropped)
	}
}

// A resume whose topic gets more live events while its replay is sent
// than its queue holds is not dropped: the events are in the history,
// and the replay reads on to them, then hands over to the queue. Every
// event once, in order. It was dropped as a slow subscriber though it
// took each piece at once.
func TestAResumeOutrunByLiveEventsReadsThemFromTheHistory(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{HistorySize: 5000, SubscriberBuffer: 4})
	var all []*Message
	for range 1000 {
		all = append(all, mustPublish(t, b, "a", "", "old"))
	}
	s := mustSubscribe(t, b, all[0].IDString(), "a")
	var got []*Message
	for pieces := 0; ; pieces++ {
		var done bool
		if got, done = s.Replay(got, 4<<10); done {
			break
		}
		if pieces > 1000 {
			t.Fatal("Replay is never done")
		}
		if pieces < 10 {
			for range 10 { // more than the queue holds, each piece
				all = append(all, mustPublish(t, b, "a", "", "live"))
			}
		}
	}
	if err := s.Err(); err != nil {
		t.Fatalf("Err() = %v after the replay, want nil", err)
	}
	all = append(all, mustPublish(t, b, "a", "", "last"))
	got, _ = s.Take(got, 0)
	if !slices.Equal(ids(got), ids(all[1:])) {
		t.Fatalf("got %d events %v\nwant %d %v", len(got), ids(got), len(all)-1, ids(all[1:]))
	}
	// Each event counted delivered once: those let go of from the queue
	// are counted as replayed instead.
	if st := b.Stats(); st.Dropped != 0 || st.Delivered != uint64(len(got)) {
		t.Errorf("Stats() = %d dropped, %d delivered; want 0, %d", st.Dropped, st.Delivered, len(got))
	}
}

// A resumer that stops reading in the middle of its replay (its stream
// blocked in a write) is dropped as too slow once the history has evicted
// what it has not read and live events overflow its queue: not only at
// its next Replay call, which a blocked stream does not make. It kept its
// place among MaxSubscribers, unlinked from nothing, until then.
func TestAStalledResumeIsDroppedOnceTheHistoryPassesIt(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{HistorySize: 16, SubscriberBuffer: 4})
	first := mustPublish(t, b, "a", "", "first").IDString()
	for range 10 {
		mustPublish(t, b, "a", "", "old")
	}
	s := mustSubscribe(t, b, first, "a")
	if got, done := s.Replay(nil, 1); done || len(got) != 1 {
		t.Fatalf("first piece %v, done %v; want one event, not done", ids(got), done)
	}
	for range 40 { // the history passes the replay; the queue overflows
		mustPublish(t, b, "a", "", "live")
	}
	if err := s.Err(); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf("Err() = %v, want ErrSlowConsumer", err)
	}
	if st := b.Stats(); st.Subscribers != 0 || st.Dropped != 1 {
		t.Errorf("stats %+v, want 0 subscribers, 1 dropped", st)
	}
	if got, done := s.Replay(nil, 1<<20); !done || len(got) != 0 {
		t.Errorf("Replay after the drop: %v, done %v; want nothing, done", ids(got), done)
	}
	if st := b.Stats(); st.Dropped != 1 {
		t.Errorf("Stats().Dropped = %d after Replay, want 1: counted once", st.Dropped)
	}
}

// Overlapping patterns, several topics, live events overflowing the queue
// while the replay is read at random paces: every matching event once,
// in order, whatever the replay's end moved to.
func TestAResumeOutrunByLiveEventsOfOverlappingPatterns(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 1))
		b := newTestMemory(t, MemoryOptions{HistorySize: 100000, SubscriberBuffer: 3})
		topics := []string{"a.x", "a.y", "b.x", "b.y", "c"}
		var want []uint64
		publish := func() {
			m := mustPublish(t, b, topics[r.IntN(len(topics))], "", "d")
			if m.Topic != "b.y" && m.Topic != "c" {
				want = append(want, m.ID)
			}
		}
		first := mustPublish(t, b, "a.x", "", "first")
		for range 200 {
			publish()
		}
		s := mustSubscribe(t, b, first.IDString(), "a.*", "*.x", "a.x")
		var got []*Message
		for pieces := 0; ; pieces++ {
			var done bool
			got, done = s.Replay(got, r.IntN(200)+1)
			if done {
				break
			}
			if pieces > 100000 {
				t.Fatal("Replay is never done")
			}
			if pieces < 300 {
				for range r.IntN(12) {
					publish()
				}
			}
		}
		got, _ = s.Take(got, 0)
		for range r.IntN(3) {
			publish()
		}
		got, _ = s.Take(got, 0)
		if err := s.Err(); err != nil {
			t.Fatalf("seed %d: Err() = %v", seed, err)
		}
		if !slices.Equal(ids(got), want) {
			t.Fatalf("seed %d: got %v\nwant %v", seed, ids(got), want)
		}
		if st := b.Stats(); st.Delivered != uint64(len(want)) || st.Dropped != 0 {
			t.Fatalf("seed %d: stats %+v, want %d delivered, 0 dropped", seed, st, len(want))
		}
		s.Close()
	}
}

// Stats().Delivered is a counter (ssehub_events_delivered_total): it
// never goes down, not even when a resume's queue is let go of for its
// replay to read on. It went down by what the queue held, counted again
// once replayed. Each event is counted once.
func TestDeliveredNeverGoesDownWhenAReplayReadsOn(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{SubscriberBuffer: 2})
	first := mustPublish(t, b, "a", "", "first")
	mustPublish(t, b, "a", "", "old")
	s := mustSubscribe(t, b, first.IDString(), "a")
	var last uint64
	check := func(what string) {
		t.Helper()
		if d := b.Stats().Delivered; d < last {
			t.Fatalf("Stats().Delivered went down from %d to %d %s", last, d, what)
		} else {
			last = d
		}
	}
	for i := range 7 {
		mustPublish(t, b, "a", "", "live")
		check(fmt.Sprintf("after live event %d", i))
	}
	var got []*Message
	for done := false; !done; {
		got, done = s.Replay(got, 1)
		check("after a piece of the replay")
	}
	got, _ = s.Take(got, 0)
	if st := b.Stats(); st.Delivered != uint64(len(got)) || len(got) != 8 {
		t.Errorf("%d events handed out, Stats().Delivered = %d; want 8 each", len(got), st.Delivered)
	}
}

// A resume is not ended when the history evicts ids of its replay that it
// has not read yet but that match none of its patterns: it needed none of
// them, and lost nothing. A resume on "a.x" while "b.*" floods the history
// was dropped as too slow (counted), or, handed out nothing yet, overtaken
// and so reset ("events may have been missed") though none was.
func TestAResumeIsNotEndedByTheEvictionOfEventsItDoesNotMatch(t *testing.T) {
	for _, handedOut := range []bool{true, false} {
		t.Run(fmt.Sprintf("handedOut=%v", handedOut), func(t *testing.T) {
			b := newTestMemory(t, MemoryOptions{HistorySize: 8, SubscriberBuffer: 2})
			first := mustPublish(t, b, "a.x", "", "first")   // id 1
			second := mustPublish(t, b, "a.x", "", "second") // id 2
			for range 5 {
				mustPublish(t, b, "b.y", "", "other") // ids 3..7
			}
			last := mustPublish(t, b, "a.x", "", "last") // id 8
			from, want := first, []uint64{second.ID, last.ID}
			if !handedOut {
				from, want = second, want[1:]
			}
			s := mustSubscribe(t, b, from.IDString(), "a.x")
			var got []*Message
			if handedOut {
				var done bool
				if got, done = s.Replay(nil, 1); done || !slices.Equal(ids(got), want[:1]) {
					t.Fatalf("first piece %v, done %v; want %v, not done", ids(got), done, want[:1])
				}
			}
			for range 4 { // ids 9..12 evict 1..4: of those not read, 3 and 4, no "a.x"
				mustPublish(t, b, "b.z", "", "flood")
			}
			for done := false; !done; {
				got, done = s.Replay(got, 1)
			}
			if err := s.Err(); err != nil {
				t.Fatalf("Err() = %v after the replay, want nil: it lost no event", err)
			}
			live := mustPublish(t, b, "a.x", "", "live")
			got, _ = s.Take(got, 0)
			want = append(want, live.ID)
			if !slices.Equal(ids(got), want) {
				t.Fatalf("got %v, want %v", ids(got), want)
			}
			if st := b.Stats(); st.Dropped != 0 || st.Subscribers != 1 || st.Delivered != uint64(len(want)) {
				t.Errorf("stats %+v, want 0 dropped, 1 subscriber, %d delivered", st, len(want))
			}
		})
	}
}

// A small history that many events of other topics pass through while
// resumes of overlapping patterns read their replays at random paces:
// a resume ends only when the history evicted an event it matches before
// it read it, and otherwise hands out every matching event once, in
// order. Every replay, once done or ended, leaves the count of unfinished
// ones.
func TestAResumeEndsOnlyForAMatchingEventItLost(t *testing.T) {
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 2))
		b := newTestMemory(t, MemoryOptions{HistorySize: 8 + r.IntN(24), SubscriberBuffer: 1 + r.IntN(4)})
		topics := []string{"a.x", "a.y", "b.x", "b.y", "c"}
		matches := func(topic string) bool { return topic == "a.x" || topic == "a.y" || topic == "b.x" }
		var all []*Message
		publish := func() {
			// Mostly topics the resume does not match.
			topic := topics[3+r.IntN(2)]
			if r.IntN(4) == 0 {
				topic = topics[r.IntN(3)]
			}
			all = append(all, mustPublish(t, b, topic, "", "d"))
		}
		for range 40 {
			publish()
		}
		from := all[len(all)-1-r.IntN(8)]
		s := mustSubscribe(t, b, from.IDString(), "a.*", "*.x", "a.x")
		var got []*Message
		for pieces := 0; ; pieces++ {
			var done bool
			if got, done = s.Replay(got, r.IntN(60)+1); done {
				break
			}
			if pieces > 10000 {
				t.Fatalf("seed %d: Replay is never done", seed)
			}
			for range r.IntN(24) {
				publish()
			}
		}
		got, _ = s.Take(got, 0)
		var want []uint64
		for _, m := range all {
			if m.ID > from.ID && matches(m.Topic) {
				want = append(want, m.ID)
			}
		}
		if err := s.Err(); err != nil {
			// Ended: the next event it was to get was evicted unread.
			if !slices.Equal(ids(got), want[:len(got)]) {
				t.Fatalf("seed %d: ended with %v after %v, want a prefix of %v", seed, err, ids(got), want)
			}
			if len(got) == len(want) || b.Retained(want[len(got)]) != nil {
				t.Fatalf("seed %d: ended with %v after %v though the next of %v is retained", seed, err, ids(got), want)
			}
		} else if !slices.Equal(ids(got), want) {
			t.Fatalf("seed %d: got %v\nwant %v", seed, ids(got), want)
		}
		s.Close()
		b.mu.Lock()
		replays := len(b.replaying)
		b.mu.Unlock()
		if replays != 0 {
			t.Fatalf("seed %d: %d unfinished replays counted once all are closed", seed, replays)
		}
	}
}

// Resumes of several patterns each read their replays at random paces
// among a crowd of subscribers of random size and patterns, while the
// history evicts events of topics that some, all or none of them match:
// an evicted event is looked for only in the groups that hold an
// unfinished replay, through their subscriptions or through the list of
// unfinished replays, whichever are fewer, yet a resume ends only when
// the history evicted an event it matches before it read it, and
// otherwise hands out every matching event once, in order. Each group
// counts the unfinished replays among its subscriptions, and the broker
// lists them.
func TestResumesAmongACrowdLoseOnlyEventsTheyMatch(t *testing.T) {
	patterns := []string{"a.x", "a.y", "b.x", "c", "a.*", "*.x", "b.>", ">"}
	topics := []string{"a.x", "a.y", "b.x", "b.y", "c", "d"}
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 3))
		size := 8 + r.IntN(24)
		b := newTestMemory(t, MemoryOptions{HistorySize: size, SubscriberBuffer: 1 + r.IntN(4)})
		var crowd []Subscription
		for range r.IntN(40) {
			crowd = append(crowd, mustSubscribe(t, b, "", patterns[r.IntN(len(patterns)-1)]))
		}
		var all []*Message
		var buf []*Message
		publish := func() {
			all = append(all, mustPublish(t, b, topics[r.IntN(len(topics))], "", "d"))
			for _, c := range crowd {
				buf, _ = c.Take(buf[:0], 0)
			}
		}
		for range 40 {
			publish()
		}
		type resume struct {
			s    Subscription
			pats []string
			from uint64
			got  []*Message
			done bool
		}
		resumes := make([]*resume, 1+r.IntN(6))
		for i := range resumes {
			var pats []string
			for range 1 + r.IntN(3) {
				pats = append(pats, patterns[r.IntN(len(patterns))])
			}
			from := all[len(all)-1-r.IntN(size)].ID // retained
			resumes[i] = &resume{s: mustSubscribe(t, b, strconv.FormatUint(from, 10), pats...), pats: pats, from: from}
			if reset := resumes[i].s.Reset(); reset != "" {
				t.Fatalf("seed %d: resume from %d reset: %s", seed, from, reset)
			}
		}
		// finish checks rs once its replay is done or it has ended.
		finish := func(rs *resume) {
			rs.got, _ = rs.s.Take(rs.got, 0)
			var want []uint64
			for _, m := range all {
				if m.ID > rs.from && slices.ContainsFunc(rs.pats, func(p string) bool { return Match(p, m.Topic) }) {
					want = append(want, m.ID)
				}
			}
			if err := rs.s.Err(); err != nil {
				if len(rs.got) >= len(want) || !slices.Equal(ids(rs.got), want[:len(rs.got)]) {
					t.Fatalf("seed %d %v: ended with %v after %v, want a prefix of %v", seed, rs.pats, err, ids(rs.got), want)
				}
				if b.Retained(want[len(rs.got)]) != nil {
					t.Fatalf("seed %d %v: ended with %v after %v though the next of %v is retained", seed, rs.pats, err, ids(rs.got), want)
				}
			} else if !slices.Equal(ids(rs.got), want) {
				t.Fatalf("seed %d %v: got %v\nwant %v", seed, rs.pats, ids(rs.got), want)
			}
			rs.s.Close()
			rs.done = true
		}
		for steps := 0; ; steps++ {
			open := 0
			for _, rs := range resumes {
				if rs.done {
					continue
				}
				var done bool
				if rs.got, done = rs.s.Replay(rs.got, r.IntN(60)+1); done {
					finish(rs)
					continue
				}
				open++
			}
			if open == 0 {
				break
			}
			if steps > 10000 {
				t.Fatalf("seed %d: Replay is never done", seed)
			}
			for range r.IntN(24) {
				publish()
			}
			if err := countedReplays(b); err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
		}
		if err := countedReplays(b); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		b.mu.Lock()
		n := len(b.replaying)
		b.mu.Unlock()
		if n != 0 {
			t.Fatalf("seed %d: %d unfinished replays counted once all are closed", seed, n)
		}
		b.Close()
	}
}

// countedReplays checks that b and each of its groups count the
// unfinished replays among their subscriptions, and that each of those
// is open with its replay unfinished.
func countedReplays(b *Memory) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	replaying := map[*memorySubscription]bool{}
	check := func(g *group) error {
		n := 0
		for _, s := range g.subs {
			if s.replayAt != 0 {
				if s.closed || s.replayNext >= s.replayEnd || b.replaying[s.replayAt-1] != s {
					return fmt.Errorf("%s: a replaying subscription, closed %v, range [%d, %d), at %d of the list", g.pattern, s.closed, s.replayNext, s.replayEnd, s.replayAt)
				}
				replaying[s] = true
				n++
			} else if !s.closed && s.replayNext < s.replayEnd {
				return fmt.Errorf("%s: an open subscription with its replay unfinished, not counted", g.pattern)
			}
		}
		if n != int(g.replays) {
			return fmt.Errorf("%s counts %d unfinished replays, holds %d", g.pattern, g.replays, n)
		}
		return nil
	}
	for _, t := range b.topics {
		if err := check(&t.group); err != nil {
			return err
		}
	}
	for _, g := range b.wild {
		if err := check(g); err != nil {
			return err
		}
	}
	if len(replaying) != len(b.replaying) {
		return fmt.Errorf("the broker lists %d unfinished replays, its groups hold %d", len(b.replaying), len(replaying))
	}
	return nil
}

// LastSent is the id of the newest event a subscription was sent and
// counted as delivered: not that of the event that dropped it.
func TestLastSentIsTheLastEventCounted(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{SubscriberBuffer: 1})
	s := mustSubscribe(t, b, "", "a")
	if got := b.LastSent(s); got != 0 {
		t.Fatalf("LastSent before any event = %d, want 0", got)
	}
	mustPublish(t, b, "b", "", "other")
	sent := mustPublish(t, b, "a", "", "queued")
	mustPublish(t, b, "a", "", "drops it")
	if !errors.Is(s.Err(), ErrSlowConsumer) {
		t.Fatalf("Err() = %v, want ErrSlowConsumer", s.Err())
	}
	mustPublish(t, b, "a", "", "after")
	if got, st := b.LastSent(s), b.Stats(); got != sent.ID || st.Delivered != 1 {
		t.Errorf("LastSent = %d, Delivered = %d; want %d, 1", got, st.Delivered, sent.ID)
	}
}

// ResubscribeSpilling registers a subscription that spills at once, with
// no moment in which a full queue drops it, unless the broker replays
// it from its own history: a resume it cannot make (a Reset), or none
// asked of it (the caller reads the replay elsewhere).
func TestResubscribeSpillingSpillsFromTheStart(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{SubscriberBuffer: 1, FirstID: 10})
	first := mustPublish(t, b, "a", "", "first")
	for _, c := range []struct {
		lastEventID string
		spills      bool
	}{{"", true}, {"999", true}, {first.IDString(), false}} {
		s, err := b.ResubscribeSpilling(t.Context(), nil, []string{"a"}, c.lastEventID)
		if err != nil {
			t.Fatal(err)
		}
		b.mu.Lock()
		spills := s.(*memorySubscription).spill
		b.mu.Unlock()
		if spills != c.spills {
			t.Errorf("last event id %q: spills %v, want %v", c.lastEventID, spills, c.spills)
		}
		s.Close()
	}
}

// A resume whose unread replay holds only events of other topics, while
// live events it matches fill its queue and the history evicts the
// oldest of them, then overflows its queue: the queue is let go of for
// the replay to read on, but the history no longer holds the queued
// events it evicted. The replay passed over them, as over ids it does not
// match, and the subscriber got the newest event after a gap, with no
// error and so no reset on its reconnect. It is ended instead, as one
// whose replay lost an event it matches: overtaken when it was handed
// out nothing yet, else dropped.
func TestAResumeDoesNotPassOverQueuedEventsTheHistoryEvicted(t *testing.T) {
	for _, handedOut := range []bool{false, true} {
		t.Run(fmt.Sprintf("handedOut=%v", handedOut), func(t *testing.T) {
			b := newTestMemory(t, MemoryOptions{HistorySize: 4, SubscriberBuffer: 2})
			from := mustPublish(t, b, "a", "", "first")
			var want []uint64
			if handedOut {
				want = append(want, mustPublish(t, b, "a", "", "replayed").ID)
			}
			mustPublish(t, b, "b", "", "other") // the rest of the replay
			s := mustSubscribe(t, b, from.IDString(), "a")
			var got []*Message
			var done bool
			if handedOut {
				if got, done = s.Replay(nil, 1); done || !slices.Equal(ids(got), want) {
					t.Fatalf("first piece %v, done %v; want %v, not done", ids(got), done, want)
				}
			}
			mustPublish(t, b, "a", "", "queued, then evicted")
			mustPublish(t, b, "a", "", "queued")
			for range 3 { // evict the replay's "b" and the first queued "a"
				mustPublish(t, b, "b", "", "flood")
			}
			mustPublish(t, b, "a", "", "overflows the queue")
			for !done {
				got, done = s.Replay(got, 1)
			}
			got, _ = s.Take(got, 0)
			wantErr := ErrResumeOvertaken
			if handedOut {
				wantErr = ErrSlowConsumer
			}
			if err := s.Err(); !errors.Is(err, wantErr) || !slices.Equal(ids(got), want) {
				t.Errorf("got %v, Err() = %v; want %v, %v", ids(got), err, want, wantErr)
			}
		})
	}
}

// An eviction looks for the unfinished replays that lose the evicted
// event in the subscriptions of the groups its topic matches or in the
// list of unfinished replays, whichever are fewer. Through the list, it
// asked of each replay whether one of its groups is among the matching
// ones by comparing each of its groups with each matching one: 1000
// stalled resumes of 32 patterns each, one of which (each its own) the
// topic matches, made a publish that evicts an event of that topic
// compare 31 groups of each with the 1000 matching ones, 31 million
// comparisons, whatever topic it published to (60 times what a publish
// to that topic costs, which goes through the same 1000 groups). It now
// marks the matching groups that hold a replay and looks at each
// replay's own groups for the mark (inMarkedGroup), once each. The test
// checks, at each eviction (replaysMarked), that those groups and no
// others carry the eviction's mark, so that a resume finds its one
// matching group among its own 32; and counts the groups inMarkedGroup
// looks at from the marks, 32 per resume and eviction. Without the marks
// none of the resumes' groups is marked so. BenchmarkPublishEvictingAmongManyPatterns
// measures the cost.
func TestAnEvictionAmongResumesOfManyPatternsLooksAtTheirGroupsOnce(t *testing.T) {
	const (
		resumes = 100
		perSub  = 32
		history = 20
	)
	b := newTestMemory(t, MemoryOptions{HistorySize: history})
	topic := manyPatternsTopic()
	for range history {
		mustPublish(t, b, topic, "", "x") // ids 1 to 20: the resumes' replays are 2 to 20
	}
	mustSubscribe(t, b, "", manyPatternsMatching(0)) // the groups hold more than the resumes
	var subs []*memorySubscription
	for i := range resumes {
		s := mustSubscribe(t, b, "1", manyPatternsResume(i, perSub)...) // stalled: reads none of its replay
		subs = append(subs, s.(*memorySubscription))
	}
	mustPublish(t, b, "u", "", "x") // evicts id 1, of no replay
	var calls, looks int
	var problems []string
	b.replaysMarked = func(id, mark uint64) { // b.mu held
		calls++
		marked := 0
		for _, g := range b.wild {
			if g.mark == mark {
				marked++
			}
		}
		for _, te := range b.topics {
			if te.group.mark == mark {
				marked++
			}
		}
		if marked != resumes {
			problems = append(problems, fmt.Sprintf("eviction of %d: %d groups marked, want the %d that hold a resume", id, marked, resumes))
		}
		for i, s := range subs {
			if !s.holds(id) {
				continue
			}
			n := len(s.slots) // what inMarkedGroup looks at: up to the marked one
			for k, sl := range s.slots {
				if sl.g.mark == mark {
					n = k + 1
					break
				}
			}
			looks += n
			if last := s.slots[len(s.slots)-1].g; last.mark != mark || n != len(s.slots) {
				problems = append(problems, fmt.Sprintf("eviction of %d: resume %d's matching group %s unmarked, or another of its groups marked", id, i, last.pattern))
			}
		}
	}
	const evictions = 10
	for range evictions {
		mustPublish(t, b, "u", "", "x") // evicts ids 2 to 11: of every resume's replay
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	lost := 0
	for _, s := range subs {
		if s.lost {
			lost++
		}
	}
	if lost != resumes {
		t.Fatalf("%d of the %d resumes lost an evicted event of their replay, want all", lost, resumes)
	}
	if calls != evictions {
		t.Fatalf("%d evictions went through the unfinished replays %d times, want each once", evictions, calls)
	}
	for _, p := range problems[:min(len(problems), 5)] {
		t.Error(p)
	}
	if want := evictions * resumes * perSub; looks > want {
		t.Errorf("%d evictions looked at %d groups, want %d at most: each resume's own, once", evictions, looks, want)
	}
}

// manyPatternsTopic is the topic of the tests and benchmarks of evictions
// among resumes of many patterns: t.s0.s1 … s11, which 4095 wildcard
// patterns match (manyPatternsMatching).
func manyPatternsTopic() string {
	return "t." + strings.Join(manyPatternsLits(), ".")
}

func manyPatternsLits() []string { return segmentLits(12) }

// manyPatternsMatching is the nth wildcard pattern (n < 4095) matching
// manyPatternsTopic: "*" where the bits of n+1 are set.
func manyPatternsMatching(n int) string {
	return "t." + wildcardOf(manyPatternsLits(), n+1)
}

// segmentLits is the n segments "s0" … "s<n-1>" of the topics that many
// patterns match in the tests and benchmarks.
func segmentLits(n int) []string {
	lits := make([]string, n)
	for j := range lits {
		lits[j] = "s" + strconv.Itoa(j)
	}
	return lits
}

// wildcardOf is lits joined with dots, with "*" in place of each segment
// j where bit j of n is set: the nth of the 2^len(lits) patterns that
// match the topic of lits.
func wildcardOf(lits []string, n int) string {
	segs := slices.Clone(lits)
	for j := range segs {
		if n&(1<<j) != 0 {
			segs[j] = "*"
		}
	}
	return strings.Join(segs, ".")
}

// deepTopic is a topic of 127 segments, 253 bytes: "a.a. … .a.x".
func deepTopic() string { return strings.Repeat("a.", 126) + "x" }

// longPatterns is 32 patterns of 253 bytes, "*.*. … .*.yN.x", each of
// which matches deepTopic but for its last two segments.
func longPatterns() []string {
	var long []string
	for i := range 32 {
		long = append(long, strings.Repeat("*.", 124)+"y"+strconv.Itoa(i)+".x")
	}
	return long
}

// manyPatternsResume is the patterns of the ith resume: perSub-1 of its
// own topics, then manyPatternsMatching(i).
func manyPatternsResume(i, perSub int) []string {
	patterns := make([]string, 0, perSub)
	for k := range perSub - 1 {
		patterns = append(patterns, "o"+strconv.Itoa(i)+"."+strconv.Itoa(k)+".*")
	}
	return append(patterns, manyPatternsMatching(i))
}

// A step of a replay, with the broker's lock held, matched replayScan ids
// against the subscription's patterns however long they are: a resume of
// 32 patterns of 253 bytes ("*.*. … .*.y0.x") over a history of a topic
// of as many segments, which each pattern matches but for its last two,
// held the lock for some 75 ms a step, and every publish of the hub
// waited for it, step after step. A step now looks at replayScanBytes /
// the patterns' bytes ids (4 for those 32), and at replayScan for short
// patterns, as before. The test counts the ids each step looks at.
func TestAReplayStepLooksAtFewerIDsTheLongerThePatterns(t *testing.T) {
	const events = 1030
	b := newTestMemory(t, MemoryOptions{HistorySize: events})
	for range events {
		mustPublish(t, b, deepTopic(), "", "x")
	}
	long := longPatterns()
	for _, c := range []struct {
		name     string
		patterns []string
		perStep  int
	}{
		{"32 patterns of 253 bytes", long, replayScan * 64 / (32 * 253)}, // 4
		{"one short pattern", []string{"b.*"}, replayScan},
	} {
		s := mustSubscribe(t, b, "1", c.patterns...).(*memorySubscription)
		var scanned []int
		for {
			before := s.replayNext
			_, _, done := s.replayScan(nil, 0, 1<<20)
			scanned = append(scanned, int(s.replayNext-before))
			if done {
				break
			}
		}
		want := make([]int, 0, events/c.perStep+1)
		for n := events - 1; n > 0; n -= c.perStep { // the ids after 1
			want = append(want, min(n, c.perStep))
		}
		if !slices.Equal(scanned, want) {
			t.Errorf("%s: %d steps looked at %v … ids; want %d steps of %d", c.name, len(scanned), scanned[:min(len(scanned), 4)], len(want), c.perStep)
		}
		if got, err := replayAll(s), s.Err(); len(got) != 0 || err != nil {
			t.Fatalf("%s: the replay handed out %d events, Err() = %v; want none, nil", c.name, len(got), err)
		}
		s.Close()
	}
}
