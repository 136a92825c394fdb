package stream

import (
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// newTestMemory returns a broker whose ids start at 1 and closes it when
// the test ends.
func newTestMemory(t testing.TB, opts MemoryOptions) *Memory {
	t.Helper()
	if opts.FirstID == 0 {
		opts.FirstID = 1
	}
	b := NewMemory(opts)
	t.Cleanup(b.Close)
	return b
}

func mustPublish(t testing.TB, b *Memory, topic, eventType, data string) *Message {
	t.Helper()
	m, _, err := b.Publish(Publication{Topic: topic, Type: eventType, Data: data})
	if err != nil {
		t.Fatalf("Publish(%q, %q, %q): %v", topic, eventType, data, err)
	}
	return m
}

func mustSubscribe(t testing.TB, b *Memory, lastEventID string, patterns ...string) Subscription {
	t.Helper()
	s, err := b.Subscribe(patterns, lastEventID)
	if err != nil {
		t.Fatalf("Subscribe(%q, %q): %v", patterns, lastEventID, err)
	}
	return s
}

// queued takes the ids of the events queued to s, without waiting.
func queued(s Subscription) []uint64 {
	msgs, _ := s.Take(nil, 0)
	return ids(msgs)
}

// replayAll reads the whole replay of s, one event at a time (Replay
// appends one at least), as a stream loop would in pieces.
func replayAll(s Subscription) []*Message {
	var out []*Message
	for done := false; !done; {
		out, done = s.Replay(out, 1)
	}
	return out
}

// receive hands each event of s to f as a stream loop gets them: it waits
// on Ready and takes everything queued into a reused slice, until f returns
// false or the subscription ends. It reports whether the subscription
// ended.
func receive(s Subscription, f func(*Message) bool) bool {
	var buf []*Message
	for {
		<-s.Ready()
		var open bool
		buf, open = s.Take(buf[:0], 0)
		for _, m := range buf {
			if !f(m) {
				return false
			}
		}
		if !open {
			return true
		}
	}
}

func ids(msgs []*Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

func TestPublishEncodesFrameOnce(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{FirstID: 42})
	s1 := mustSubscribe(t, b, "", "greetings")
	s2 := mustSubscribe(t, b, "", ">")

	m := mustPublish(t, b, "greetings", "hello", "line one\nline two")
	if m.ID != 42 || m.IDString() != "42" || m.Topic != "greetings" {
		t.Errorf("message = id %d (%q) topic %q, want 42 greetings", m.ID, m.IDString(), m.Topic)
	}
	want := "id: 42\nevent: hello\ndata: line one\ndata: line two\n\n"
	if string(m.Frame) != want {
		t.Errorf("frame = %q, want %q", m.Frame, want)
	}
	got1, _ := s1.Take(nil, 0)
	got2, _ := s2.Take(nil, 0)
	if len(got1) != 1 || len(got2) != 1 || got1[0] != m || got2[0] != m {
		t.Error("subscribers did not receive the published *Message itself")
	}

	m = mustPublish(t, b, "greetings", "", "")
	if want := "id: 43\ndata: \n\n"; string(m.Frame) != want {
		t.Errorf("frame of a default event = %q, want %q", m.Frame, want)
	}
}

func TestPublishRejects(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{})
	tests := []struct {
		topic, eventType string
		want             error
	}{
		{"", "", ErrInvalidTopic},
		{"a..b", "", ErrInvalidTopic},
		{"a.*", "", ErrInvalidTopic},
		{"a", "x\ny", ErrInvalidEventType},
		{"a", "x\ry", ErrInvalidEventType},
		{"a", "x\x00", ErrInvalidEventType},
		{"a", strings.Repeat("e", MaxEventTypeLen+1), ErrInvalidEventType},
	}
	for _, tt := range tests {
		if _, _, err := b.Publish(Publication{Topic: tt.topic, Type: tt.eventType, Data: "data"}); !errors.Is(err, tt.want) {
			t.Errorf("Publish(%q, %q) error = %v, want %v", tt.topic, tt.eventType, err, tt.want)
		}
	}
	if _, _, err := b.Publish(Publication{Topic: "a", Type: "x\n", Data: ""}); !errors.Is(err, ErrInvalidField) {
		t.Errorf("event type with LF: error %v does not wrap the encoder's ErrInvalidField", err)
	}
	if _, _, err := b.Publish(Publication{Topic: "a", Type: strings.Repeat("e", MaxEventTypeLen), Data: ""}); err != nil {
		t.Errorf("event type of %d bytes: %v", MaxEventTypeLen, err)
	}
	if st := b.Stats(); st.Published != 1 {
		t.Errorf("Published = %d, want only the valid event counted", st.Published)
	}
}

