package handler

import (
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/stream"
	"golang.org/x/net/http2"
)

// TestHTTP2UnderAWrapperThatDoesNotUnwrapEachAnswerKeepsItsBound runs,
// under a middleware whose writer does not unwrap and over HTTP/2 with
// TLS, a stream quiet for longer than stream.write_timeout between its
// events, which must live (a Go client reads it); then, to a client that
// gives its streams a window of 100 bytes and never more, a plain answer
// (/metrics) and a stream that writes on, each of which must be reset
// within ½ to 3× the timeout. The stream bounds its own writes through
// Gin's writer under the middleware's, which it reaches though that one
// hides it; the plain answers' bound, which it turns off, never sees it.
func TestHTTP2UnderAWrapperThatDoesNotUnwrapEachAnswerKeepsItsBound(t *testing.T) {
	opts := testOptions()
	opts.Stream.WriteTimeout = time.Second
	opts.Middleware = []gin.HandlerFunc{func(c *gin.Context) {
		c.Writer = wrappingWriter{c.Writer}
		c.Next()
	}}
	ts := newHTTP2TestServer(t, opts)

	t.Run("a quiet stream lives", func(t *testing.T) {
		resp := ts.do(t, "GET", "/stream?count=2&interval=2500ms", nil, nil)
		if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %d, want HTTP/2 200", resp.Proto, resp.StatusCode)
		}
		if _, events := readAll(t, resp.Body); len(events) != 3 || events[2].Type != "close" {
			t.Fatalf("events %+v, want 2 and close", events)
		}
	})
	for _, path := range []string{"/metrics", "/stream?count=10000&interval=0s"} {
		t.Run(path+" to a client that reads none of it is reset", func(t *testing.T) {
			c := dialH2(t, ts, 100)
			start := time.Now()
			id := c.open(t, "GET", path, nil, nil)
			took := waitReset(t, c, id, start, 10*opts.Stream.WriteTimeout)
			if took < opts.Stream.WriteTimeout/2 || took > 3*opts.Stream.WriteTimeout {
				t.Fatalf("reset after %v, want within ½ to 3× stream.write_timeout %v", took, opts.Stream.WriteTimeout)
			}
		})
	}
}

// waitReset waits until the server resets stream id of c, and returns how
// long after start it did; it fails the test if that takes longer than
// limit, or if the connection ends first.
func waitReset(t *testing.T, c *rawH2, id uint32, start time.Time, limit time.Duration) time.Duration {
	t.Helper()
	timeout := time.After(limit)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				t.Fatal("connection ended, not the stream")
			}
			if r, ok := f.(*http2.RSTStreamFrame); ok && r.StreamID == id {
				return time.Since(start)
			}
		case <-timeout:
			t.Fatalf("stream %d was not reset within %v", id, limit)
		}
	}
}

// TestHTTP2AnswerToAStreamThatPanickedBeforeItsFirstStepEnds subscribes,
// over HTTP/2, with a client that gives its streams no flow-control
// window, through a broker whose subscription panics before the stream's
// first step: the stream had turned the bound of plain answers off, and
// Gin's recovery answers 500 in JSON instead. That answer's body waited
// for a window with no deadline, held by net/http with its goroutine until
// the client left. It must be reset once stream.write_timeout passes, as
// any plain answer.
func TestHTTP2AnswerToAStreamThatPanickedBeforeItsFirstStepEnds(t *testing.T) {
	opts, broker := hubOptions(t, stream.MemoryOptions{})
	opts.Hub.Broker = panickingBroker{testBroker: broker, sub: true}
	opts.Stream.WriteTimeout = time.Second
	ts := newHTTP2TestServer(t, opts)
	c := dialH2(t, ts, 0)
	start := time.Now()
	id := c.open(t, "GET", "/api/v1/events?topic=a", nil, nil)
	took := waitReset(t, c, id, start, 10*opts.Stream.WriteTimeout)
	if took < opts.Stream.WriteTimeout/2 || took > 3*opts.Stream.WriteTimeout {
		t.Fatalf("reset after %v, want within ½ to 3× stream.write_timeout %v", took, opts.Stream.WriteTimeout)
	}
}

// unwrappingWriter is a middleware's writer that unwraps, as
// http.ResponseController asks of wrappers.
type unwrappingWriter struct{ gin.ResponseWriter }

