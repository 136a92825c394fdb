package handler

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/stream"
	"github.com/ssehub/ssehub/internal/testlog"
)

// onlyIn skips a test of one transport in the other transport's pass.
func onlyIn(t *testing.T, detached bool) {
	t.Helper()
	if testDetached != detached {
		t.Skipf("a test of the %s transport: runs in its pass", transportName(detached))
	}
}

func TestDetachedSubscriptionOutlivesItsHandler(t *testing.T) {
	onlyIn(t, true)
	opts, _ := hubOptions(t, stream.MemoryOptions{})
	h := New(opts)
	handlerReturned := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if r.URL.Path == "/api/v1/events" {
			handlerReturned <- struct{}{}
		}
	}))
	ts := &testServer{Server: srv, h: h, returned: make(chan string, 16)}
	t.Cleanup(func() { h.Close(); srv.Close(); waitDrained(t, h) })

	p := ts.subscribe(t, "topic=a", nil)
	select {
	case <-handlerReturned:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler still holds the stream: it was not detached")
	}
	// The stream goes on without its handler.
	for i, data := range []string{"one", "two"} {
		ts.publish(t, "a", `{"data": "`+data+`"}`)
		if ev := next(t, p); ev.Data != data {
			t.Fatalf("event %d: %+v, want data %q", i, ev, data)
		}
	}
}

// dial opens a plain TCP connection to the server, closed when the test
// ends, with a deadline that bounds every read and write on it.
func (ts *testServer) dial(t *testing.T) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return conn
}

// rawGet sends a GET in the given protocol over a plain socket and returns
// everything the server sends until it closes the connection.
func rawGet(t *testing.T, ts *testServer, proto, path string) string {
	t.Helper()
	conn := ts.dial(t)
	if _, err := io.WriteString(conn, "GET "+path+" "+proto+"\r\nHost: ssehub\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("reading until the server closes: %v", err)
	}
	return string(b)
}

func TestDetachedHTTP11StreamIsChunkedAndCloses(t *testing.T) {
	onlyIn(t, true)
	ts := newTestServer(t, testOptions())
	got := rawGet(t, ts, "HTTP/1.1", "/stream?count=2&interval=0s")
	head, body, ok := strings.Cut(got, "\r\n\r\n")
	if !ok {
		t.Fatalf("no response head in %q", got)
	}
	for _, want := range []string{"HTTP/1.1 200 OK\r\n", "Transfer-Encoding: chunked", "Connection: close", "Date: ", "Content-Type: text/event-stream; charset=utf-8"} {
		if !strings.Contains(head, want) {
			t.Errorf("head lacks %q:\n%s", want, head)
		}
	}
	if strings.Contains(head, "keep-alive") || strings.Count(head, "Connection:") != 1 {
		t.Errorf("head says keep-alive or Connection twice:\n%s", head)
	}
	if !strings.HasSuffix(body, "\r\n0\r\n\r\n") {
		t.Errorf("body does not end with the last chunk: %q", body)
	}
	// Go's own chunked reader must read it back, frame for frame.
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(got)), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, events := readAll(t, resp.Body)
	if len(events) != 3 || events[0].Data != "Streamed line 0" || events[2].Type != "close" {
		t.Errorf("events %+v, want two lines and close", events)
	}
}

func TestDetachedHTTP10StreamEndsWithTheConnection(t *testing.T) {
	onlyIn(t, true)
	ts := newTestServer(t, testOptions())
	got := rawGet(t, ts, "HTTP/1.0", "/stream?count=2&interval=0s")
	head, body, _ := strings.Cut(got, "\r\n\r\n")
	if !strings.HasPrefix(head, "HTTP/1.0 200 OK\r\n") || !strings.Contains(head, "Connection: close") {
		t.Errorf("head:\n%s\nwant HTTP/1.0 200 with Connection: close", head)
	}
	if strings.Contains(head, "Transfer-Encoding") {
		t.Errorf("HTTP/1.0 head with a transfer encoding:\n%s", head)
	}
	_, events := readAll(t, strings.NewReader(body))
	if len(events) != 3 || events[1].Data != "Streamed line 1" || events[2].Data != "bye" {
		t.Errorf("events %+v, want two lines and close", events)
	}
}

