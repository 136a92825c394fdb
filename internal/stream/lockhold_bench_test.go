package stream

import (
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

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
	lits := make([]string, 11)
	for j := range lits {
		lits[j] = "s" + strconv.Itoa(j)
	}
	for i := range subs {
		patterns := make([]string, perSub)
		for k := range patterns {
			n := i*perSub + k
			segs := slices.Clone(lits)
			for j := range segs {
				if n&(1<<j) != 0 {
					segs[j] = "*"
				}
			}
			patterns[k] = "t.*." + strings.Join(segs, ".")
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
