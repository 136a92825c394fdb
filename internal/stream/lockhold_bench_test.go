package stream

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkReplayStepLongPatterns measures one step of a replay
// (replayScan, which holds the broker's lock) of a resume over a history
// of 2000 events of a topic of 127 segments (253 bytes): long, 32
// patterns of 253 bytes that each match it but for their last two
// segments; short, one pattern of another topic. Neither hands out an
// event. The resume is made again, the timer stopped, once its replay is
// done. cpu-ns/op is the thread's CPU time a step (Linux only).
func BenchmarkReplayStepLongPatterns(b *testing.B) {
	const events = 2000
	m := newTestMemory(b, MemoryOptions{HistorySize: events})
	for range events {
		mustPublish(b, m, deepTopic(), "", "x")
	}
	long := longPatterns()
	for _, c := range []struct {
		name     string
		patterns []string
	}{
		{"long", long},
		{"short", []string{"b.*"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := mustSubscribe(b, m, "1", c.patterns...).(*memorySubscription)
			var cpu cpuClock
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			first := true
			for b.Loop() {
				if first { // after the first call: b.Loop resets then
					cpu.run()
					first = false
				}
				if _, _, done := s.replayScan(nil, 0, 1<<20); done {
					cpu.stop() // before the timer's, which reads the memory statistics
					b.StopTimer()
					s.Close()
					s = mustSubscribe(b, m, "1", c.patterns...).(*memorySubscription)
					b.StartTimer()
					cpu.run()
				}
			}
			cpu.stop()
			cpu.report(b)
			s.Close()
		})
	}
}

// BenchmarkTopicsPageManyPatterns lists 1024 topics "t.xN.s0 … s10",
// each of which 64 subscriptions of 32 patterns each ("t.*.s0.*.s2 …")
// match 2048 times. max-hold-cpu-ns is the thread's CPU time of the
// longest stretch that TopicsPage held the broker's lock in any run, from
// one pause (topicsPaused) to the next (Linux only); cpu-ns/op the whole
// list's.
func BenchmarkTopicsPageManyPatterns(b *testing.B) {
	const (
		subs   = 64
		perSub = 32
		topics = 1024
	)
	m := newTestMemory(b, MemoryOptions{HistorySize: topics, SubscriberBuffer: topics})
	lits := segmentLits(11)
	for i := range subs {
		patterns := make([]string, perSub)
		for k := range patterns {
			patterns[k] = "t.*." + wildcardOf(lits, i*perSub+k)
		}
		mustSubscribe(b, m, "", patterns...)
	}
	for i := range topics {
		mustPublish(b, m, "t.x"+strconv.Itoa(i)+"."+strings.Join(lits, "."), "", "x")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var cpu cpuClock
	var longest, last time.Duration
	m.topicsPaused = func() { // with the lock let go
		if now, ok := threadCPU(); ok {
			longest = max(longest, now-last)
			last = now
		}
	}
	for b.Loop() {
		cpu.run()
		last = cpu.start
		if page, _ := m.TopicsPage("", 0); len(page) != topics {
			b.Fatalf("%d topics, want %d", len(page), topics)
		}
		cpu.stop()
		if now, ok := threadCPU(); ok {
			longest = max(longest, now-last)
		}
	}
	cpu.report(b)
	if cpu.ok {
		b.ReportMetric(float64(longest.Nanoseconds()), "max-hold-cpu-ns")
	}
}
