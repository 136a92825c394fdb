package stream

import (
	"runtime"
	"strconv"
	"strings"
	"sync"
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
		if _, err := m.Publish("orders.eu.created", "order", data); err != nil {
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
			if _, err := m.Publish("orders.eu.created", "order", data); err != nil {
				b.Error(err)
				return
			}
		}
	})
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
	var wg sync.WaitGroup
	for i := range subs {
		subs[i] = mustSubscribe(b, m, "", pattern(i))
		wg.Go(func() {
			for range subs[i].C() {
			}
		})
	}
	drained := func() {
		for _, s := range subs {
			for len(s.C()) > 0 {
				runtime.Gosched()
			}
		}
	}
	data := strings.Repeat("x", 100)
	b.ReportAllocs()
	i, inPublish := 0, time.Duration(0)
	for b.Loop() {
		t0 := time.Now()
		if _, err := m.Publish("news.sport", "", data); err != nil {
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

// BenchmarkSubscribeReplay measures resuming from the start of a full
// 10,000-event history, matching one topic in four.
func BenchmarkSubscribeReplay(b *testing.B) {
	m := newTestMemory(b, MemoryOptions{})
	for i := range DefaultHistorySize {
		if _, err := m.Publish("t"+strconv.Itoa(i%4), "", "x"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		s, err := m.Subscribe([]string{"t1"}, "1")
		if err != nil {
			b.Fatal(err)
		}
		if len(s.Replay()) != DefaultHistorySize/4 {
			b.Fatalf("replayed %d", len(s.Replay()))
		}
		s.Close()
	}
}
