package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Missing events are counted per subscriber, against the events whose
// publish was accepted: an event a subscriber got although its publish
// failed does not make up for an accepted one another subscriber lacks.
func TestMissingIsCountedPerSubscriberAgainstTheAcceptedEvents(t *testing.T) {
	// The server's publish of event 1 reaches the subscribers but fails,
	// and its first subscriber gets, in place of event 2, one that was
	// never published (another event, as the run published none such).
	// The run then waits out -drain for event 2.
	var (
		mu        sync.Mutex
		subs      []chan string
		published int
		failed    int // events published but answered as failed
		skipped   int // accepted events the first subscriber was not sent
	)
	stray := string(appendPayload(nil, 1000, time.Now().UnixNano(), 64))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			ch := make(chan string, 1000)
			mu.Lock()
			subs = append(subs, ch)
			mu.Unlock()
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			http.NewResponseController(w).Flush()
			for {
				select {
				case data := <-ch:
					fmt.Fprintf(w, "data: %s\n\n", data)
					http.NewResponseController(w).Flush()
				case <-r.Context().Done():
					return
				}
			}
		}
		var body struct{ Data json.RawMessage }
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		seq, _, _ := parsePayload(string(body.Data))
		mu.Lock()
		for i, ch := range subs {
			if i == 0 && seq == 2 {
				skipped++
				ch <- stray
				continue
			}
			ch <- string(body.Data)
		}
		published++
		if seq == 1 {
			failed++
		}
		mu.Unlock()
		if seq == 1 {
			http.Error(w, "published, but answered as failed", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":"%d"}`, seq)
	}))
	defer srv.Close()
	rep, _, stderr := runJSON(t, "-url", srv.URL, "-scenario", "fanout", "-n", "2", "-no-metrics", "-publishers", "1",
		"-rate", "100", "-events", "10", "-duration", "30s", "-token", testToken)
	p, d := rep.Publish, rep.Delivery
	if p == nil || d == nil {
		t.Fatalf("report %+v; stderr: %s", rep, stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(subs) != 2 || int64(published) != p.Sent || p.Failed != int64(failed) || p.OK != p.Sent-int64(failed) {
		t.Fatalf("%d subscribers, %d published, %d of them answered as failed; publish = %+v: want 2, and all but event 1 accepted",
			len(subs), published, failed, *p)
	}
	if d.Expected != 2*p.OK || d.Missing != int64(skipped) || d.Delivered != d.Expected-int64(skipped) ||
		d.Unaccepted != 2*int64(failed) || d.Other != int64(skipped) {
		t.Errorf("delivery = %+v; want %d expected, %d of them missing (event 2 to the first subscriber), the rest delivered, "+
			"%d unaccepted (event 1 to both) and %d other (the stray one)", *d, 2*p.OK, skipped, 2*failed, skipped)
	}
	if published != 10 || failed != 1 || skipped != 1 {
		t.Errorf("%d published, %d answered as failed, %d not sent to the first subscriber; want 10, 1 and 1", published, failed, skipped)
	}
}
