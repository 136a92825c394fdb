package detached

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// response's two goroutines must end with it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestCloseWaitsForRunningResponses closes a group while a response runs:
// Take must refuse new ones, leaving them to net/http, and Wait must
// return only once the running one has ended.
func TestCloseWaitsForRunningResponses(t *testing.T) {
	release := make(chan struct{})
	g := NewGroup()
	s := serve(t, g, eventStream(), func(c *Conn) func(io.Writer) bool {
		return func(w io.Writer) bool {
			_, _ = io.WriteString(w, "data: hello\n\n")
			select {
			case <-release:
			case <-c.Context().Done():
			}
			return false
		}
	})
	running := get(t, s)
	g.Close()

	refused := get(t, s)
	if refused.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("after Close: %s, want net/http's 503", refused.Status)
	}
	if err := recv(t, s.refused, "refusal"); !errors.Is(err, ErrClosed) {
		t.Errorf("Take after Close: %v, want %v", err, ErrClosed)
	}
	if err := g.Wait(cancelled(t)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait while a response runs: %v, want %v", err, context.Canceled)
	}

	close(release)
	if body, err := io.ReadAll(running.Body); err != nil || string(body) != "data: hello\n\n" {
		t.Errorf("running response: %q, %v", body, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), bound)
	defer cancel()
	if err := g.Wait(ctx); err != nil {
		t.Errorf("Wait once it ended: %v", err)
	}
}

// TestWaitHonoursContext waits on a group that is never closed, then on
// one closed and drained with a context already done: the first must end
// with its context, the second must report the drain, every time.
func TestWaitHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewGroup()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		start := time.Now()
		if err := g.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Wait on an open group: %v, want %v", err, context.DeadlineExceeded)
		}
		if waited := time.Since(start); waited != time.Minute {
			t.Errorf("Wait returned after %v, want %v", waited, time.Minute)
		}

		g.Close()
		g.Close()
		for range 20 { // a select between both would pick either
			if err := g.Wait(cancelled(t)); err != nil {
				t.Fatalf("Wait on a drained group: %v, want nil", err)
			}
		}
	})
}

// TestTakeRefuses takes over responses that cannot be: Take must say so
// without touching the writer, which stays net/http's to answer with, and
// without counting the response in the group.
func TestTakeRefuses(t *testing.T) {
	tests := []struct {
		name  string
		proto int // the request's major version
		w     func(rec *httptest.ResponseRecorder, hijacks *int) http.ResponseWriter
	}{
		{"ResponseRecorder", 1, func(rec *httptest.ResponseRecorder, _ *int) http.ResponseWriter {
			return rec
		}},
		{"Gin-style wrapper over a writer without Hijack", 1, func(rec *httptest.ResponseRecorder, n *int) http.ResponseWriter {
			return ginStyle{rec, n}
		}},
		{"HTTP/2 request", 2, func(rec *httptest.ResponseRecorder, n *int) http.ResponseWriter {
			return ginStyle{failingHijacker{rec}, n}
		}},
		// A middleware's wrapper that unwraps but cannot hijack, between
		// Gin's and a writer that can: Gin's Hijack would panic on it.
		{"Gin-style wrapper over a wrapper without Hijack", 1, func(rec *httptest.ResponseRecorder, n *int) http.ResponseWriter {
			return ginStyle{unwrapOnly{failingHijacker{rec}}, n}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewGroup()
			rec := httptest.NewRecorder()
			var hijacks int
			w := tt.w(rec, &hijacks)
			w.Header().Set("Content-Type", "text/event-stream")
			r := httptest.NewRequest(http.MethodGet, "/events", nil)
			r.ProtoMajor, r.ProtoMinor = tt.proto, 0

			c, err := g.Take(w, r)
			if !errors.Is(err, ErrNotHijackable) || c != nil {
				t.Fatalf("Take: %v, %v; want nil, %v", c, err, ErrNotHijackable)
			}
			if hijacks != 0 || rec.Body.Len() != 0 || rec.Flushed {
				t.Errorf("writer touched: %d hijacks, body %q, flushed %v", hijacks, rec.Body, rec.Flushed)
			}
			if got := rec.Header().Get("Content-Type"); got != "text/event-stream" {
				t.Errorf("Content-Type now %q", got)
			}
			w.WriteHeader(http.StatusServiceUnavailable) // nothing was written before
			if rec.Code != http.StatusServiceUnavailable {
				t.Errorf("status %d after WriteHeader(503)", rec.Code)
			}
			g.Close()
			if err := g.Wait(cancelled(t)); err != nil {
				t.Errorf("Wait: %v; the refused response was counted", err)
			}
		})
	}
}

// TestTakeAfterHijack asks Take for a connection net/http no longer has:
// the handler hijacked it first. Take must say why, and not count the
// response in the group.
func TestTakeAfterHijack(t *testing.T) {
	g := NewGroup()
	errs := make(chan error, 1)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			errs <- err
			return
		}
		defer func() { _ = conn.Close() }()
		_, err = g.Take(w, r)
		errs <- err
	}))
	defer s.Close()
	conn := dial(t, s, "HTTP/1.1")
	if _, err := bufio.NewReader(conn).ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("client read %v, want %v", err, io.EOF)
	}
	err := recv(t, errs, "Take's error")
	if !errors.Is(err, ErrNotHijackable) || !errors.Is(err, http.ErrHijacked) {
		t.Errorf("Take: %v, want %v and %v", err, ErrNotHijackable, http.ErrHijacked)
	}
	g.Close()
	if err := g.Wait(cancelled(t)); err != nil {
		t.Errorf("Wait: %v; the refused response was counted", err)
	}
}

// ginStyle wraps a writer the way Gin's responseWriter does: it always has
// a Hijack method, which asserts that the writer under it has one too, and
// it unwraps to that writer. It counts the calls to Hijack.
type ginStyle struct {
	http.ResponseWriter
	hijacks *int
}

func (w ginStyle) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	*w.hijacks++
	return w.ResponseWriter.(http.Hijacker).Hijack()
}

func (w ginStyle) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// unwrapOnly wraps a writer as a middleware may: it unwraps to it, and
// has no Hijack method of its own.
type unwrapOnly struct{ http.ResponseWriter }

func (w unwrapOnly) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// failingHijacker is a ResponseRecorder with a Hijack method that fails.
type failingHijacker struct{ *httptest.ResponseRecorder }

func (failingHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, http.ErrNotSupported
}

// cancelled returns a context that is already done.
func cancelled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

// TestTakeRefusesAnEncodedResponse asks Take for a response whose headers
// say Content-Encoding, as a compression middleware's do: its writer
// encodes the body, and a response taken over would send it as it is
// under a head that says gzip. Take must refuse, leaving the response to
// net/http, and not count it in the group.
func TestTakeRefusesAnEncodedResponse(t *testing.T) {
	g := NewGroup()
	hdr := eventStream()
	hdr.Set("Content-Encoding", "gzip")
	s := serve(t, g, hdr, writeAll("data: taken\n\n"))
	resp := get(t, s)
	if err := recv(t, s.refused, "Take's refusal"); !errors.Is(err, ErrEncoded) {
		t.Errorf("Take: %v, want %v", err, ErrEncoded)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Close {
		t.Errorf("%s (Connection: close %v): want net/http's 503, the connection kept", resp.Status, resp.Close)
	}
	g.Close()
	if err := g.Wait(cancelled(t)); err != nil {
		t.Errorf("Wait: %v; the refused response was counted", err)
	}
}
