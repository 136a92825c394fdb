package handler

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
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

// TestHTTP1PlainAnswersToAClientThatStopsReadingEnd pipelines requests for
// /metrics on one connection and reads none of the answers: once the
// socket buffers are full, the answer being written blocks. Without a
// system bound on a closed receive window (Linux's TCP_USER_TIMEOUT, which
// this server does not set), nothing ended that write: the handler, its
// goroutine and its connection were held until the client left. It must
// fail within stream.write_timeout, as a stream's does.
func TestHTTP1PlainAnswersToAClientThatStopsReadingEnd(t *testing.T) {
	opts := testOptions()
	opts.Stream.WriteTimeout = time.Second
	returned := make(chan struct{}, 100000)
	var running atomic.Int32
	opts.Middleware = []gin.HandlerFunc{func(c *gin.Context) {
		running.Add(1)
		c.Next()
		running.Add(-1)
		returned <- struct{}{}
	}}
	ts := newTestServer(t, opts)
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	const requests = 4000 // some 40 MB of answers, far past the socket buffers
	go func() {
		// The server stops reading requests while it cannot write: this
		// write ends with the connection.
		_, _ = io.WriteString(conn, strings.Repeat("GET /metrics HTTP/1.1\r\nHost: ssehub\r\n\r\n", requests))
	}()
	// The handlers return one by one while their answers fit; then one
	// blocks. Wait until none has returned for three write timeouts, and
	// none runs (a slow machine's), or, blocked for good, 30 s.
	answered := 0
	for quiet, giveUp := false, time.After(30*time.Second); !quiet; {
		select {
		case <-returned:
			answered++
		case <-time.After(3 * opts.Stream.WriteTimeout):
			quiet = running.Load() == 0
		case <-giveUp:
			quiet = true
		}
	}
	if answered == requests {
		t.Fatal("every answer was written: the socket buffers took them all")
	}
	// The blocked answer failed and its connection was closed: reading
	// what was sent ends, at its end or with a reset (the server closed
	// with requests unread). Still blocked, the server would write on
	// once read, and wait for the next request.
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, conn); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection of a client that stopped reading was still open after %d answers: %v", answered, err)
	}
}

// wrappingWriter is a middleware's writer that does not unwrap, as many
// do: it hides the writers under it from http.ResponseController.
type wrappingWriter struct{ gin.ResponseWriter }

// TestHTTP2StreamUnderAWrapperThatDoesNotUnwrapStaysOpen runs a ticker
// stream over HTTP/2 whose events come 3 s apart, longer than
// stream.write_timeout, under a middleware whose writer does not unwrap.
// The stream could not find the plain answers' write bound under it to
// turn it off (unboundWrites), so the bound set a deadline at each of the
// stream's writes, and over HTTP/2 a deadline that passes resets the
// stream, idle or not: it was reset between two events. A stream is not a
// plain answer, whatever wraps its writer.
func TestHTTP2StreamUnderAWrapperThatDoesNotUnwrapStaysOpen(t *testing.T) {
	opts := testOptions()
	opts.Stream.WriteTimeout = time.Second
	opts.Middleware = []gin.HandlerFunc{func(c *gin.Context) {
		c.Writer = wrappingWriter{c.Writer}
		c.Next()
	}}
	ts := newHTTP2TestServer(t, opts)
	resp := ts.do(t, "GET", "/stream?count=2&interval=3s", nil, nil)
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %d, want HTTP/2 200", resp.Proto, resp.StatusCode)
	}
	// The two ticks, then the close event.
	if _, events := readAll(t, resp.Body); len(events) != 3 || events[2].Type != "close" {
		t.Fatalf("events %+v, want 2 and close", events)
	}
}

// TestAStreamUnderAWrapperThatDoesNotUnwrapIsCutWhenItsClientHalfCloses
// is TestAStreamWhoseClientHalfClosedIsCut under a middleware whose
// writer does not unwrap. The stream cuts its response by setting its
// write deadline in the past (ginWriter.cut), through the writers under
// its own: the middleware's hid them, the deadline was not set, and
// net/http ended the response with its last chunk: one line of three that
// looked like the whole stream.
func TestAStreamUnderAWrapperThatDoesNotUnwrapIsCutWhenItsClientHalfCloses(t *testing.T) {
	if testDetached {
		t.Skip("a detached stream takes its connection from under every writer")
	}
	opts := testOptions()
	opts.Middleware = []gin.HandlerFunc{func(c *gin.Context) {
		c.Writer = wrappingWriter{c.Writer}
		c.Next()
	}}
	ts := newTestServer(t, opts)
	conn := ts.dial(t)
	if _, err := io.WriteString(conn, "GET /stream?count=3&interval=1m HTTP/1.1\r\nHost: ssehub\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		defer resp.Body.Close()
		var b []byte
		if b, err = io.ReadAll(resp.Body); err == nil {
			t.Errorf("%s, then a clean end of %q: want the stream cut", resp.Status, b)
		}
	}
}

// TestPlainAnswerUnderAMiddlewareThatIdlesAfterItIsWhole answers /healthz
// under a middleware of Options.Middleware that, once the handler has
// written, takes twice stream.write_timeout before it returns (a
// span exported on the request's goroutine, say), then, in some cases,
// flushes. The write bound set at the handler's write bounds writing, not
// what comes after: the client must get the whole answer, over HTTP/1.1
// and HTTP/2. Over HTTP/2 the deadline passed while the middleware was
// busy reset the stream, written or not; over HTTP/1.1 the middleware's
// flush met the deadline passed, failed, and the connection was closed
// without the answer.
func TestPlainAnswerUnderAMiddlewareThatIdlesAfterItIsWhole(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		for _, flush := range []bool{false, true} {
			name := "HTTP/1.1"
			if h2 {
				name = "HTTP/2"
			}
			if flush {
				name += ", then a flush"
			}
			t.Run(name, func(t *testing.T) {
				opts := testOptions()
				// A second: the deadline is lifted as the handler
				// returns, and a loaded machine must not take longer to
				// get there.
				opts.Stream.WriteTimeout = time.Second
				returned := make(chan struct{})
				opts.Middleware = []gin.HandlerFunc{func(c *gin.Context) {
					defer close(returned)
					c.Next()
					// Busy with something else: this is the case, not a
					// wait for one.
					time.Sleep(2 * opts.Stream.WriteTimeout)
					if flush {
						c.Writer.Flush()
					}
				}}
				var ts *testServer
				if h2 {
					ts = newHTTP2TestServer(t, opts)
				} else {
					ts = newTestServer(t, opts)
				}
				resp, err := ts.Client().Get(ts.URL + "/healthz")
				if err == nil {
					defer resp.Body.Close()
					var b []byte
					if b, err = io.ReadAll(resp.Body); err == nil && (resp.StatusCode != http.StatusOK || string(b) != `{"status":"ok"}`) {
						t.Errorf("%s %d %q, want 200 and the whole answer", resp.Proto, resp.StatusCode, b)
					}
				}
				if err != nil {
					t.Errorf("GET /healthz: %v, want the whole answer", err)
				}
				<-returned
			})
		}
	}
}
