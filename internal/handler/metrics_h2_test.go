package handler

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

// Over HTTP/2, every stream's end is counted and gives its gauge back:
// one that completes, one whose client resets it, one whose client stops
// reading (flow control blocks its write past the write timeout).
func TestHTTP2StreamEndsSettleTheMetrics(t *testing.T) {
	opts, broker := hubOptions(t, stream.MemoryOptions{SubscriberBuffer: 100000})
	opts.Stream.WriteTimeout = time.Second // short, for the blocked stream; not so short a loaded machine fails the others
	ts := newHTTP2TestServer(t, opts)

	readAll(t, ts.do(t, "GET", "/stream?count=3&interval=0s", nil, nil).Body)
	ts.waitReturned(t, "/stream")

	ts.do(t, "GET", "/api/v1/events?topic=a", nil, nil)
	waitMetrics(t, ts, []string{`ssehub_subscribers 1`})
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/v1/events?topic=b", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	waitMetrics(t, ts, []string{`ssehub_subscribers 2`})
	cancel()
	resp.Body.Close()
	ts.waitReturned(t, "/api/v1/events")

	// The first subscription (topic a) reads no more: the events fill
	// the stream's flow-control window and its write blocks.
	data := strings.Repeat("x", 4000)
	for range 4000 {
		if _, _, err := broker.Publish(stream.Publication{Topic: "a", Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	ts.waitReturned(t, "/api/v1/events")
	waitMetrics(t, ts, []string{
		`ssehub_streams_active 0`,
		`ssehub_subscribers 0`,
		`ssehub_slow_subscribers_dropped_total 1`,
		`ssehub_streams_ended_total{reason="completed"} 1`,
		`ssehub_streams_ended_total{reason="client_gone"} 1`,
		`ssehub_streams_ended_total{reason="write_failed"} 1`,
	})
}

// TestHTTP2ResetWhileWritingIsAClientGone resets an HTTP/2 stream (as a
// browser does when its EventSource closes) while the stream's write is
// under way, held by flow control: the client went away, and the stream
// must end so, not as a failed write ("http2: stream closed"), which
// counted a client's leaving in write_failed, the reason that says the
// server could not deliver.
func TestHTTP2ResetWhileWritingIsAClientGone(t *testing.T) {
	const window = 100
	opts, _ := hubOptions(t, stream.MemoryOptions{})
	opts.Stream.WriteTimeout = time.Minute
	ts := newHTTP2TestServer(t, opts)

	c := dialH2(t, ts, window)
	id := c.open(t, "GET", "/api/v1/events?topic=a", nil, nil)
	waitMetrics(t, ts, []string{`ssehub_subscribers 1`})
	// An event larger than the stream's window: its write waits for a
	// WINDOW_UPDATE that never comes once the window is used up.
	ts.publish(t, "a", `{"data": "`+strings.Repeat("x", 500)+`"}`)
	for got := 0; got < window; {
		f, ok := <-c.frames
		if !ok {
			t.Fatalf("connection ended after %d bytes of the stream", got)
		}
		if d, ok := f.(*dataCopy); ok && d.id == id {
			got += len(d.data)
		}
	}
	c.reset(t, id)
	ts.waitReturned(t, "/api/v1/events")
	waitMetrics(t, ts, []string{
		`ssehub_streams_active 0`,
		`ssehub_streams_ended_total{reason="client_gone"} 1`,
		`ssehub_streams_ended_total{reason="write_failed"} 0`,
	})
}

// newHTTP2TestServer serves New(opts) over TLS with HTTP/2, its streams'
// ends reported to waitReturned.
func newHTTP2TestServer(t *testing.T, opts Options) *testServer {
	t.Helper()
	h := New(opts)
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	ts := &testServer{Server: srv, h: h, returned: make(chan string, 16)}
	h.streamEnded = func(path string) { ts.returned <- path }
	t.Cleanup(func() { h.Close(); srv.Close(); waitDrained(t, h) })
	return ts
}
