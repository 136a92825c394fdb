package gcpace

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name            string
		base            int
		scanned, held   int64
		want            int
		wantGoalAtLeast int64 // scanned * want / 100 covers this headroom
	}{
		{"nothing held", 100, 200 * mib, 0, 100, 200 * mib},
		{"half held", 100, 200 * mib, 100 * mib, 50, 100 * mib},
		{"mostly held: the floor", 100, 68 * mib, 64 * mib, 24, MinHeadroom},
		{"GOGC=50", 50, 200 * mib, 100 * mib, 25, 50 * mib},
		{"GOGC=50, the floor scaled", 50, 68 * mib, 64 * mib, 12, MinHeadroom / 2},
		{"held above scanned", 100, 10 * mib, 64 * mib, 100, 10 * mib},
		{"a small heap", 100, 4 * mib, 1 * mib, 100, 4 * mib},
		{"GOGC=off", -1, 200 * mib, 100 * mib, -1, 0},
		{"nothing scanned yet", 100, 0, 0, 100, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Percent(tc.base, tc.scanned, tc.held)
			if got != tc.want {
				t.Fatalf("Percent(%d, %d, %d) = %d, want %d", tc.base, tc.scanned, tc.held, got, tc.want)
			}
			if got > 0 && tc.scanned*int64(got)/100 < tc.wantGoalAtLeast-tc.scanned/100 {
				t.Fatalf("headroom %d below %d", tc.scanned*int64(got)/100, tc.wantGoalAtLeast)
			}
		})
	}
}

// TestExclude holds 96 MiB on purpose, as the hub's history does, and
// checks that the collector's goal leaves room for garbage in proportion
// to the rest of the heap, not to the held bytes: without the pacer the
// goal is twice the live heap.
func TestExclude(t *testing.T) {
	base := debug.SetGCPercent(100)
	defer debug.SetGCPercent(base)
	const held = 96 << 20
	data := make([]byte, held)
	stop := Exclude(func() int64 { return held })
	defer stop()

	goal, live := settle(t, func(p int) bool { return p < 100 })
	// The rest of this test binary's heap is a few MiB, so the floor
	// decides: the goal is the live heap plus MinHeadroom, rounded up to
	// a whole percentage of the scanned bytes.
	if limit := live + MinHeadroom + live/50; goal > limit {
		t.Errorf("heap goal %d MiB with %d MiB live; want at most %d MiB", goal>>20, live>>20, limit>>20)
	}
	runtime.KeepAlive(data)

	stop()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GC percentage %d after the last source left; want it set back to 100", p)
	}
}

// TestExcludeGOGCOff leaves a disabled collector disabled.
func TestExcludeGOGCOff(t *testing.T) {
	base := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(base)
	stop := Exclude(func() int64 { return 1 << 30 })
	runtime.GC()
	runtime.GC()
	stop()
	if p := debug.SetGCPercent(-1); p != -1 {
		t.Errorf("GC percentage %d; want -1 (off) kept", p)
	}
}

// settle runs collections until the GC percentage satisfies ok, the pacer
// having run after one of them, and returns the heap goal and the live
// heap then. It fails the test after 100 collections.
func settle(t *testing.T, ok func(percent int) bool) (goal, live int64) {
	t.Helper()
	samples := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/gc/heap/live:bytes"}, {Name: "/gc/gogc:percent"}}
	for range 100 {
		runtime.GC()
		runtime.Gosched() // let the cleanup goroutine run
		pacer.mu.Lock()   // and finish, if it has started
		pacer.mu.Unlock() //nolint:staticcheck // empty on purpose: waits for a pacer run in progress
		metrics.Read(samples)
		if ok(int(samples[2].Value.Uint64())) {
			return int64(samples[0].Value.Uint64()), int64(samples[1].Value.Uint64())
		}
	}
	t.Fatalf("GC percentage still %d after 100 collections", samples[2].Value.Uint64())
	return 0, 0
}

// TestExcludeAdjustsAtOnce: a source registered while the heap already
// holds its bytes (the last collection counted them) moves the GC
// percentage at once, as Exclude says, not only after the next
// collection, which a heap below its goal may not run for minutes.
func TestExcludeAdjustsAtOnce(t *testing.T) {
	base := debug.SetGCPercent(100)
	defer debug.SetGCPercent(base)
	const held = 96 << 20
	data := make([]byte, held)
	runtime.GC() // the live heap counts data
	stop := Exclude(func() int64 { return held })
	defer stop()
	percent := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(percent)
	if p := percent[0].Value.Uint64(); p >= 100 {
		t.Errorf("GC percentage %d just after Exclude with %d MiB held; want it lowered at once", p, held>>20)
	}
	runtime.KeepAlive(data)
}