func TestDetachedStreamStaysWithGinWhenTheWriterCannotBeHijacked(t *testing.T) {
	// Like an HTTP/2 writer, this one has no Hijack: the stream must run
	// on the ResponseWriter, not panic.
	onlyIn(t, true)
	h := New(testOptions())
	defer h.Close()
	rec := httptest.NewRecorder()
	h.ServeHTTP(unhijackable{rec}, httptest.NewRequest("GET", "/stream?count=2&interval=0s", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Connection") != "keep-alive" {
		t.Errorf("status %d, Connection %q; want 200 and keep-alive", rec.Code, rec.Header().Get("Connection"))
	}
	_, events := readAll(t, rec.Body)
	if len(events) != 3 || events[2].Type != "close" {
		t.Errorf("events %+v, want two lines and close", events)
	}
}

// unhijackable is a ResponseWriter that flushes and can say the client
// went away (Gin's c.Stream needs both) but cannot be hijacked.
type unhijackable struct{ *httptest.ResponseRecorder }

func (unhijackable) CloseNotify() <-chan bool { return nil }

func TestCloseEndsSubscriptions(t *testing.T) {
	opts, broker := hubOptions(t, stream.MemoryOptions{})
	ts := newTestServer(t, opts)
	p := ts.subscribe(t, "topic=a", nil)
	ts.publish(t, "a", `{"data": "before Close"}`)
	if ev := next(t, p); ev.Data != "before Close" {
		t.Fatalf("event %+v", ev)
	}
	ts.h.Close()
	if _, err := nextEvent(p); !errors.Is(err, io.EOF) {
		t.Fatalf("after Close: %v, want the stream to end", err)
	}
	ts.waitReturned(t, "/api/v1/events")
	if n := broker.Stats().Subscribers; n != 0 {
		t.Errorf("%d subscribers left after Close, want 0", n)
	}
}

func TestGinStreamKeepsTheConnectionAlive(t *testing.T) {
	onlyIn(t, false)
	opts := testOptions()
	ts := newTestServer(t, opts)
	conn := ts.dial(t)
	r := bufio.NewReader(conn)
	get := func(path string) *http.Response {
		t.Helper()
		if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: ssehub\r\n\r\n"); err != nil {
			t.Fatalf("GET %s on the same connection: %v", path, err)
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("GET %s on the same connection: %v", path, err)
		}
		return resp
	}
	// Two streams, then a plain request, one after the other on one
	// connection.
	for i := range 2 {
		resp := get("/stream?count=2&interval=0s")
		if got := resp.Header.Get("Connection"); got != "keep-alive" || resp.Close {
			t.Errorf("stream %d: Connection %q, close %v; want keep-alive", i, got, resp.Close)
		}
		if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
			t.Errorf("stream %d: transfer encoding %v, want chunked", i, resp.TransferEncoding)
		}
		_, events := readAll(t, resp.Body)
		if len(events) != 3 || events[2].Type != "close" {
			t.Fatalf("stream %d: events %+v, want two lines and close", i, events)
		}
	}
	if resp := get("/healthz"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz after two streams: %d", resp.StatusCode)
	}
}

func TestMiddlewareSeesTheStreamsTrueEnd(t *testing.T) {
	onlyIn(t, false)
	opts := testOptions()
	type seen struct{ status, size int }
	returned := make(chan seen, 1)
	opts.Middleware = []gin.HandlerFunc{func(c *gin.Context) {
		c.Next()
		if c.Request.URL.Path == "/stream" {
			returned <- seen{c.Writer.Status(), c.Writer.Size()}
		}
	}}
	ts := newTestServer(t, opts)
	body, err := io.ReadAll(ts.do(t, "GET", "/stream?count=3&interval=20ms", nil, nil).Body)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-returned:
		// When the middleware's Next returned, every byte of the stream
		// had been written: the handler returned after the last frame.
		if got.status != http.StatusOK || got.size != len(body) {
			t.Errorf("middleware saw status %d and %d bytes written, want 200 and the whole stream's %d", got.status, got.size, len(body))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the middleware did not see the stream end")
	}
}

// routePanics adds GET /panics to h: a stream that takes a slot, as the
// stream routes do, runs step until it returns false (or panics), and
// done at its end.
func routePanics(h *Handler, step func(s *sseStream, w io.Writer) bool, done func()) {
	h.engine.GET("/panics", func(c *gin.Context) {
		if err := h.slots.take(); err != nil {
			h.abortWithError(c, err)
			return
		}
		s := h.openStream(c)
		s.run(func(w io.Writer) bool { return step(s, w) }, done)
	})
}

