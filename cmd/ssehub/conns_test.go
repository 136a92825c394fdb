package main

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"testing/synctest"
)

// TestHandlersCountWithoutAllocating: every request goes through the
// handlers count, so counting it must not allocate. One request at a time
// made a channel each (the count went from 0 to 1 every time).
func TestHandlersCountWithoutAllocating(t *testing.T) {
	var running handlers
	h := running.serve(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	if n := testing.AllocsPerRun(100, func() { h.ServeHTTP(nil, nil) }); n != 0 {
		t.Errorf("%v allocations a request, want 0", n)
	}
}

// TestHandlersWait: wait returns once no handler runs, whether one ran
// when it began or not, and not before.
func TestHandlersWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var running handlers
		if err := running.wait(t.Context()); err != nil {
			t.Fatalf("no handler ever ran: %v", err)
		}
		release := make(chan struct{})
		h := running.serve(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
		for range 2 {
			go h.ServeHTTP(nil, nil)
		}
		synctest.Wait()
		waited := make(chan error, 1)
		go func() { waited <- running.wait(context.Background()) }()
		synctest.Wait()
		select {
		case err := <-waited:
			t.Fatalf("wait returned %v while two handlers ran", err)
		default:
		}
		release <- struct{}{}
		synctest.Wait()
		select {
		case err := <-waited:
			t.Fatalf("wait returned %v while a handler ran", err)
		default:
		}
		close(release)
		synctest.Wait()
		select {
		case err := <-waited:
			if err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatal("wait did not return once no handler ran")
		}
		// Until ctx is done, when one runs.
		block := make(chan struct{})
		go running.serve(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-block })).ServeHTTP(nil, nil)
		synctest.Wait()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := running.wait(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("wait with a handler running and ctx done: %v", err)
		}
		close(block)
		synctest.Wait()
		if err := running.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}