func TestSubscribeRejects(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{})
	for _, patterns := range [][]string{nil, {}, {"a", ""}, {"a.>.b"}, {"a b"}} {
		if _, err := b.Subscribe(patterns, ""); !errors.Is(err, ErrInvalidPattern) {
			t.Errorf("Subscribe(%q) error = %v, want ErrInvalidPattern", patterns, err)
		}
	}
	if st := b.Stats(); st.Subscribers != 0 {
		t.Errorf("Subscribers = %d after rejected subscriptions, want 0", st.Subscribers)
	}
}

func TestOrderingAcrossTopics(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{})
	all := mustSubscribe(t, b, "", ">")
	multi := mustSubscribe(t, b, "", "a", "c.*")
	onlyB := mustSubscribe(t, b, "", "b")

	var want, wantMulti, wantB []uint64
	topics := []string{"a", "b", "c.x", "a", "c.y", "b", "d", "a"}
	for i, topic := range topics {
		m := mustPublish(t, b, topic, "", strconv.Itoa(i))
		if m.ID != uint64(i+1) {
			t.Fatalf("event %d got id %d, want %d", i, m.ID, i+1)
		}
		want = append(want, m.ID)
		switch topic {
		case "b":
			wantB = append(wantB, m.ID)
		case "d":
		default:
			wantMulti = append(wantMulti, m.ID)
		}
	}
	check := func(name string, s Subscription, want []uint64) {
		t.Helper()
		if got := queued(s); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s received %v, want %v", name, got, want)
		}
	}
	check("'>'", all, want)
	check("'a','c.*'", multi, wantMulti)
	check("'b'", onlyB, wantB)
}

func TestOverlappingPatternsDeliverOnce(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{})
	s := mustSubscribe(t, b, "", "a.b", "a.*", ">", "*.b", "a.b", "a.>")
	other := mustSubscribe(t, b, "", "a.*")
	mustPublish(t, b, "a.b", "", "1")
	mustPublish(t, b, "x.b", "", "2")
	mustPublish(t, b, "a.c", "", "3")
	mustPublish(t, b, "q", "", "4")
	if got := queued(s); fmt.Sprint(got) != "[1 2 3 4]" {
		t.Errorf("subscription with overlapping patterns received %v, want [1 2 3 4]", got)
	}
	if got := queued(other); fmt.Sprint(got) != "[1 3]" {
		t.Errorf("second subscription received %v, want [1 3]", got)
	}
	if st := b.Stats(); st.Delivered != 6 {
		t.Errorf("Delivered = %d, want 6", st.Delivered)
	}
}

func TestHistoryBounds(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{HistorySize: 5})
	for i := 1; i <= 10; i++ {
		mustPublish(t, b, "t"+strconv.Itoa(i%2), "", strconv.Itoa(i))
	}
	tests := []struct {
		last  string
		reset bool
		want  string
	}{
		{"2", true, "[]"},
		{"4", true, "[]"},
		{"5", false, "[6 7 8 9 10]"}, // #5 is gone, but nothing after it is
		{"6", false, "[7 8 9 10]"},
		{"9", false, "[10]"},
		{"10", false, "[]"},
	}
	for _, tt := range tests {
		s := mustSubscribe(t, b, tt.last, ">")
		if (s.Reset() != "") != tt.reset {
			t.Errorf("resume from %s: Reset() = %q, want reset=%v", tt.last, s.Reset(), tt.reset)
		}
		if got := fmt.Sprint(ids(replayAll(s))); got != tt.want {
			t.Errorf("resume from %s: replay %s, want %s", tt.last, got, tt.want)
		}
		s.Close()
	}

	s := mustSubscribe(t, b, "6", "t0")
	if got := fmt.Sprint(ids(replayAll(s))); got != "[8 10]" {
		t.Errorf("resume from 6 on t0: replay %s, want [8 10]", got)
	}
	if st := b.Stats(); st.Replayed != 5+4+1+2 || st.Delivered != st.Replayed {
		t.Errorf("Replayed = %d, Delivered = %d, want both 12", st.Replayed, st.Delivered)
	}
}

