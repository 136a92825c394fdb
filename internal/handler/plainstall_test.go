package handler

import (
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/net/http2"
)

// TestHTTP2PlainAnswerToAStreamThatStopsReadingEnds asks for /metrics,
// a document of several KiB, over an HTTP/2 connection whose stream
// window is 100 bytes and never grows: the client reads its connection
// (its kernel and its frames) but not that stream. The handler's write
// waits for a WINDOW_UPDATE that never comes; the connection itself can
// still take bytes, so no connection timeout ends it. It must be reset
// once stream.write_timeout passes, as a stream's blocked write is, not
// hold its handler, its goroutine and its answer until the client
// leaves.
func TestHTTP2PlainAnswerToAStreamThatStopsReadingEnds(t *testing.T) {
	opts := testOptions()
	opts.Stream.WriteTimeout = time.Second
	returned := make(chan string, 16)
	opts.Middleware = []gin.HandlerFunc{func(c *gin.Context) {
		c.Next()
		returned <- c.Request.URL.Path
	}}
	ts := newHTTP2TestServer(t, opts)

	c := dialH2(t, ts, 100)
	id := c.open(t, "GET", "/metrics", nil, nil)
	start := time.Now()
	timeout := time.After(10 * opts.Stream.WriteTimeout)
	var reset bool
	for !reset {
		select {
		case f, ok := <-c.frames:
			if !ok {
				t.Fatal("connection ended, not the stream")
			}
			if r, ok := f.(*http2.RSTStreamFrame); ok && r.StreamID == id {
				reset = true
			}
		case <-timeout:
			t.Fatalf("a stalled /metrics answer was not reset within %v (stream.write_timeout %v)",
				time.Since(start), opts.Stream.WriteTimeout)
		}
	}
	select {
	case p := <-returned:
		if p != "/metrics" {
			t.Fatalf("returned %s", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler of /metrics did not return after its stream was reset")
	}
	if took := time.Since(start); took < opts.Stream.WriteTimeout/2 {
		t.Fatalf("reset after %v, before half of stream.write_timeout %v", took, opts.Stream.WriteTimeout)
	}
}
