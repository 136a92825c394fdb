package natsbroker

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"testing"
)

// publishUntilAccepted's retry of a publish that was stored but answered
// 503 (its acknowledgement lost on the way back, as through a proxy that
// gave up) stores nothing more: every try carries the call's one
// Idempotency-Key. A proxy in front of the instance passes each publish
// on, and answers the first one 503 once the instance has stored it.
func TestPublishUntilAcceptedStoresOnce(t *testing.T) {
	ns := startNATS(t)
	in := newInstance(t, testBrokerOptions(ns))
	target, err := url.Parse(in.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var (
		mu   sync.Mutex
		keys []string // the Idempotency-Key of each try
	)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		first := len(keys) == 1
		mu.Unlock()
		if !first {
			proxy.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		proxy.ServeHTTP(rec, r)
		if rec.Code != http.StatusCreated {
			t.Errorf("the instance answered the first try %d, want 201", rec.Code)
		}
		http.Error(w, `{"error":"the event store did not answer in time: the event may have been stored"}`, http.StatusServiceUnavailable)
	}))
	defer front.Close()

	id := publishUntilAccepted(t, &instance{Server: front, broker: in.broker, h: in.h, closed: true}, "t", "once")
	mu.Lock()
	defer mu.Unlock()
	if len(keys) != 2 {
		t.Fatalf("%d tries, want 2: the first answered 503, the second 201", len(keys))
	}
	if n := storedEvents(t, in.broker); n != 1 {
		t.Fatalf("the stream holds %d events, want 1: the retry stored the event again", n)
	}
	if keys[0] == "" || keys[1] != keys[0] {
		t.Fatalf("Idempotency-Keys %q: want one key, the same on the retry", keys)
	}
	if first := strconv.FormatUint(in.broker.cur.Load().ids.id(1), 10); id != first {
		t.Fatalf("answered id %s, want the first event's %s", id, first)
	}
	// Another call is another event, though its data is the same.
	publishUntilAccepted(t, in, "t", "once")
	if n := storedEvents(t, in.broker); n != 2 {
		t.Fatalf("the stream holds %d events after a second call, want 2", n)
	}
}
