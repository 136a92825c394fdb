package handler

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/stream"
)

func TestSubscriptionOutlivesItsHandler(t *testing.T) {
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

// rawGet sends a GET in the given protocol over a plain socket and returns
// everything the server sends until it closes the connection.
func rawGet(t *testing.T, ts *testServer, proto, path string) string {
	t.Helper()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
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

func TestStreamStaysAttachedWhenTheWriterCannotBeHijacked(t *testing.T) {
	// Like an HTTP/2 writer, this one has no Hijack: the stream must run
	// on the ResponseWriter, not panic.
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

// waitDrained calls Wait with a bound.
func waitDrained(t *testing.T, h *Handler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

func TestCloseEndsSubscriptions(t *testing.T) {
	opts, broker := hubOptions(t, stream.MemoryOptions{})
	ts := newTestServer(t, opts)
	p := ts.subscribe(t, "topic=a", nil)
	ts.publish(t, "a", `{"data": "before Close"}`)
	if ev := next(t, p); ev.Data != "before Close" {
		t.Fatalf("event %+v", ev)
	}
	ts.h.Close()
	if _, err := p.Next(); err != io.EOF {
		t.Fatalf("after Close: %v, want the stream to end", err)
	}
	ts.waitReturned(t, "/api/v1/events")
	if n := broker.Stats().Subscribers; n != 0 {
		t.Errorf("%d subscribers left after Close, want 0", n)
	}
}

func TestPanicInADetachedStreamIsLoggedAndCutsOnlyItsConnection(t *testing.T) {
	var logs logBuffer
	opts := testOptions()
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	ts := newTestServer(t, opts)
	h := ts.h
	cleaned := make(chan struct{})
	h.engine.GET("/panics", func(c *gin.Context) {
		s := h.openStream(c)
		s.run(func() bool { panic("boom") }, func() { close(cleaned) })
	})
	// It panics before the first byte: the client sees the connection cut.
	if resp, err := ts.Client().Get(ts.URL + "/panics"); err == nil {
		resp.Body.Close()
		t.Fatalf("GET /panics answered %d, want the connection cut", resp.StatusCode)
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
	if !strings.Contains(logs.String(), `msg="stream panicked" path=/panics panic=boom`) {
		t.Errorf("logs lack the panic:\n%s", logs.String())
	}
}
