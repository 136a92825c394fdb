package detached

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// bound is how long a test waits for what should happen at once before it
// fails: long enough never to be reached on a slow machine, short enough
// that a broken package fails the test instead of hanging it.
const bound = 10 * time.Second

// server is a test server whose every response is taken over by its group
// and served by a step of the test's making.
type server struct {
	*httptest.Server
	group   *Group
	ended   chan any   // what done was called with, once per response served
	refused chan error // what Take returned, once per response refused
}

// serve starts a server that sets hdr on each response, takes it over with
// g and serves it with the step newStep makes for its Conn. A refused
// response is answered 503 through net/http. At the end of the test the
// clients close first, then the group must drain within bound, then the
// server closes.
func serve(t testing.TB, g *Group, hdr http.Header, newStep func(c *Conn) func(w io.Writer) bool) *server {
	t.Helper()
	s := &server{group: g, ended: make(chan any, 16), refused: make(chan error, 16)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range hdr {
			w.Header()[k] = v
		}
		c, err := g.Take(w, r)
		if err != nil {
			s.refused <- err
			http.Error(w, "not taken", http.StatusServiceUnavailable)
			return
		}
		c.Serve(newStep(c), func(panicked any, _ []byte) { s.ended <- panicked })
	}))
	t.Cleanup(func() {
		g.Close()
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		defer cancel()
		if err := g.Wait(ctx); err != nil {
			t.Errorf("responses still running at the end of the test: %v", err)
		}
		s.Close()
	})
	return s
}

// dial sends a GET request in proto ("HTTP/1.1", "HTTP/1.0") to s over a
// connection of its own, which fails its reads and writes after bound and
// is closed at the end of the test.
func dial(t testing.TB, s *httptest.Server, proto string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(bound)); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(conn, "GET /events %s\r\nHost: ssehub.test\r\n\r\n", proto); err != nil {
		t.Fatal(err)
	}
	return conn
}

// get sends a GET request to s with Go's http.Client; the request is
// cancelled after bound.
func get(t *testing.T, s *server) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), bound)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// recv returns the next value from ch, failing the test if none comes
// within bound.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(bound):
		t.Fatalf("no %s within %v", what, bound)
	}
	var zero T
	return zero
}

// eventStream is the header an event stream's handler sets.
func eventStream() http.Header {
	return http.Header{"Content-Type": {"text/event-stream"}, "Cache-Control": {"no-store"}}
}

// writeAll makes steps that write each of writes, then end the response.
func writeAll(writes ...string) func(*Conn) func(io.Writer) bool {
	return func(*Conn) func(io.Writer) bool {
		return func(w io.Writer) bool {
			for _, s := range writes {
				if _, err := io.WriteString(w, s); err != nil {
					return false
				}
			}
			return false
		}
	}
}