func TestResetReasons(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{FirstID: 1000, HistorySize: 3})
	s := mustSubscribe(t, b, "1000", ">")
	if !strings.Contains(s.Reset(), "no event has been published") {
		t.Errorf("resume before any event: Reset() = %q", s.Reset())
	}
	s.Close()
	for range 5 {
		mustPublish(t, b, "a", "", "x") // ids 1000..1004, 1002..1004 retained
	}
	tests := []struct {
		last, reason string
	}{
		{"garbage", "not an event id"},
		{"-1", "not an event id"},
		{" 1003", "not an event id"},
		{"99999999999999999999999", "not an event id"},
		{"100000", "unknown"},
		{"998", "before the hub restarted"},
		{"12", "before the hub restarted"},
		{"999", "older than the retained history"},
		{"1000", "older than the retained history"},
	}
	for _, tt := range tests {
		s := mustSubscribe(t, b, tt.last, "a")
		if !strings.Contains(s.Reset(), tt.reason) {
			t.Errorf("resume from %q: Reset() = %q, want it to mention %q", tt.last, s.Reset(), tt.reason)
		}
		// From before the restart, every retained event (3) is after
		// the id.
		want := 0
		if strings.Contains(tt.reason, "restarted") {
			want = 3
		}
		if got := replayAll(s); len(got) != want {
			t.Errorf("resume from %q: Replay() %v with a reset, want %d events", tt.last, ids(got), want)
		}
		m := mustPublish(t, b, "a", "", "live")
		if got := queued(s); len(got) != 1 || got[0] != m.ID {
			t.Errorf("resume from %q: live events %v, want [%d]", tt.last, got, m.ID)
		}
		s.Close()
	}
	s = mustSubscribe(t, b, "", "a")
	if s.Reset() != "" || len(replayAll(s)) != 0 {
		t.Errorf("live-only subscription: Reset %q, %d replayed", s.Reset(), len(replayAll(s)))
	}
}

func TestDefaultFirstIDIsMicroseconds(t *testing.T) {
	b := NewMemory(MemoryOptions{})
	defer b.Close()
	m := mustPublish(t, b, "a", "", "")
	if len(m.IDString()) != 16 || m.ID >= 1<<53 {
		t.Errorf("first id %s: want 16 digits below 2^53", m.IDString())
	}
	old := strconv.FormatUint(m.ID-1_000_000, 10) // an id from a run one second earlier
	s := mustSubscribe(t, b, old, "a")
	if !strings.Contains(s.Reset(), "restarted") {
		t.Errorf("id from an earlier run: Reset() = %q", s.Reset())
	}
}

func TestTooManySubscribers(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{MaxSubscribers: 2})
	s1 := mustSubscribe(t, b, "", "a")
	mustSubscribe(t, b, "", "b")
	if _, err := b.Subscribe([]string{"c"}, ""); !errors.Is(err, ErrTooManySubscribers) {
		t.Fatalf("third Subscribe error = %v, want ErrTooManySubscribers", err)
	}
	s1.Close()
	mustSubscribe(t, b, "", "c")
	if st := b.Stats(); st.Subscribers != 2 {
		t.Errorf("Subscribers = %d, want 2", st.Subscribers)
	}
}

func TestTopics(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{HistorySize: 3})
	s1 := mustSubscribe(t, b, "", "orders", "orders.*")
	mustSubscribe(t, b, "", "idle")
	mustSubscribe(t, b, "", ">")
	mustPublish(t, b, "orders.eu", "", "1")
	mustPublish(t, b, "orders", "", "2")
	mustPublish(t, b, "news", "", "3")

	want := []TopicInfo{
		{Topic: "idle", Subscribers: 2},
		{Topic: "news", Subscribers: 1, LastEventID: "3"},
		{Topic: "orders", Subscribers: 2, LastEventID: "2"},
		{Topic: "orders.eu", Subscribers: 2, LastEventID: "1"},
	}
	if got := b.Topics(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Topics() =\n%v\nwant\n%v", got, want)
	}

	// Evicting orders.eu's only event and ending the subscription naming
	// "orders" leaves orders.eu inactive; orders keeps its retained event.
	mustPublish(t, b, "news", "", "4")
	s1.Close()
	want = []TopicInfo{
		{Topic: "idle", Subscribers: 2},
		{Topic: "news", Subscribers: 1, LastEventID: "4"},
		{Topic: "orders", Subscribers: 1, LastEventID: "2"},
	}
	if got := b.Topics(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after eviction, Topics() =\n%v\nwant\n%v", got, want)
	}
}