func TestPanicInAStreamIsLoggedAndCutsOnlyItsConnection(t *testing.T) {
	var logs testlog.Buffer
	opts := testOptions()
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	ts := newTestServer(t, opts)
	h := ts.h
	cleaned := make(chan struct{})
	first := true
	routePanics(h, func(s *sseStream, w io.Writer) bool {
		if first {
			first = false
			return s.send(w, time.Now())
		}
		panic("boom")
	}, func() { close(cleaned) })
	// It panics after the first step: the client sees the stream start,
	// then the connection cut, never a clean end.
	resp := ts.do(t, "GET", "/panics", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /panics: %d, want the stream to start", resp.StatusCode)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("the stream ended cleanly after a panic, want its connection cut")
	}
	// The stream's cleanup still runs (a subscription is let go of).
	select {
	case <-cleaned:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream's cleanup did not run after the panic")
	}
	// The process goes on: other requests are served.
	_, events := readAll(t, ts.do(t, "GET", "/stream?count=1", nil, nil).Body)
	if len(events) != 2 {
		t.Errorf("after the panic: %d events from /stream, want 2", len(events))
	}
	if !strings.Contains(logs.String(), "path=/panics panic=boom") {
		t.Errorf("logs lack the panic:\n%s", logs.String())
	}
	waitMetrics(t, ts, []string{`ssehub_streams_ended_total{reason="panicked"} 1`})
}

// TestPanicBeforeAStreamStartsAnswers500 panics in a stream's first step,
// before anything was written: in either transport the client gets the 500
// in JSON that Gin's recovery answers (an EventSource then stops, where a
// cut connection made it retry forever), the panic is logged once, and
// the stream's cleanup runs and its slot is given back. With Gin the access
// line and the metrics say 500; a detached stream's were taken when it was
// handed over (200), and its "stream panicked" line says it answered 500.
func TestPanicBeforeAStreamStartsAnswers500(t *testing.T) {
	var logs testlog.Buffer
	opts := testOptions()
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	ts := newTestServer(t, opts)
	h := ts.h
	cleaned := make(chan struct{})
	routePanics(h, func(*sseStream, io.Writer) bool { panic("boom") }, func() { close(cleaned) })
	resp := ts.do(t, "GET", "/panics", nil, map[string]string{"Origin": "http://elsewhere.test"})
	msg := wantJSONError(t, resp, http.StatusInternalServerError)
	if msg != "Internal Server Error" {
		t.Errorf("error %q, want nothing of the panic", msg)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q, want JSON's alone", ct)
	}
	// Nothing of the stream's own headers is left in the answer, whatever
	// the transport.
	for _, k := range []string{"Cache-Control", "X-Accel-Buffering"} {
		if v := resp.Header.Values(k); len(v) != 0 {
			t.Errorf("%s %q in the answer to the panic, want none: the stream's", k, v)
		}
	}
	select {
	case <-cleaned:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream's cleanup did not run after the panic")
	}
	code, line := "500", fmt.Sprintf("path=/panics status=500 bytes=%d ", len(internalErrorBody))
	if h.detached != nil {
		code, line = "200", "path=/panics status=200 bytes=0 "
	}
	waitMetrics(t, ts, []string{
		`ssehub_http_requests_total{code="` + code + `",method="GET",route="/panics"} 1`,
		`ssehub_streams_ended_total{reason="panicked"} 1`,
		`ssehub_streams_active 0`,
	})
	if n := h.slots.open.Load(); n != 0 {
		t.Errorf("%d stream slots still taken after the panic", n)
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), "panic=boom") })
	if logs.Count("path=/panics status=") != 1 || logs.Count(line) != 1 {
		t.Errorf("want one access line, %q:\n%s", line, logs.String())
	}
	if h.detached != nil && logs.Count("answered_500=true") != 1 {
		t.Errorf("the stream's panic line does not say it answered 500:\n%s", logs.String())
	}
	if n := strings.Count(logs.String(), "panic=boom"); n != 1 {
		t.Errorf("the panic logged %d times, want once:\n%s", n, logs.String())
	}
}

