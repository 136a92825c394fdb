// Package gcpace keeps data a process holds on purpose, such as the hub's
// history, out of the garbage collector's headroom.
//
// With GOGC=100 the heap may grow to twice the live heap before the next
// collection, so a 64 MiB history costs 128 MiB of memory and more: the
// history is counted once as live data and once more as room for garbage.
// Memory the process keeps by design, bounded by its configuration, needs
// no room for garbage of its own. While a source is registered with
// Exclude, the pacer sets the GC percentage after every collection so that
// the heap may grow by GOGC percent of the rest of the live heap (at least
// MinHeadroom) instead of GOGC percent of all of it. The collector still
// runs by its own rules; only its target moves. GOGC=off is left alone, and
// a memory limit (GOMEMLIMIT) applies as it would without the pacer.
package gcpace

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// MinHeadroom is the least the heap may grow between two collections while
// the pacer runs (times GOGC/100), so that a heap of mostly excluded data
// is not collected after every few allocations.
const MinHeadroom = 16 << 20

// pacer is the process's one pacer: the GC percentage is process-wide, so
// several registered sources (several servers in one test process) add up.
var pacer struct {
	mu      sync.Mutex
	sources map[*source]struct{}
	base    int    // the GC percentage before the first source registered
	percent int    // the GC percentage the pacer set last
	gen     uint64 // bumped when the last source leaves: ends the cycle chain
	samples []metrics.Sample
}

type source struct{ bytes func() int64 }

// sentinel is allocated once per collection; its cleanup runs after the
// collection that found it unreachable. It holds a pointer so that it is
// never combined with other small objects by the allocator.
type sentinel struct{ _ *int }

// Exclude registers bytes, which reports how many bytes of the live heap
// the caller holds on purpose, and returns a function that unregisters it.
// While any source is registered the GC percentage is set after every
// collection as the package comment says; when the last one leaves it is
// set back to what it was. Unless GOGC is off, Exclude also adjusts it now.
func Exclude(bytes func() int64) (stop func()) {
	s := &source{bytes: bytes}
	pacer.mu.Lock()
	defer pacer.mu.Unlock()
	if len(pacer.sources) == 0 {
		pacer.base = debug.SetGCPercent(100)
		debug.SetGCPercent(pacer.base)
		pacer.percent = pacer.base
		if pacer.sources == nil {
			pacer.sources = make(map[*source]struct{})
			pacer.samples = []metrics.Sample{
				{Name: "/gc/heap/live:bytes"},
				{Name: "/gc/scan/stack:bytes"},
				{Name: "/gc/scan/globals:bytes"},
			}
		}
		if pacer.base > 0 {
			arm(pacer.gen)
		}
	}
	pacer.sources[s] = struct{}{}
	if pacer.base > 0 {
		adjust()
	}
	return sync.OnceFunc(func() {
		pacer.mu.Lock()
		defer pacer.mu.Unlock()
		delete(pacer.sources, s)
		if len(pacer.sources) == 0 {
			pacer.gen++
			if pacer.base > 0 {
				debug.SetGCPercent(pacer.base)
			}
		}
	})
}

// arm makes adjust run after the next collection, for as long as gen is
// the pacer's generation.
func arm(gen uint64) {
	runtime.AddCleanup(&sentinel{}, afterGC, gen)
}

// afterGC runs on the runtime's cleanup goroutine after a collection.
func afterGC(gen uint64) {
	pacer.mu.Lock()
	defer pacer.mu.Unlock()
	if gen != pacer.gen || len(pacer.sources) == 0 {
		return
	}
	adjust()
	arm(gen)
}

// adjust sets the GC percentage for the sources' bytes and the heap the
// last collection found. pacer.mu must be held.
func adjust() {
	var held int64
	for s := range pacer.sources {
		held += max(s.bytes(), 0)
	}
	metrics.Read(pacer.samples)
	var scanned int64 // what GOGC is a percentage of: live heap, stacks, globals
	for _, s := range pacer.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			scanned += int64(s.Value.Uint64())
		}
	}
	if p := Percent(pacer.base, scanned, held); p != pacer.percent {
		debug.SetGCPercent(p)
		pacer.percent = p
	}
}

// Percent returns the GC percentage that lets the heap grow by base
// percent of scanned minus held, and by at least base percent of
// MinHeadroom, between two collections; at most base. The runtime's goal
// is the live heap plus percent/100 of scanned: the live heap, the
// stacks and the globals it scanned.
func Percent(base int, scanned, held int64) int {
	if base <= 0 || scanned <= 0 {
		return base
	}
	headroom := max(scanned-held, MinHeadroom) * int64(base) / 100
	p := (headroom*100 + scanned - 1) / scanned // rounded up
	return int(min(max(p, 1), int64(base)))
}