func (w unwrappingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// TestHTTP2WriteTimeoutUnderAMiddlewaresWriterIsCounted subscribes over
// HTTP/2 with a client that gives its streams no flow-control window, the
// stream's writer wrapped by a middleware's that unwraps, or does not, or
// none. The first step's flush waits for a window until
// stream.write_timeout passes and the stream is reset: a write timeout,
// which ends the stream as write_failed and counts the subscriber as too
// slow (ssehub_slow_subscribers_dropped_total). Under a middleware's
// writer the flush went through Gin's Flush, which drops the error: the
// stream learnt of the reset as a client gone, and was not counted.
func TestHTTP2WriteTimeoutUnderAMiddlewaresWriterIsCounted(t *testing.T) {
	wrappers := []struct {
		name string
		wrap func(gin.ResponseWriter) gin.ResponseWriter
	}{
		{"no middleware", nil},
		{"a writer that does not unwrap", func(w gin.ResponseWriter) gin.ResponseWriter { return wrappingWriter{w} }},
		{"a writer that unwraps", func(w gin.ResponseWriter) gin.ResponseWriter { return unwrappingWriter{w} }},
	}
	for _, wr := range wrappers {
		t.Run(wr.name, func(t *testing.T) {
			opts, _ := hubOptions(t, stream.MemoryOptions{})
			opts.Stream.WriteTimeout = 500 * time.Millisecond
			if wr.wrap != nil {
				opts.Middleware = []gin.HandlerFunc{func(c *gin.Context) {
					c.Writer = wr.wrap(c.Writer)
					c.Next()
				}}
			}
			ts := newHTTP2TestServer(t, opts)
			c := dialH2(t, ts, 0)
			start := time.Now()
			id := c.open(t, "GET", "/api/v1/events?topic=a", nil, nil)
			waitReset(t, c, id, start, 20*opts.Stream.WriteTimeout)
			ts.waitReturned(t, "/api/v1/events")
			waitMetrics(t, ts, []string{
				`ssehub_streams_ended_total{reason="write_failed"} 1`,
				`ssehub_streams_ended_total{reason="client_gone"} 0`,
				`ssehub_slow_subscribers_dropped_total 1`,
			})
		})
	}
}

// TestHTTP2EndOfACompressedStreamIsBounded runs a stream under a
// compression middleware over HTTP/2, to a client whose flow-control
// window takes all of the stream but its last byte, and never grows: the
// end of the compressed body, which the middleware writes once the
// stream's handler has returned, waits for a window that never comes. It
// must be reset once stream.write_timeout passes, as any write is. The
// stream lifted its deadline after its last step, and turned the bound
// of plain answers off: net/http's goroutine, the stream and the
// middleware's compressor were held until the client left (and the
// stream's slot was given back already: stream.max_streams did not cap
// them).
func TestHTTP2EndOfACompressedStreamIsBounded(t *testing.T) {
	opts := testOptions()
	opts.Stream.WriteTimeout = time.Second
	opts.Middleware = []gin.HandlerFunc{func(c *gin.Context) {
		c.Header("Content-Encoding", "gzip")
		zw := gzip.NewWriter(c.Writer)
		c.Writer = &gzipWriter{c.Writer, zw}
		defer zw.Close()
		c.Next()
	}}
	ts := newHTTP2TestServer(t, opts)
	const path = "/stream?count=2&interval=0s"
	// The whole stream, compressed, to a client whose window it fits.
	c := dialH2(t, ts, 1<<16-1)
	id := c.open(t, "GET", path, nil, nil)
	total := 0
	for timeout, done := time.After(10*time.Second), false; !done; {
		select {
		case f, ok := <-c.frames:
			if !ok {
				t.Fatal("connection ended before the stream")
			}
			switch f := f.(type) {
			case *dataCopy:
				if f.id == id {
					total += len(f.data)
					done = f.end
				}
			case *http2.RSTStreamFrame:
				if f.StreamID == id {
					t.Fatalf("stream reset (%v) after %d bytes, want its end", f.ErrCode, total)
				}
			}
		case <-timeout:
			t.Fatalf("the stream did not end within 10s: %d bytes", total)
		}
	}
	c2 := dialH2(t, ts, uint32(total-1))
	id2 := c2.open(t, "GET", path, nil, nil)
	got := 0
	for timeout := time.After(20 * opts.Stream.WriteTimeout); ; {
		select {
		case f, ok := <-c2.frames:
			if !ok {
				t.Fatal("connection ended, not the stream")
			}
			switch f := f.(type) {
			case *dataCopy:
				if f.id == id2 {
					got += len(f.data)
				}
			case *http2.RSTStreamFrame:
				if f.StreamID == id2 {
					return
				}
			}
		case <-timeout:
			t.Fatalf("stream not reset within %v, %d bytes of %d sent", 20*opts.Stream.WriteTimeout, got, total)
		}
	}
}

// TestAnswersUnderAMiddlewareThatWritesAfterTheHandlerAreWhole runs, over
// HTTP/2 with a Go client, a middleware of Options.Middleware that
// writes after the route's handler has returned (a line of its own at the
// end of the answer) and then idles for longer than stream.write_timeout,
// as one exporting a span on the request's goroutine would: after its
// write and flush, or between two writes. The answer, a plain one or a
// stream's, must reach the client whole. The middleware's write set a
// deadline that stayed set while it idled, and over HTTP/2 a deadline
// that passes resets the answer, written or not: the client read an
// error where the answer ended. The idle is the scenario, not a wait for
// something to happen: the test asserts only what the client read. In a
// synctest bubble (h2c, bubbleServerH2), where the idle is fake time:
// over a real socket each answer had to be written within the 300 ms
// timeout, which a loaded machine could run out.
func TestAnswersUnderAMiddlewareThatWritesAfterTheHandlerAreWhole(t *testing.T) {
	onlyIn(t, false) // over HTTP/2 no stream is detached
	tails := map[string]string{"idle after": "\ntail\n", "idle between": "\ntail end\n"}
	for _, path := range []string{"/healthz", "/stream?count=2&interval=0s"} {
		for mode, tail := range tails {
			t.Run(path+" "+mode, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					opts := testOptions()
					opts.Stream.WriteTimeout = 300 * time.Millisecond
					idle := 3 * opts.Stream.WriteTimeout
					// The middleware's end: a test that fails waits for
					// it, so that nothing of the bubble is left asleep.
					ended := make(chan struct{})
					opts.Middleware = []gin.HandlerFunc{func(c *gin.Context) {
						defer close(ended)
						c.Next()
						switch c.Request.Header.Get("X-Tail") {
						case "idle after":
							_, _ = c.Writer.WriteString("\ntail\n")
							c.Writer.Flush()
							time.Sleep(idle)
						case "idle between":
							_, _ = c.Writer.WriteString("\ntail")
							time.Sleep(idle)
							_, _ = c.Writer.WriteString(" end\n")
							time.Sleep(idle)
						}
					}}
					h := New(opts)
					defer h.Close()
					defer func() { <-ended }()
					client := bubbleServerH2(t, h)
					req, err := http.NewRequest("GET", "http://ssehub"+path, nil)
					if err != nil {
						t.Fatal(err)
					}
					req.Header.Set("X-Tail", mode)
					resp, err := client.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
						t.Fatalf("%s %d, want HTTP/2 200", resp.Proto, resp.StatusCode)
					}
					body, err := io.ReadAll(resp.Body)
					if err != nil {
						t.Fatalf("the answer was cut after %d bytes %q: %v", len(body), body, err)
					}
					if !strings.HasSuffix(string(body), tail) {
						t.Fatalf("answer %q, want it to end with the middleware's %q", body, tail)
					}
				})
			})
		}
	}
}