// TestMiddlewareThatSetsHeadersAfterAPanicInAStream sets a header once the
// handler returned, as a timing middleware may, while the stream's first
// step panics: a detached stream answers the panic on a goroutine of its
// own, and read the response's headers for it then, a data race on their
// map (fatal when it hits). The answer has the headers the stream started
// with, whichever transport, never the one set after.
func TestMiddlewareThatSetsHeadersAfterAPanicInAStream(t *testing.T) {
	opts := testOptions()
	opts.Middleware = []gin.HandlerFunc{func(c *gin.Context) {
		c.Next()
		c.Header("X-Response-Time", "1ms")
	}}
	ts := newTestServer(t, opts)
	h := ts.h
	routePanics(h, func(*sseStream, io.Writer) bool { panic("boom") }, func() {})
	resp := ts.do(t, "GET", "/panics", nil, nil)
	if msg := wantJSONError(t, resp, http.StatusInternalServerError); msg != "Internal Server Error" {
		t.Errorf("error %q, want nothing of the panic", msg)
	}
	if v := resp.Header.Values("X-Response-Time"); len(v) != 0 {
		t.Errorf("X-Response-Time %q in the answer, set after the handler returned", v)
	}
	waitMetrics(t, ts, []string{`ssehub_streams_active 0`})
}

func TestHTTP2StreamsAndSubscriptions(t *testing.T) {
	// Over TLS with Go's client, as browsers reach ssehub behind a TLS
	// proxy that speaks HTTP/2. A detached server keeps HTTP/2 streams
	// with Gin: only HTTP/1.x connections can be taken over. The write
	// timeout is testOptions' 10 s: every answer here must be written
	// within it, and a subscription idle past it over HTTP/2 is
	// TestHTTP2IdleSubscriptionOutlivesItsWriteTimeout's, in fake time.
	opts, _ := hubOptions(t, stream.MemoryOptions{})
	h := New(opts)
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	ts := &testServer{Server: srv, h: h, returned: make(chan string, 16)}
	t.Cleanup(func() { h.Close(); srv.Close(); waitDrained(t, h) })

	resp := ts.do(t, "GET", "/stream?count=3&interval=0s", nil, nil)
	if resp.ProtoMajor != 2 {
		t.Fatalf("protocol %s, want HTTP/2", resp.Proto)
	}
	wantStreamHeaders(t, resp)
	if _, events := readAll(t, resp.Body); len(events) != 4 || events[3].Type != "close" {
		t.Errorf("ticker events %+v, want three lines and close", events)
	}

	sub := ts.do(t, "GET", "/api/v1/events?topic=a", nil, nil)
	if sub.ProtoMajor != 2 {
		t.Fatalf("subscription protocol %s, want HTTP/2", sub.Proto)
	}
	wantStreamHeaders(t, sub)
	// The answer came once the subscription was registered.
	p := stream.NewParser(sub.Body)
	id := ts.publish(t, "a", `{"event": "note", "data": "over h2"}`)
	if ev := next(t, p); ev.ID != id || ev.Type != "note" || ev.Data != "over h2" {
		t.Errorf("event %+v, want id %s, note, over h2", ev, id)
	}
}

// TestPanicInTheFirstStepAfterItsWriteIsLoggedOnce panics in a stream's
// first step after it wrote: the stream has started, so its connection is
// cut, and the panic is logged once, whichever transport runs it (a
// detached stream's first step runs on the handler's goroutine, and its
// panic goes on to Gin's recovery, which logs it).
func TestPanicInTheFirstStepAfterItsWriteIsLoggedOnce(t *testing.T) {
	var logs testlog.Buffer
	opts := testOptions()
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	ts := newTestServer(t, opts)
	h := ts.h
	routePanics(h, func(s *sseStream, w io.Writer) bool {
		s.send(w, time.Now())
		panic("boom")
	}, func() {})
	// With Gin the step's bytes are still in net/http's buffer, and the
	// connection is cut before the head; detached, after it.
	if resp, err := http.Get(ts.URL + "/panics"); err == nil {
		if _, err := io.ReadAll(resp.Body); err == nil {
			t.Error("the stream ended cleanly after a panic, want its connection cut")
		}
		resp.Body.Close()
	}
	waitMetrics(t, ts, []string{`ssehub_streams_ended_total{reason="panicked"} 1`})
	waitFor(t, func() bool { return logs.Count("panicked") > 0 })
	if n := strings.Count(logs.String(), "panic=boom"); n != 1 {
		t.Errorf("the panic logged %d times, want once:\n%s", n, logs.String())
	}
}

