package stream

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkPublishNoSubscribers measures the cost of accepting an event
// nobody listens to: validation, encoding, history.
func BenchmarkPublishNoSubscribers(b *testing.B) {
	m := newTestMemory(b, MemoryOptions{})
	data := strings.Repeat("x", 100)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := m.Publish(Publication{Topic: "orders.eu.created", Type: "order", Data: data}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublishNoSubscribersParallel is the same from every CPU, as
// concurrent HTTP publishers would call it.
func BenchmarkPublishNoSubscribersParallel(b *testing.B) {
	m := newTestMemory(b, MemoryOptions{})
	data := strings.Repeat("x", 100)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := m.Publish(Publication{Topic: "orders.eu.created", Type: "order", Data: data}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPublishWithKey is BenchmarkPublishNoSubscribers with an
// Idempotency-Key, a new one each time (a first publish, the usual case):
// the key's index entry and the clock read are its extra cost.
func BenchmarkPublishWithKey(b *testing.B) {
	m := newTestMemory(b, MemoryOptions{})
	data := strings.Repeat("x", 100)
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = fmt.Sprintf("4f1c2e7a-9b3d-4c55-8e21-%012d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p := Publication{Topic: "orders.eu.created", Type: "order", Data: data, Key: keys[i%len(keys)]}
		if _, _, err := m.Publish(p); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkFanout10k publishes a 100-byte event to 10,000 subscribers, each
// drained by its own goroutine as a stream loop would. Every 64 events it
// waits for the queues to empty so that no subscriber is dropped; the time
// per op therefore includes delivery; ns/publish is the publisher's share,
// the time Publish holds the broker.
func BenchmarkFanout10k(b *testing.B) {
	for _, bc := range []struct {
		name    string
		pattern func(i int) string
	}{
		{"exact", func(int) string { return "news.sport" }},
		{"wildcard", func(i int) string { return []string{"news.*", "news.>", ">"}[i%3] }},
	} {
		b.Run(bc.name, func(b *testing.B) { benchmarkFanout(b, 10_000, bc.pattern) })
	}
}

func benchmarkFanout(b *testing.B, n int, pattern func(int) string) {
	m := newTestMemory(b, MemoryOptions{MaxSubscribers: n})
	subs := make([]Subscription, n)
	taken := make([]atomic.Uint64, n) // events each subscriber took
	var wg sync.WaitGroup
	for i := range subs {
		subs[i] = mustSubscribe(b, m, "", pattern(i))
		wg.Go(func() {
			var buf []*Message
			for open := true; open; {
				<-subs[i].Ready()
				buf, open = subs[i].Take(buf[:0], 0)
				taken[i].Add(uint64(len(buf)))
			}
		})
	}
	drained := func() {
		want := m.Stats().Published
		for i := range taken {
			for taken[i].Load() < want {
				runtime.Gosched()
			}
		}
	}
	data := strings.Repeat("x", 100)
	b.ReportAllocs()
	i, inPublish := 0, time.Duration(0)
	for b.Loop() {
		t0 := time.Now()
		if _, _, err := m.Publish(Publication{Topic: "news.sport", Data: data}); err != nil {
			b.Fatal(err)
		}
		inPublish += time.Since(t0)
		if i++; i%64 == 0 {
			drained()
		}
	}
	drained()
	b.StopTimer()
	st := m.Stats()
	m.Close()
	wg.Wait()
	if st.Dropped != 0 {
		b.Fatalf("%d subscribers dropped", st.Dropped)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(st.Delivered), "ns/delivery")
	b.ReportMetric(float64(inPublish.Nanoseconds())/float64(st.Published), "ns/publish")
}

// BenchmarkIdleSubscription measures the heap that an idle subscription
// holds (the subscription, its queue and its wake-up, and its share of the
// group), as bytes/sub over 10,000 subscriptions to one topic, for the
// default subscriber buffer and a large one.
func BenchmarkIdleSubscription(b *testing.B) {
	const n = 10_000
	for _, buffer := range []int{DefaultSubscriberBuffer, 1024} {
		b.Run("buffer="+strconv.Itoa(buffer), func(b *testing.B) {
			var before, after runtime.MemStats
			var perSub float64
			for b.Loop() {
				m := NewMemory(MemoryOptions{SubscriberBuffer: buffer, MaxSubscribers: n, FirstID: 1})
				subs := make([]Subscription, n)
				runtime.GC()
				runtime.ReadMemStats(&before)
				for i := range subs {
					subs[i] = mustSubscribe(b, m, "", "idle.topic")
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				perSub = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
				runtime.KeepAlive(subs)
				m.Close()
			}
			b.ReportMetric(perSub, "bytes/sub")
		})
	}
}

// BenchmarkSubscribeReplay measures resuming from the start of a full
// 10,000-event history, matching one topic in four, and reading the replay
// as the handler does: in pieces of 64 KiB into a reused slice.
func BenchmarkSubscribeReplay(b *testing.B) {
	m := newTestMemory(b, MemoryOptions{})
	for i := range DefaultHistorySize {
		if _, _, err := m.Publish(Publication{Topic: "t" + strconv.Itoa(i%4), Data: "x"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	var buf []*Message
	for b.Loop() {
		s, err := m.Subscribe([]string{"t1"}, "1")
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for done := false; !done; {
			buf, done = s.Replay(buf[:0], 64<<10)
			n += len(buf)
		}
		if n != DefaultHistorySize/4 {
			b.Fatalf("replayed %d", n)
		}
		s.Close()
	}
}

// manyPatterns returns a broker holding 10,000 topics with an event each
// and 625 subscriptions of 32 wildcard patterns each (20,000 patterns,
// demo.p0.* to demo.p19999.*), none matching those topics: what anyone may
// open where subscribing needs no token.
func manyPatterns(b *testing.B) *Memory {
	m := newTestMemory(b, MemoryOptions{HistorySize: 1 << 20})
	for i := range 10_000 {
		if _, _, err := m.Publish(Publication{Topic: fmt.Sprintf("demo.t%d", i), Data: "x"}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 625 {
		patterns := make([]string, 32)
		for j := range patterns {
			patterns[j] = fmt.Sprintf("demo.p%d.*", i*32+j)
		}
		if _, err := m.Subscribe(patterns, ""); err != nil {
			b.Fatal(err)
		}
	}
	return m
}

// BenchmarkManyWildcardPatterns: a publish, and a GET /api/v1/topics,
// while 20,000 wildcard patterns are open. Each holds the broker's lock
// throughout, so its time is how long every other publish and
// subscription waits. Each has a broker of its own: the publishes, a
// million or more at the default -benchtime, evict the 10,000 topics
// that the list is to walk.
func BenchmarkManyWildcardPatterns(b *testing.B) {
	b.Run("publish", func(b *testing.B) {
		m := manyPatterns(b)
		for b.Loop() {
			if _, _, err := m.Publish(Publication{Topic: "demo.a", Data: "x"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("topics", func(b *testing.B) {
		m := manyPatterns(b)
		for b.Loop() {
			if got := m.Topics(); len(got) < 10_000 {
				b.Fatalf("%d topics", len(got))
			}
		}
	})
}

// BenchmarkTopicsPage: GET /api/v1/topics over 100,000 topics with an
// event each, the whole list (no limit) against a page of 100, the first
// one and one from the middle (after a name). Both walk every topic for
// the names; a page looks up the entries of 101 of them, not of all, and
// keeps no more than 202 names.
func BenchmarkTopicsPage(b *testing.B) {
	const topics = 100_000
	m := newTestMemory(b, MemoryOptions{HistorySize: topics})
	for i := range topics {
		if _, _, err := m.Publish(Publication{Topic: fmt.Sprintf("user.%06d", i), Data: "x"}); err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct {
		name         string
		after        string
		limit, items int
	}{
		{"all", "", 0, topics},
		{"page100", "", 100, 100},
		{"page100-middle", "user.050000", 100, 100},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if page, _ := m.TopicsPage(bc.after, bc.limit); len(page) != bc.items {
					b.Fatalf("%d topics, want %d", len(page), bc.items)
				}
			}
		})
	}
}

// BenchmarkPublishDuringTopics publishes while another goroutine lists
// 100,000 topics over and over (GET /api/v1/topics without limit): its
// max-wait-ms is the longest a publish waited, about the longest the list
// held the broker's lock at once.
func BenchmarkPublishDuringTopics(b *testing.B) {
	const topics = 100_000
	m := newTestMemory(b, MemoryOptions{HistorySize: 2 * topics})
	for i := range topics {
		if _, _, err := m.Publish(Publication{Topic: fmt.Sprintf("user.%06d", i), Data: "x"}); err != nil {
			b.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			m.Topics()
		}
	})
	var longest time.Duration
	for b.Loop() {
		start := time.Now()
		if _, _, err := m.Publish(Publication{Topic: "other", Data: "x"}); err != nil {
			b.Fatal(err)
		}
		longest = max(longest, time.Since(start))
		time.Sleep(100 * time.Microsecond) // let the list take the lock
	}
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(longest)/float64(time.Millisecond), "max-wait-ms")
}

// BenchmarkTakeInPieces empties a queue of 100,000 small events a piece
// of 64 KiB at a time, as a stream takes it: what the pieces cost
// together, the queue's rest not moved at each.
func BenchmarkTakeInPieces(b *testing.B) {
	const queued = 100_000
	broker := newTestMemory(b, MemoryOptions{HistorySize: 1, SubscriberBuffer: queued})
	for b.Loop() {
		b.StopTimer()
		s := mustSubscribe(b, broker, "", "t")
		for range queued {
			mustPublish(b, broker, "t", "", "x")
		}
		b.StartTimer()
		var got []*Message
		for n := 0; n < queued; n += len(got) {
			got, _ = s.Take(got[:0], 64<<10)
		}
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
}
