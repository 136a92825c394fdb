package stream

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// evictBenchSubs is how many subscribers the eviction benchmarks hold, and
// evictBenchReplays how many unfinished replays most scenarios with some
// open: resumes that have read nothing of their replay yet, as a stream
// blocked in its first write keeps one.
const (
	evictBenchSubs    = 5000
	evictBenchReplays = 3
)

// evictBench is a broker whose history is full: each publish evicts its
// oldest event. Its subscribers are registered after the history was
// filled, so they have nothing queued.
type evictBench struct {
	m    *Memory
	subs []Subscription
}

// newEvictBench fills a history of size events published to topic(i),
// then opens evictBenchSubs subscriptions to pattern and replays resumes
// of replayPattern from the oldest retained event, which read nothing.
func newEvictBench(b *testing.B, size int, topic func(int) string, pattern, replayPattern string, replays int) *evictBench {
	b.Helper()
	m := NewMemory(MemoryOptions{HistorySize: size, MaxSubscribers: evictBenchSubs + replays, FirstID: 1})
	for i := range size {
		if _, _, err := m.Publish(Publication{Topic: topic(i), Data: "x"}); err != nil {
			b.Fatal(err)
		}
	}
	e := &evictBench{m: m}
	for range evictBenchSubs {
		e.subs = append(e.subs, mustSubscribe(b, m, "", pattern))
	}
	for range replays {
		mustSubscribe(b, m, "1", replayPattern)
	}
	return e
}

// cpuClock adds up the CPU time of the benchmark's thread over the
// stretches it runs, for a cpu-ns/op metric: a loaded machine stretches
// the time on the clock, not that. The benchmark locks its goroutine to
// its thread.
type cpuClock struct {
	start, total time.Duration
	ok           bool
}

func (c *cpuClock) run() { c.start, c.ok = threadCPU() }

func (c *cpuClock) stop() {
	if now, ok := threadCPU(); ok && c.ok {
		c.total += now - c.start
	}
}