// TestTopicsPage pages through more topics than one walk's piece, limit
// at a time, following next: every topic comes once, in order, with its
// entry, and the last page has no next. A page asked after a name starts
// past it, whether or not it is a topic's.
func TestTopicsPage(t *testing.T) {
	const topics = 3*topicsScan + 7
	b := newTestMemory(t, MemoryOptions{HistorySize: topics})
	for i := range topics {
		mustPublish(t, b, fmt.Sprintf("user.%04d", i), "", "x")
	}
	mustSubscribe(t, b, "", "user.*")
	all := b.Topics()
	if len(all) != topics {
		t.Fatalf("Topics() lists %d topics, want %d", len(all), topics)
	}
	for _, limit := range []int{1, 10, topicsScan, topics - 1, topics, topics + 1} {
		var got []TopicInfo
		after, pages := "", 0
		for {
			page, next := b.TopicsPage(after, limit)
			if pages++; len(page) > limit || pages > topics+1 {
				t.Fatalf("limit %d: page %d lists %d topics", limit, pages, len(page))
			}
			got = append(got, page...)
			if next == "" {
				break
			}
			if last := page[len(page)-1].Topic; next != last {
				t.Fatalf("limit %d: next %q, want the page's last topic %q", limit, next, last)
			}
			after = next
		}
		if fmt.Sprint(got) != fmt.Sprint(all) {
			t.Errorf("limit %d: the %d pages list %d topics, not Topics()'s %d in order", limit, pages, len(got), len(all))
		}
		if want := (topics + limit - 1) / limit; pages != want {
			t.Errorf("limit %d: %d pages, want %d", limit, pages, want)
		}
	}
	page, next := b.TopicsPage("user.0100x", 2)
	if fmt.Sprint(page) != fmt.Sprint(all[101:103]) || next != all[102].Topic {
		t.Errorf("TopicsPage(user.0100x, 2) = %v, %q; want %v, %q", page, next, all[101:103], all[102].Topic)
	}
	if page, next := b.TopicsPage("zzz", 5); len(page) != 0 || next != "" {
		t.Errorf("TopicsPage past the last topic = %v, %q; want none", page, next)
	}
}

// TestTopicsLetsPublishesIn lists many topics while a publish goes in
// between two of the walk's pieces, with the lock let go: it evicts half
// of the topics, which makes the map of topics again (shrunk). The list
// is sorted, has no duplicate, and has every topic active throughout. A
// close in between ends the walk with an empty list, as after Close.
func TestTopicsLetsPublishesIn(t *testing.T) {
	const topics = 4 * topicsScan
	b := newTestMemory(t, MemoryOptions{HistorySize: topics})
	for i := range topics {
		mustPublish(t, b, "user."+strconv.Itoa(i), "", "x")
	}
	pauses := 0
	b.topicsPaused = func() {
		if pauses++; pauses == 1 {
			for range topics/2 + 1 {
				mustPublish(t, b, "a", "", "y") // would wait forever if Topics held the lock
			}
		}
	}
	got := b.Topics()
	if pauses == 0 {
		t.Fatalf("Topics held the lock over all %d topics: no publish could go in", topics)
	}
	listed := make(map[string]bool, len(got))
	for i, info := range got {
		if i > 0 && got[i-1].Topic >= info.Topic {
			t.Errorf("Topics()[%d] = %q after %q: not sorted, or listed twice", i, info.Topic, got[i-1].Topic)
		}
		listed[info.Topic] = true
	}
	for i := topics/2 + 1; i < topics; i++ {
		if topic := "user." + strconv.Itoa(i); !listed[topic] {
			t.Errorf("%s, active throughout, is not listed", topic)
		}
	}

	b.topicsPaused = b.Close
	if got := b.Topics(); len(got) != 0 {
		t.Errorf("closed during the walk, Topics() lists %d topics, want none", len(got))
	}
}

// TestTopicsPageWhileTopicsComeAndGo follows next through pages of many
// topics while, in the pauses of the walks, publishes make new topics,
// before and after the cursor, and the history evicts old ones, up to a
// bound. The pages, one after the other, list names in order, none
// twice, and every topic active throughout (those with an exact
// subscription) once.
func TestTopicsPageWhileTopicsComeAndGo(t *testing.T) {
	const history, steady = 4 * topicsScan, 300
	b := newTestMemory(t, MemoryOptions{HistorySize: history})
	for i := range steady {
		mustSubscribe(t, b, "", fmt.Sprintf("s.%04d", i))
	}
	made, upTo := 0, history
	churn := func(n int) {
		for ; n > 0 && made < upTo; n-- {
			made++
			mustPublish(t, b, fmt.Sprintf("%c.%05d", "az"[made%2], made), "", "x")
		}
	}
	churn(history)
	pauses := 0
	b.topicsPaused = func() {
		pauses++
		churn(history / 3)
	}
	for _, limit := range []int{7, 100} {
		upTo += 3 * history
		var listed []string
		after := ""
		for pages := 0; ; pages++ {
			if pages > 10*history {
				t.Fatalf("limit %d: next never ends", limit)
			}
			page, next := b.TopicsPage(after, limit)
			if len(page) > limit {
				t.Fatalf("limit %d: a page of %d topics", limit, len(page))
			}
			for _, info := range page {
				listed = append(listed, info.Topic)
			}
			if next == "" {
				break
			}
			if len(page) > 0 && next < page[len(page)-1].Topic {
				t.Fatalf("limit %d: next %q before the page's last topic %q", limit, next, page[len(page)-1].Topic)
			}
			after = next
		}
		steadyListed := 0
		for i, topic := range listed {
			if i > 0 && listed[i-1] >= topic {
				t.Fatalf("limit %d: %q listed after %q: not in order, or twice", limit, topic, listed[i-1])
			}
			if strings.HasPrefix(topic, "s.") {
				steadyListed++
			}
		}
		if steadyListed != steady {
			t.Errorf("limit %d: %d of the %d topics active throughout listed", limit, steadyListed, steady)
		}
	}
	if pauses == 0 {
		t.Fatal("no walk let the lock go")
	}
}