// TestHTTP2RefusalsKeepTheConnection refuses requests over HTTP/2 for
// capacity and for a body announced too large: on HTTP/1.x these answers
// close their connection, but on HTTP/2 Go's server answers Connection:
// close with a GOAWAY on the whole connection, which every stream of a
// page shares. Every request must go over the one connection.
func TestHTTP2RefusalsKeepTheConnection(t *testing.T) {
	opts, _ := hubOptions(t, stream.MemoryOptions{})
	opts.Hub.PublishTokens = []string{"writer"}
	opts.Stream.MaxStreams = 1
	h := New(opts)
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	var conns atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	ts := &testServer{Server: srv, h: h, returned: make(chan string, 16)}
	t.Cleanup(func() { h.Close(); srv.Close(); waitDrained(t, h) })

	ts.holdStream(t, "/stream?count=2&interval=1m")
	big := strings.Repeat("x", 1<<20)
	for _, r := range []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/stream?count=1", "", http.StatusServiceUnavailable},
		{"GET", "/api/v1/events?topic=a", "", http.StatusServiceUnavailable},
		{"POST", "/api/v1/topics/a/events", big, http.StatusRequestEntityTooLarge},
		{"GET", "/api/v1/events?topic=a", big, http.StatusRequestEntityTooLarge},
		{"GET", "/healthz", "", http.StatusOK},
	} {
		resp := ts.do(t, r.method, r.path, strings.NewReader(r.body),
			map[string]string{"Content-Type": "application/json", "Authorization": "Bearer writer"})
		if resp.ProtoMajor != 2 || resp.StatusCode != r.status {
			t.Errorf("%s %s: %s %s, want HTTP/2 %d", r.method, r.path, resp.Proto, resp.Status, r.status)
		}
		if got := resp.Header.Values("Connection"); len(got) != 0 {
			t.Errorf("%s %s: Connection %q over HTTP/2", r.method, r.path, got)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("the server accepted %d connections, want 1: a refusal ended the shared one", n)
	}
}

// TestWaitWaitsForEveryStream holds a stream in its second step past
// Close: Wait must not report it ended, in either transport. Run waits
// with it once it has closed the connections still open at
// server.shutdown_timeout, so that the streams it cut have their ends
// counted and logged before the process exits; with Gin's transport Wait
// returned at once, and their lines were lost.
func TestWaitWaitsForEveryStream(t *testing.T) {
	ts := newTestServer(t, testOptions())
	h := ts.h
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // before the server's cleanup
	h.engine.GET("/held", func(c *gin.Context) {
		if err := h.slots.take(); err != nil {
			h.abortWithError(c, err)
			return
		}
		s := h.openStream(c)
		s.run(func(w io.Writer) bool {
			if !s.opened {
				return s.send(w, time.Now())
			}
			<-release
			return false
		}, func() {})
	})
	resp := ts.do(t, "GET", "/held", nil, nil)
	wantStreamHeaders(t, resp) // the first step has run
	h.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := h.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with a stream still open: %v, want it to wait (context canceled)", err)
	}
}

// TestPanicInAStreamsCleanupGivesBackItsSlot panics in a stream's cleanup
// (its subscription's Close, say): the stream still ends, counted and
// logged, and gives its slot back, in either transport. Its slot kept, a
// shutdown waited for it (Wait) until server.shutdown_timeout and then
// exited 1, and the stream held one of stream.max_streams for good; with
// the detached transport the panic, on the stream's own goroutine, ended
// the process.
func TestPanicInAStreamsCleanupGivesBackItsSlot(t *testing.T) {
	var logs testlog.Buffer
	opts := testOptions()
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	ts := newTestServer(t, opts)
	h := ts.h
	h.engine.GET("/cleanup-panics", func(c *gin.Context) {
		if err := h.slots.take(); err != nil {
			h.abortWithError(c, err)
			return
		}
		s := h.openStream(c)
		s.run(func(w io.Writer) bool {
			s.last = true
			s.send(w, time.Now())
			return false
		}, func() { panic("cleanup boom") })
	})
	resp := ts.do(t, "GET", "/cleanup-panics", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /cleanup-panics: %d, want the stream to start", resp.StatusCode)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	waitMetrics(t, ts, []string{
		`ssehub_streams_ended_total{reason="panicked"} 1`,
		`ssehub_streams_active 0`,
	})
	waitFor(t, func() bool { return strings.Contains(logs.String(), "cleanup boom") })
	// The server goes on serving.
	_, events := readAll(t, ts.do(t, "GET", "/stream?count=1", nil, nil).Body)
	if len(events) != 2 {
		t.Errorf("after the panic: %d events from /stream, want 2", len(events))
	}
	h.Close()
	waitDrained(t, h)
	if n := h.slots.open.Load(); n != 0 {
		t.Errorf("%d stream slots still taken after the panic", n)
	}
}