// report reports cpu-ns/op where the thread's CPU time can be read.
func (c *cpuClock) report(b *testing.B) {
	if c.ok {
		b.ReportMetric(float64(c.total.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// drain takes what every subscriber has queued.
func (e *evictBench) drain(buf []*Message) []*Message {
	for _, s := range e.subs {
		buf, _ = s.Take(buf[:0], 0)
	}
	return buf
}

// BenchmarkPublishEvicting measures Publish to evictBenchSubs subscribers
// while the history is full, each publish evicting its oldest event (of
// the subscribers' topic), with no replay unfinished (noreplay), with
// evictBenchReplays unfinished replays of the same topic (replay-same) and
// of another one (replay-other). exact: the subscribers and the events are
// on one topic; wildcard: the subscribers take b.* and the events go to
// b.0 to b.99. The subscribers' queues are emptied, the timer stopped,
// every 64 publishes; none is dropped. cpu-ns/op is the publishing
// thread's CPU time (Linux only).
func BenchmarkPublishEvicting(b *testing.B) {
	const size = 1024
	data := strings.Repeat("x", 100)
	for _, shape := range []struct {
		name    string
		pattern string
		topic   func(int) string
	}{
		{"exact", "a", func(int) string { return "a" }},
		{"wildcard", "b.*", func(i int) string { return "b." + strconv.Itoa(i%100) }},
	} {
		for _, rp := range []struct{ name, pattern string }{
			{"noreplay", ""},
			{"replay-same", shape.pattern},
			{"replay-other", "c"},
		} {
			b.Run(shape.name+"/"+rp.name, func(b *testing.B) {
				replays := 0
				if rp.pattern != "" {
					replays = evictBenchReplays
				}
				e := newEvictBench(b, size, shape.topic, shape.pattern, rp.pattern, replays)
				defer e.m.Close()
				var buf []*Message
				var cpu cpuClock
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if i == 0 { // after the first call: b.Loop resets then
						cpu.run()
					}
					if _, _, err := e.m.Publish(Publication{Topic: shape.topic(i), Data: data}); err != nil {
						b.Fatal(err)
					}
					if i++; i%64 == 0 {
						b.StopTimer()
						cpu.stop()
						buf = e.drain(buf)
						cpu.run()
						b.StartTimer()
					}
				}
				cpu.stop()
				cpu.report(b)
				if d := e.m.Stats().Dropped; d != 0 {
					b.Fatalf("%d subscribers dropped", d)
				}
			})
		}
	}
}

// BenchmarkPublishEvictingOthers measures a publish to a topic nobody
// subscribes to that evicts an event of a topic with evictBenchSubs
// subscribers: with no replay unfinished (noreplay), with
// evictBenchReplays (replay-other) or 500 (replay-other-500) unfinished
// replays of a third topic, which the evicted events do not match, and
// with evictBenchReplays (replay-crowd) or 500 (replay-crowd-500)
// unfinished replays of the crowd's topic. The broker is made again, the
// timer stopped, before the history holds no event of the crowd's topic.
// cpu-ns/op is the publishing thread's CPU time (Linux only).
func BenchmarkPublishEvictingOthers(b *testing.B) {
	const size = 8192
	data := strings.Repeat("x", 100)
	crowd := func(int) string { return "a" }
	for _, rp := range []struct {
		name    string
		replays int
		pattern string
	}{
		{"noreplay", 0, ""},
		{"replay-other", evictBenchReplays, "c"},
		{"replay-other-500", 500, "c"},
		{"replay-crowd", evictBenchReplays, "a"},
		{"replay-crowd-500", 500, "a"},
	} {
		b.Run(rp.name, func(b *testing.B) {
			e := newEvictBench(b, size, crowd, "a", rp.pattern, rp.replays)
			var cpu cpuClock
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i == 0 { // after the first call: b.Loop resets then
					cpu.run()
				}
				if _, _, err := e.m.Publish(Publication{Topic: "z", Data: data}); err != nil {
					b.Fatal(err)
				}
				if i++; i%size == 0 {
					b.StopTimer()
					cpu.stop()
					e.m.Close()
					e = newEvictBench(b, size, crowd, "a", rp.pattern, rp.replays)
					cpu.run()
					b.StartTimer()
				}
			}
			cpu.stop()
			cpu.report(b)
			e.m.Close()
		})
	}
}

// BenchmarkPublishEvictingAmongManyPatterns measures a publish to a topic
// nobody subscribes to that evicts an event of manyPatternsTopic while
// 1000 resumes of 32 patterns each (manyPatternsResume: one of them
// matches the topic, each its own) have read nothing of their replay,
// which holds the evicted event, and one more subscription shares the
// first resume's matching pattern: the eviction goes through the
// unfinished replays, each resume's groups looked at for the matching
// ones. The broker is made again, the timer stopped, before the history
// holds no event of the resumes' replays. cpu-ns/op is the publishing
// thread's CPU time (Linux only).
func BenchmarkPublishEvictingAmongManyPatterns(b *testing.B) {
	const (
		size    = 1024
		resumes = 1000
		perSub  = 32
	)
	topic := manyPatternsTopic()
	setup := func() *Memory {
		m := NewMemory(MemoryOptions{HistorySize: size, MaxSubscribers: resumes + 1, FirstID: 1})
		for range size {
			mustPublish(b, m, topic, "", "x")
		}
		mustSubscribe(b, m, "", manyPatternsMatching(0))
		for i := range resumes {
			mustSubscribe(b, m, "1", manyPatternsResume(i, perSub)...)
		}
		mustPublish(b, m, "z", "", "x") // evicts id 1, before the replays
		return m
	}
	m := setup()
	var cpu cpuClock
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == 0 { // after the first call: b.Loop resets then
			cpu.run()
		}
		if _, _, err := m.Publish(Publication{Topic: "z", Data: "x"}); err != nil {
			b.Fatal(err)
		}
		if i++; i%(size-1) == 0 {
			cpu.stop() // before the timer's, which reads the memory statistics
			b.StopTimer()
			m.Close()
			m = setup()
			b.StartTimer()
			cpu.run()
		}
	}
	cpu.stop()
	cpu.report(b)
	m.Close()
}