// TestTopicsSortsWithTheLockLetGo lists more topics than one piece of the
// walk: the sort of all their names (tens of milliseconds for 100,000)
// lets the broker's lock go, as each piece of the walks does, and a
// publish goes in meanwhile. 2*topicsScan+1 topics: two pauses in the
// walk for the names, one for their sort, two in the walk for the
// entries.
func TestTopicsSortsWithTheLockLetGo(t *testing.T) {
	const topics = 2*topicsScan + 1
	b := newTestMemory(t, MemoryOptions{HistorySize: 2 * topics})
	for i := range topics {
		mustPublish(t, b, "user."+strconv.Itoa(i), "", "x")
	}
	pauses := 0
	b.topicsPaused = func() {
		pauses++
		mustPublish(t, b, "user.0", "", "y") // would wait forever under the lock
	}
	if got := b.Topics(); len(got) != topics {
		t.Fatalf("Topics() lists %d topics, want %d", len(got), topics)
	}
	if pauses != 5 {
		t.Errorf("Topics let the lock go %d times, want 5: 2 in each walk and 1 for the sort", pauses)
	}
}

// TestReplayHandOverUnderConcurrentPublish subscribes with a last event id
// while other goroutines publish, and checks that every subscriber sees
// each matching event after its last id exactly once, in order.
func TestReplayHandOverUnderConcurrentPublish(t *testing.T) {
	const (
		publishers  = 4
		perProducer = 400
		subscribers = 24
	)
	b := newTestMemory(t, MemoryOptions{HistorySize: publishers*perProducer + 10, SubscriberBuffer: publishers*perProducer + 10})
	topics := []string{"a.x", "a.y", "b.x", "c"}
	patternSets := [][]string{{">"}, {"a.*"}, {"b.x", "c"}, {"*.x"}, {"a.x", "a.>"}, {"c"}}

	var latest sync.Map // publisher index → latest id it published
	var (
		pubWG sync.WaitGroup
		mu    sync.Mutex
		all   = map[uint64]string{} // id → topic
	)
	start := make(chan struct{})
	for p := range publishers {
		pubWG.Go(func() {
			<-start
			for i := range perProducer {
				m, _, err := b.Publish(Publication{Topic: topics[(p+i)%len(topics)], Data: "x"})
				if err != nil {
					t.Error(err)
					return
				}
				latest.Store(p, m.ID)
				mu.Lock()
				all[m.ID] = m.Topic
				mu.Unlock()
			}
		})
	}

	type result struct {
		patterns []string
		last     uint64 // 0 for live only
		got      []uint64
	}
	results := make([]result, subscribers)
	var subWG, subscribed sync.WaitGroup
	subscribed.Add(subscribers)
	for i := range subscribers {
		subWG.Go(func() {
			<-start
			r := &results[i]
			r.patterns = slices.Concat(patternSets[i%len(patternSets)], []string{"end"})
			var last string
			if i%4 != 0 { // every fourth subscriber is live only
				latest.Range(func(_, v any) bool {
					r.last = max(r.last, v.(uint64))
					return true
				})
				if r.last > 0 {
					last = strconv.FormatUint(r.last, 10)
				}
			}
			s, err := b.Subscribe(r.patterns, last)
			subscribed.Done()
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close()
			if s.Reset() != "" {
				t.Errorf("subscriber %d: unexpected reset: %s", i, s.Reset())
			}
			r.got = append(r.got, ids(replayAll(s))...)
			ended := receive(s, func(m *Message) bool {
				if m.Topic == "end" {
					return false
				}
				r.got = append(r.got, m.ID)
				return true
			})
			if ended {
				t.Errorf("subscriber %d: subscription ended early: %v", i, s.Err())
			}
		})
	}
	close(start)
	pubWG.Wait()
	subscribed.Wait()
	mustPublish(t, b, "end", "", "")
	subWG.Wait()

	for i, r := range results {
		var want []uint64
		for id := uint64(1); id <= publishers*perProducer; id++ {
			topic, ok := all[id]
			if !ok {
				t.Fatalf("id %d was never published: ids are not contiguous", id)
			}
			if (&memorySubscription{patterns: r.patterns}).matches(topic) {
				want = append(want, id)
			}
		}
		switch {
		case r.last > 0:
			// Resumed: everything matching after the last id.
			for len(want) > 0 && want[0] <= r.last {
				want = want[1:]
			}
		case len(r.got) > 0:
			// Live only: a contiguous run of the matching ids, to the end.
			for len(want) > 0 && want[0] < r.got[0] {
				want = want[1:]
			}
		default:
			want = nil
		}
		if fmt.Sprint(r.got) != fmt.Sprint(want) {
			t.Errorf("subscriber %d (%q after %d) got %d events, want %d:\ngot  %v\nwant %v",
				i, r.patterns, r.last, len(r.got), len(want), r.got, want)
		}
	}
	if st := b.Stats(); st.Dropped != 0 {
		t.Errorf("Dropped = %d, want 0", st.Dropped)
	}
}