// TestAStreamWhoseClientHalfClosedIsCut sends a stream's request, then
// closes its side of the connection (as nc -N does at the end of its
// input) and reads on. A half-closed connection reads as a client gone,
// in either transport, so the stream ends at once: it must end cut, as
// every stream that did not come to its end, not with the last chunk of a
// complete response, which made one line of three (or none) look like
// the whole stream.
func TestAStreamWhoseClientHalfClosedIsCut(t *testing.T) {
	ts := newTestServer(t, testOptions())
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
	waitMetrics(t, ts, []string{`ssehub_streams_ended_total{reason="client_gone"} 1`})
}

// TestAOneStepStreamEndsCleanlyWhenItsClientHalfCloses: a stream whose
// one step is the whole of it (/stream?count=1) ends with the end of its
// body, though its client half-closed its connection after its request
// (nc -N): so it does in Gin's transport, as a stream whose last step
// has gone out. Detached, the step was written as any other, and the end
// of the body after it, by then cut for the client gone, was not: the
// client saw all of the stream, then a connection cut in the middle of
// it. The client's half-close races the step: either the stream has
// not begun (and is cut, with nothing sent) or it must end cleanly.
func TestAOneStepStreamEndsCleanlyWhenItsClientHalfCloses(t *testing.T) {
	ts := newTestServer(t, testOptions())
	for i := range 50 {
		conn := ts.dial(t)
		if _, err := io.WriteString(conn, "GET /stream?count=1 HTTP/1.1\r\nHost: ssehub\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			conn.Close()
			continue // cut before the stream began
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		conn.Close()
		if err != nil && strings.Contains(string(b), "event: close") {
			t.Fatalf("connection %d: the whole stream (%q), then %v: want the end of its body", i, b, err)
		}
	}
}

// TestCloseEndsStreamsWithASpreadRetry ends open streams of each kind
// with Close, over HTTP/1.1 and HTTP/2: each ends with a retry field of
// stream.retry plus up to as much again, chosen for each stream, so
// that an instance's EventSources do not all come back at once, exactly
// stream.retry after its shutdown. Each end counts as a shutdown's, and
// no event.
func TestCloseEndsStreamsWithASpreadRetry(t *testing.T) {
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		t.Run(proto, func(t *testing.T) {
			opts, _ := hubOptions(t, stream.MemoryOptions{})
			var ts *testServer
			if proto == "HTTP/2" {
				ts = newHTTP2TestServer(t, opts)
			} else {
				ts = newTestServer(t, opts)
			}
			var bodies []io.Reader
			for i := range 8 {
				path := "/stream?count=5&interval=1m"
				if i%2 == 1 {
					path = "/api/v1/events?topic=a"
				}
				resp := ts.do(t, "GET", path, nil, nil)
				wantStreamHeaders(t, resp)
				bodies = append(bodies, resp.Body)
			}
			waitMetrics(t, ts, []string{`ssehub_streams_active 8`, `ssehub_subscribers 4`})
			ts.h.Close()
			retries := map[int]bool{}
			for _, body := range bodies {
				b, err := io.ReadAll(body)
				if err != nil {
					t.Fatalf("stream after Close: %v, want its clean end", err)
				}
				frames := strings.Split(strings.TrimSuffix(string(b), "\n\n"), "\n\n")
				ms, err := strconv.Atoi(strings.TrimPrefix(frames[len(frames)-1], "retry: "))
				if err != nil {
					t.Fatalf("stream %q does not end with a retry field", b)
				}
				if low, high := opts.Stream.Retry, 2*opts.Stream.Retry; ms < int(low.Milliseconds()) || ms > int(high.Milliseconds()) {
					t.Errorf("last retry %d ms, want %v to %v", ms, low, high)
				}
				retries[ms] = true
			}
			if len(retries) < 2 {
				t.Errorf("retry fields %v: every stream comes back at the same moment", retries)
			}
			waitMetrics(t, ts, []string{
				`ssehub_streams_active 0`,
				`ssehub_streams_ended_total{reason="shutting_down"} 8`,
				`ssehub_stream_events_sent_total 4`,
			})
		})
	}
}

