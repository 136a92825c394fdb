package main

import (
	"context"
	"io"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no goroutine outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// A run stops its monitor and its progress line before it returns, not
// only once its caller cancels ctx.
func TestBenchRunStopsItsGoroutines(t *testing.T) {
	srv := newDemoServer(t)
	o, err := parseOptions([]string{"-url", srv.URL, "-scenario", "ticker", "-n", "2", "-count", "3", "-interval", "0s", "-progress", "10ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	target, err := parseTarget(o.url, o.allowRemote, o.insecure)
	if err != nil {
		t.Fatal(err)
	}
	before := goleak.IgnoreCurrent() // the server's, the test's
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if rep := newBench(o, target, io.Discard).run(ctx); rep.Aborted != "" {
		t.Fatalf("the run aborted: %s", rep.Aborted)
	}
	// Kept-alive connections, the client's and the server's ends, may
	// outlive a run.
	goleak.VerifyNone(t,
		before,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("net/http.(*conn).serve"),
	)
}