// eventBytes returns what the history charges for an event of data
// published to a one-letter topic with a one-digit id.
func eventBytes(t *testing.T, data string) int {
	probe := newTestMemory(t, MemoryOptions{})
	return retainedBytes(mustPublish(t, probe, "p", "", data))
}

// TestMemoryHistoryByteCap publishes events of known size under a byte cap
// of three and a half of them: the oldest go first, the count cap still
// applies to small events, and Topics forgets a topic whose events all
// went while a subscribed one keeps its last event id.
func TestMemoryHistoryByteCap(t *testing.T) {
	big, small := strings.Repeat("x", 1000), "y"
	size := eventBytes(t, big)
	b := newTestMemory(t, MemoryOptions{HistorySize: 4, HistoryMaxBytes: size * 7 / 2})
	mustSubscribe(t, b, "", "c")
	retained := func() string { // the ids a resume just before the oldest replays
		s := mustSubscribe(t, b, strconv.FormatUint(b.hist.oldest-1, 10), ">")
		defer s.Close()
		return fmt.Sprint(ids(replayAll(s)))
	}
	for i, topic := range []string{"a", "b", "c", "a", "a", "a"} {
		if m := mustPublish(t, b, topic, "", big); retainedBytes(m) != size {
			t.Fatalf("event %d costs %d bytes, want %d", i+1, retainedBytes(m), size)
		}
	}
	if got := retained(); got != "[4 5 6]" {
		t.Errorf("retained %s, want [4 5 6]", got)
	}
	if got := b.Stats().HistoryBytes; got != int64(3*size) {
		t.Errorf("Stats().HistoryBytes = %d, want %d (three events)", got, 3*size)
	}
	want := []TopicInfo{
		{Topic: "a", Subscribers: 0, LastEventID: "6"},
		{Topic: "c", Subscribers: 1, LastEventID: "3"},
	}
	if got := b.Topics(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Topics() =\n%v\nwant\n%v", got, want)
	}

	mustPublish(t, b, "c", "", small) // 7: three big and one small fit
	if got := retained(); got != "[4 5 6 7]" {
		t.Errorf("after a small event, retained %s, want [4 5 6 7]", got)
	}
	mustPublish(t, b, "c", "", small) // 8: the count cap evicts #4
	if got := retained(); got != "[5 6 7 8]" {
		t.Errorf("past the count cap, retained %s, want [5 6 7 8]", got)
	}
	mustPublish(t, b, "b", "", big+big+big) // 9: #5 goes by count, #6 by bytes: a has none left
	if got := retained(); got != "[7 8 9]" {
		t.Errorf("past the byte cap, retained %s, want [7 8 9]", got)
	}
	want = []TopicInfo{
		{Topic: "b", Subscribers: 0, LastEventID: "9"},
		{Topic: "c", Subscribers: 1, LastEventID: "8"},
	}
	if got := b.Topics(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after evicting a's events, Topics() =\n%v\nwant\n%v", got, want)
	}
	b.Close()
	if got := b.Stats().HistoryBytes; got != 0 {
		t.Errorf("after Close, Stats().HistoryBytes = %d, want 0", got)
	}
}

// TestResumeAfterByteEviction resumes around the oldest event a byte cap
// kept: from an evicted id whose successor is gone too, a reset and live
// events only; from the oldest retained id, exactly the rest.
func TestResumeAfterByteEviction(t *testing.T) {
	data := strings.Repeat("z", 500)
	b := newTestMemory(t, MemoryOptions{HistoryMaxBytes: eventBytes(t, data) * 3})
	for range 6 {
		mustPublish(t, b, "a", "", data) // 1..6; 4..6 retained
	}
	tests := []struct {
		last, replay string
		reset        bool
	}{
		{"2", "[]", true},
		{"3", "[4 5 6]", false}, // #3 is gone, but nothing after it is
		{"4", "[5 6]", false},
		{"5", "[6]", false},
	}
	subs := make([]Subscription, len(tests))
	for i, tt := range tests {
		s := mustSubscribe(t, b, tt.last, "a")
		subs[i] = s
		if (s.Reset() != "") != tt.reset || (tt.reset && !strings.Contains(s.Reset(), "older than the retained history (oldest id 4)")) {
			t.Errorf("resume from %s: Reset() = %q, want reset=%v", tt.last, s.Reset(), tt.reset)
		}
		if got := fmt.Sprint(ids(replayAll(s))); got != tt.replay {
			t.Errorf("resume from %s: replay %s, want %s", tt.last, got, tt.replay)
		}
	}
	m := mustPublish(t, b, "a", "", "live")
	for i, s := range subs {
		if got := queued(s); len(got) != 1 || got[0] != m.ID {
			t.Errorf("resume from %s: live %v, want [%d]", tests[i].last, got, m.ID)
		}
	}
}