// TestAStreamAMiddlewareCompressesIsCompressed runs a stream under a
// compression middleware of Options.Middleware, made as gin-contrib/gzip
// is: it says Content-Encoding: gzip and wraps Gin's writer in one that
// compresses. Each transport must send the stream compressed, as its head
// says. Detached, the connection was taken over under the wrapper: the
// head said gzip, the body went out as it was, and the client could read
// none of it.
func TestAStreamAMiddlewareCompressesIsCompressed(t *testing.T) {
	opts := testOptions()
	opts.Middleware = []gin.HandlerFunc{func(c *gin.Context) {
		c.Header("Content-Encoding", "gzip")
		c.Header("Vary", "Accept-Encoding")
		zw := gzip.NewWriter(c.Writer)
		c.Writer = &gzipWriter{c.Writer, zw}
		defer zw.Close()
		c.Next()
	}}
	streamIsCompressed(t, opts)
}

// streamIsCompressed asks a server with opts for a short stream over
// HTTP/1.1, accepting gzip: its head must say gzip, and its body, so
// decoded, hold the two lines and the close event.
func streamIsCompressed(t *testing.T, opts Options) {
	t.Helper()
	ts := newTestServer(t, opts)
	conn := ts.dial(t)
	if _, err := io.WriteString(conn, "GET /stream?count=2&interval=0s HTTP/1.1\r\nHost: ssehub\r\nAccept-Encoding: gzip\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := resp.Header.Get("Content-Encoding"); got != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip", got)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatalf("the body is not what its head says: %v", err)
	}
	_, events := readAll(t, zr)
	if len(events) != 3 || events[0].Data != "Streamed line 0" || events[2].Type != "close" {
		t.Errorf("events %+v, want two lines and close", events)
	}
}

// gzipWriter compresses what is written to Gin's writer under it, as
// gin-contrib/gzip's writer does (which has no Unwrap either).
type gzipWriter struct {
	gin.ResponseWriter
	zw *gzip.Writer
}

func (w *gzipWriter) Write(p []byte) (int, error)       { return w.zw.Write(p) }
func (w *gzipWriter) WriteString(s string) (int, error) { return w.zw.Write([]byte(s)) }

func (w *gzipWriter) Flush() {
	_ = w.zw.Flush()
	w.ResponseWriter.Flush()
}

// TestAStreamWhoseHeadAMiddlewareSentIsOneResponse runs a stream under a
// middleware of Options.Middleware that sends the response's head before
// the handler runs (WriteHeaderNow, as a Flush does). Gin's writer lets
// the connection be hijacked then, and net/http sends the head it holds
// first: detached, the stream's own head followed it, and the client read
// a second head where the first one's chunked body began. The stream must
// stay one response: in Gin's c.Stream, after the head that went out.
func TestAStreamWhoseHeadAMiddlewareSentIsOneResponse(t *testing.T) {
	opts := testOptions()
	opts.Middleware = []gin.HandlerFunc{func(c *gin.Context) {
		c.Header("X-Early", "1")
		c.Writer.WriteHeaderNow()
		c.Next()
	}}
	ts := newTestServer(t, opts)
	conn := ts.dial(t)
	if _, err := io.WriteString(conn, "GET /stream?count=2&interval=0s HTTP/1.1\r\nHost: ssehub\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Early") != "1" {
		t.Errorf("%s, X-Early %q: want the head the middleware sent", resp.Status, resp.Header.Get("X-Early"))
	}
	_, events := readAll(t, resp.Body)
	if len(events) != 3 || events[0].Data != "Streamed line 0" || events[2].Type != "close" {
		t.Errorf("events %+v, want two lines and close", events)
	}
}

// TestAStreamUnderACompressorThatUnwrapsIsSentAsItGoes runs a stream under
// a compression middleware whose writer unwraps, as
// http.ResponseController asks of wrappers: the stream must flush through
// it after each step, so the client reads the first event while the
// stream is still open. The flush went to the writer under the
// middleware's, past the compressor, which held every event until the
// stream ended (a minute here).
func TestAStreamUnderACompressorThatUnwrapsIsSentAsItGoes(t *testing.T) {
	opts := testOptions()
	opts.Middleware = []gin.HandlerFunc{func(c *gin.Context) {
		c.Header("Content-Encoding", "gzip")
		zw := gzip.NewWriter(c.Writer)
		c.Writer = unwrappingGzipWriter{&gzipWriter{c.Writer, zw}}
		defer zw.Close()
		c.Next()
	}}
	ts := newTestServer(t, opts)
	conn := ts.dial(t)
	if _, err := io.WriteString(conn, "GET /stream?count=2&interval=1m HTTP/1.1\r\nHost: ssehub\r\nAccept-Encoding: gzip\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	defer conn.Close() // first: closing the body would read the stream on
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatalf("no gzip header while the stream is open: %v", err)
	}
	p := stream.NewParser(zr)
	for {
		ev, err := p.Next()
		if err != nil {
			t.Fatalf("no event while the stream is open: %v", err)
		}
		if ev.Data != "" {
			if ev.Data != "Streamed line 0" {
				t.Errorf("first event %+v, want line 0", ev)
			}
			return
		}
	}
}

