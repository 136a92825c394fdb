package main

import (
	"net/http"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/config"
)

// TestRunKeepsTheHistoryOutOfGCHeadroom fills the hub's history with
// 24 MiB of events and checks that Run has told the collector so: the GC
// percentage drops below GOGC's 100, which lets the heap grow by 100 % of
// the rest of the live heap rather than of the history too. Without it a
// full 64 MiB history costs twice its bytes. With hub.history_gc_pacing
// false it stays 100.
func TestRunKeepsTheHistoryOutOfGCHeadroom(t *testing.T) {
	if testTransport != "gin" {
		t.Skip("the history, not the transport (no stream is opened): tested once, in the gin pass")
	}
	if p := debug.SetGCPercent(100); p != 100 {
		debug.SetGCPercent(p)
		t.Skipf("GOGC is %d here; the test expects Go's default, 100", p)
	}
	cfg := config.Default()
	cfg.Auth.PublishTokens = []string{"gc-test-token"}
	base, stop := startMain(t, cfg)

	data := strings.Repeat("h", 60<<10)
	for i := range 400 {
		if status, answer := publishOverHTTP(t, base, "gc-test-token", "gc.history", data); status != http.StatusCreated {
			t.Fatalf("publish %d: %d %s", i, status, answer)
		}
	}
	if got := gcPercentAfterCollections(t, func(p int) bool { return p < 100 }); got >= 100 {
		t.Fatalf("GC percentage %d with 24 MiB of history; want it below 100", got)
	}

	stop()
	if got := gcPercentAfterCollections(t, func(p int) bool { return p == 100 }); got != 100 {
		t.Errorf("GC percentage %d after Run returned; want 100 back", got)
	}

	// hub.history_gc_pacing: false leaves the collector to GOGC alone.
	cfg.Hub.HistoryGCPacing = false
	base, _ = startMain(t, cfg)
	for i := range 400 {
		if status, answer := publishOverHTTP(t, base, "gc-test-token", "gc.history", data); status != http.StatusCreated {
			t.Fatalf("publish %d with pacing off: %d %s", i, status, answer)
		}
	}
	if got := gcPercentAfterCollections(t, func(p int) bool { return p < 100 }); got != 100 {
		t.Errorf("GC percentage %d with hub.history_gc_pacing: false; want GOGC's 100", got)
	}
}

// gcPercentAfterCollections runs up to 100 collections, giving the pacer
// a chance to run after each, until the GC percentage satisfies ok, and
// returns it.
func gcPercentAfterCollections(t *testing.T, ok func(int) bool) int {
	t.Helper()
	sample := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	for range 100 {
		runtime.GC()
		runtime.Gosched()
		metrics.Read(sample)
		if p := int(sample[0].Value.Uint64()); ok(p) {
			return p
		}
	}
	return int(sample[0].Value.Uint64())
}