// TestMassEvictionKeepsNoScratch evicts a whole history of small events
// with one large one: the scratch list of what was evicted, an id and a
// pointer per event, is let go at the next publish rather than kept for
// the broker's life.
func TestMassEvictionKeepsNoScratch(t *testing.T) {
	const events = 20000
	b := newTestMemory(t, MemoryOptions{HistorySize: events, HistoryMaxBytes: 4 << 20})
	for range events {
		mustPublish(t, b, "a", "", "x")
	}
	mustPublish(t, b, "a", "", strings.Repeat("x", 4<<20)) // evicts all the others
	if got := len(b.hist.evicted); got != events {
		t.Fatalf("the large event evicted %d events, want %d", got, events)
	}
	mustPublish(t, b, "a", "", "x")
	b.mu.Lock()
	defer b.mu.Unlock()
	if got := cap(b.hist.evicted); got > keptEvictedCap {
		t.Errorf("after the next publish the evicted scratch keeps capacity %d (%d bytes), want at most %d", got, 16*got, keptEvictedCap)
	}
}

// TestTopicMapShrinksWithItsTopics publishes to many topics once, then to
// one: once the history has let go of the many, the map of topics does not
// keep the memory it took for them.
func TestTopicMapShrinksWithItsTopics(t *testing.T) {
	const topics = 100000 // a map of some 4 MB
	b := newTestMemory(t, MemoryOptions{HistorySize: topics})
	for i := range topics {
		mustPublish(t, b, "user."+strconv.Itoa(i), "", "x")
	}
	for range topics { // evicts every event of the many
		mustPublish(t, b, "a", "", "x")
	}
	var with, without runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&with)
	b.mu.Lock()
	if len(b.topics) != 1 {
		b.mu.Unlock()
		t.Fatalf("%d topics active, want 1", len(b.topics))
	}
	fresh := make(map[string]*topicEntry, 1)
	maps.Copy(fresh, b.topics) // not maps.Clone, which keeps the size
	b.topics = fresh
	b.mu.Unlock()
	runtime.GC()
	runtime.ReadMemStats(&without)
	if got := int64(with.HeapAlloc) - int64(without.HeapAlloc); got > 64<<10 {
		t.Errorf("the map of one topic takes %d bytes more than a new one, want at most 64 KiB", got)
	}
}