// unwrappingGzipWriter is gzipWriter with an Unwrap.
type unwrappingGzipWriter struct{ *gzipWriter }

func (w unwrappingGzipWriter) Unwrap() http.ResponseWriter { return w.gzipWriter.ResponseWriter }

// TestAStreamALazyCompressorCompressesIsCompressed runs a stream under a
// compression middleware that wraps Gin's writer at once but says
// Content-Encoding: gzip only at the first write (lazyGzipWriter), as
// compressors that wait to see the body do. Each transport must send the
// stream compressed. Detached, the connection was taken over before the
// first write, with no Content-Encoding yet: the stream went out as it
// was, past the compressor.
func TestAStreamALazyCompressorCompressesIsCompressed(t *testing.T) {
	opts := testOptions()
	opts.Middleware = []gin.HandlerFunc{func(c *gin.Context) {
		w := &lazyGzipWriter{ResponseWriter: c.Writer}
		c.Writer = w
		defer w.close()
		c.Next()
	}}
	streamIsCompressed(t, opts)
}

// lazyGzipWriter compresses what is written to Gin's writer under it, and
// says so (Content-Encoding: gzip) at the first write, not before.
type lazyGzipWriter struct {
	gin.ResponseWriter
	zw *gzip.Writer // made at the first write
}

func (w *lazyGzipWriter) Write(p []byte) (int, error) {
	if w.zw == nil {
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Add("Vary", "Accept-Encoding")
		w.zw = gzip.NewWriter(w.ResponseWriter)
	}
	return w.zw.Write(p)
}

func (w *lazyGzipWriter) WriteString(s string) (int, error) { return w.Write([]byte(s)) }

func (w *lazyGzipWriter) Flush() {
	if w.zw != nil {
		_ = w.zw.Flush()
	}
	w.ResponseWriter.Flush()
}

func (w *lazyGzipWriter) close() {
	if w.zw != nil {
		_ = w.zw.Close()
	}
}

// TestDetachedFallingBackUnderAWrappingMiddlewareIsLoggedOnce runs streams
// under a middleware that wraps the writer, with stream.transport
// detached: they stay with Gin (TestAStreamALazyCompressorCompressesIsCompressed),
// and the first of them is logged with a warning, once, so that whoever
// set detached learns that it does not apply. A middleware that does not
// wrap the writer leaves streams detached, and nothing is logged; nor is
// anything with the gin transport.
func TestDetachedFallingBackUnderAWrappingMiddlewareIsLoggedOnce(t *testing.T) {
	const warning = "a middleware wraps the response writer"
	for _, wraps := range []bool{true, false} {
		t.Run(fmt.Sprintf("wraps %v", wraps), func(t *testing.T) {
			var logs testlog.Buffer
			opts := testOptions()
			opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			opts.Middleware = []gin.HandlerFunc{func(c *gin.Context) {
				if wraps {
					c.Writer = wrappingWriter{c.Writer}
				}
				c.Next()
			}}
			ts := newTestServer(t, opts)
			for range 2 {
				conn := ts.dial(t)
				if _, err := io.WriteString(conn, "GET /stream?count=1&interval=0s HTTP/1.1\r\nHost: ssehub\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					t.Fatal(err)
				}
				if _, events := readAll(t, resp.Body); len(events) != 2 || events[1].Type != "close" {
					t.Fatalf("events %+v, want a line and close", events)
				}
				// A detached stream's connection closes after it.
				if want := testDetached && !wraps; resp.Close != want {
					t.Fatalf("detached %v, want %v", resp.Close, want)
				}
				ts.waitReturned(t, "/stream")
			}
			want := 0
			if testDetached && wraps {
				want = 1
			}
			if n := logs.Count(warning); n != want {
				t.Fatalf("%d warnings, want %d:\n%s", n, want, logs.String())
			}
			if want == 1 && !strings.Contains(logs.String(), "level=WARN") {
				t.Fatalf("not a warning:\n%s", logs.String())
			}
		})
	}
}