// TestHTTP2WritesAfterAStreamUnderAMiddlewareThatDoesNotWrapAreBounded
// runs a stream over HTTP/2 under a middleware that does not wrap the
// writer and, once the stream's handler has returned, writes 64 KiB of its
// own and flushes, to a client whose flow-control window takes the stream
// and not that: the write waits for a window that never comes, and must
// be reset once stream.write_timeout passes. The stream had given Gin's
// writer back to the request, past the bound of plain answers: nothing
// bounded what middleware wrote after it, and net/http's goroutine was
// held until the client left.
func TestHTTP2WritesAfterAStreamUnderAMiddlewareThatDoesNotWrapAreBounded(t *testing.T) {
	onlyIn(t, false) // over HTTP/2 no stream is detached
	opts := testOptions()
	opts.Stream.WriteTimeout = time.Second
	tail := strings.Repeat("x", 64<<10)
	opts.Middleware = []gin.HandlerFunc{func(c *gin.Context) {
		c.Next()
		_, _ = c.Writer.WriteString(tail)
		c.Writer.Flush()
	}}
	ts := newHTTP2TestServer(t, opts)
	c := dialH2(t, ts, 4096)
	start := time.Now()
	id := c.open(t, "GET", "/stream?count=2&interval=0s", nil, nil)
	took := waitReset(t, c, id, start, 20*opts.Stream.WriteTimeout)
	if took < opts.Stream.WriteTimeout/2 {
		t.Fatalf("reset after %v, want no sooner than ½ stream.write_timeout %v", took, opts.Stream.WriteTimeout)
	}
}