// TestGroupShrinksWhenACrowdLeaves: a topic that stays active (its events
// retained) after a crowd of its subscribers left does not keep the list
// it took for all of them, nor does a wildcard pattern that one of them
// still holds.
func TestGroupShrinksWhenACrowdLeaves(t *testing.T) {
	const crowd = DefaultMaxSubscribers // 160 KB of pointers each
	b := newTestMemory(t, MemoryOptions{})
	mustPublish(t, b, "news", "", "retained")
	subs := make([]Subscription, crowd)
	for i := range subs {
		subs[i] = mustSubscribe(t, b, "", "news", "news.>")
	}
	for _, s := range subs[1:] {
		s.Close()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, g := range []*group{&b.topics["news"].group, b.wild["news.>"]} {
		if len(g.subs) != 1 || cap(g.subs) > 64 {
			t.Errorf("group %s: %d subscriptions in a list of capacity %d, want 1 in at most 64", g.pattern, len(g.subs), cap(g.subs))
		}
	}
}

// TestMassDropKeepsNoScratch: a publish that drops a crowd of slow
// subscribers at once does not keep the scratch list it took for them.
func TestMassDropKeepsNoScratch(t *testing.T) {
	const crowd = DefaultMaxSubscribers
	b := newTestMemory(t, MemoryOptions{SubscriberBuffer: 1})
	for range crowd {
		mustSubscribe(t, b, "", "a")
	}
	mustPublish(t, b, "a", "", "fills every queue")
	mustPublish(t, b, "a", "", "drops every subscriber")
	if st := b.Stats(); st.Dropped != crowd {
		t.Fatalf("%d subscribers dropped, want %d", st.Dropped, crowd)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if got := cap(b.dropped); got > keptDroppedCap {
		t.Errorf("the dropped scratch keeps capacity %d (%d bytes), want at most %d", got, 8*got, keptDroppedCap)
	}
}

// TestMatchedScratchShrinksWhenPatternsLeave: a publish to a topic that
// many wildcard patterns match grows the scratch list of matching groups
// to a pointer each (20,000 subscribers of 32 patterns each: 5 MB). Once
// those patterns are gone, the broker does not keep that list for its
// life.
func TestMatchedScratchShrinksWhenPatternsLeave(t *testing.T) {
	const (
		segments = 14 // 2^14 patterns of the topic, literal or "*" at each
		subs     = 400
		perSub   = 32
	)
	b := newTestMemory(t, MemoryOptions{})
	lits := segmentLits(segments)
	topic := "t." + strings.Join(lits, ".")
	open := make([]Subscription, subs)
	for i := range open {
		patterns := make([]string, perSub)
		for k := range patterns {
			// At least one "*": a wildcard pattern.
			patterns[k] = "t." + wildcardOf(lits, 1+i*perSub+k)
		}
		open[i] = mustSubscribe(t, b, "", patterns...)
	}
	mustPublish(t, b, topic, "", "to every pattern")
	b.mu.Lock()
	grown := cap(b.matched)
	b.mu.Unlock()
	if grown < subs*perSub {
		t.Fatalf("the publish matched into a scratch of capacity %d, want %d at least", grown, subs*perSub)
	}
	for _, s := range open {
		s.Close()
	}
	mustPublish(t, b, topic, "", "to none")
	b.Topics()
	b.mu.Lock()
	defer b.mu.Unlock()
	if got := cap(b.matched); got > keptGroupCap {
		t.Errorf("with no pattern left, the matched scratch keeps capacity %d (%d bytes), want at most %d", got, 8*got, keptGroupCap)
	}
}

// TopicsPage lets the lock go after every topicsScan topics, but a topic
// costs the groups its name matches, and the subscriptions of those when
// one has several patterns: 64 subscriptions of 32 patterns each,
// "t.*.s0.*.s2 …", match each of 1024 topics "t.xN.s0.s1 …" 2048 times,
// and a piece of 512 topics held the lock for some 180 ms, every publish
// waiting. A piece now ends at topicsScan topics or once it went through
// topicsWork groups and subscriptions, whichever comes first. The test
// counts the pauses: 16 subscriptions of 32 patterns make each of 64
// topics "t.xN.s0 …" cost 1+512+512, so a piece ends after 4 of them,
// after 64 cheap topics "c.N" (1 each) first; a walk that paused every
// topicsScan topics alone makes no pause among 128.
func TestTopicsPagePausesAfterTopicsWorkAmongManyPatterns(t *testing.T) {
	const (
		subs   = 16
		perSub = 32
		topics = 64 // of each kind
	)
	b := newTestMemory(t, MemoryOptions{HistorySize: 2 * topics, SubscriberBuffer: topics})
	lits := segmentLits(11) // 2^11 patterns: literal or "*" at each
	for i := range subs {
		patterns := make([]string, perSub)
		for k := range patterns {
			patterns[k] = "t.*." + wildcardOf(lits, i*perSub+k)
		}
		mustSubscribe(t, b, "", patterns...)
	}
	var costs []int // of the topics in their order on the page
	for i := range topics {
		mustPublish(t, b, fmt.Sprintf("c.%03d", i), "", "x")
		costs = append(costs, 1) // its own group, no subscription
	}
	for i := range topics {
		mustPublish(t, b, fmt.Sprintf("t.x%03d.", i)+strings.Join(lits, "."), "", "x")
		costs = append(costs, 1+2*subs*perSub) // its own group, the patterns' and their subscriptions
	}
	want, scanned, work := 0, 0, 0 // the pauses the rule makes
	for _, c := range costs {
		if scanned == topicsScan || work >= topicsWork {
			want++
			scanned, work = 0, 0
		}
		scanned++
		work += c
	}
	if want != topics/4-1 {
		t.Fatalf("the rule makes %d pauses, the test expected %d", want, topics/4-1)
	}
	pauses := 0
	b.topicsPaused = func() { pauses++ }
	page, _ := b.TopicsPage("", 0)
	if len(page) != 2*topics || page[0].Subscribers != 0 || page[topics].Subscribers != subs {
		t.Fatalf("%d topics, %+v and %+v; want %d, none and %d subscribers", len(page), page[0], page[topics], 2*topics, subs)
	}
	if pauses != want {
		t.Errorf("TopicsPage let the lock go %d times, want %d: after %d topics or %d groups and subscriptions", pauses, want, topicsScan, topicsWork)
	}
}
