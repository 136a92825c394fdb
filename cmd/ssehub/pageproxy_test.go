package main

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/stream"
)

// newPageProxy is httputil.NewSingleHostReverseProxy(target) for the
// pages the browser tests serve in front of ssehub, which reads a
// request's body whole before it sends the request on (bodyFirst).
//
// Sent on as it came, the body was read by the Transport's writer even
// after ssehub had answered: having copied Content-Length bytes, the
// writer reads once more to see that the body ends there. Go's HTTP/1
// server drains and closes an unread body as the answer's head is written,
// and a stream's head is written at its first event: when the load delayed
// the writer's last read past that, it read a closed body, and the
// Transport closed the connection to ssehub under the stream (logged
// "ReverseProxy read error during body copy: ... use of closed network
// connection"; golang/go#40747). The page's POST /stream failed so, a
// network error.
func newPageProxy(target *url.URL) *httputil.ReverseProxy {
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &bodyFirst{next: http.DefaultTransport}
	return proxy
}

// bodyFirst reads a request's body whole, then has next send the request
// with the bytes read: the body the client sent is done with before the
// answer comes.
type bodyFirst struct{ next http.RoundTripper }

func (t *bodyFirst) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return t.next.RoundTrip(r)
	}
	b, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	r = r.Clone(r.Context())
	r.Body = io.NopCloser(bytes.NewReader(b))
	return t.next.RoundTrip(r)
}

// TestPageProxyStreamsWhenTheBodyEndsLate proxies POST /stream to ssehub
// through newPageProxy, the proxy's Transport made to read the end of the
// body (the read that finds it ends at Content-Length) only once the
// stream's first event has been passed on: as a loaded machine scheduled
// it in a CI run. The stream must come through whole, to [DONE].
func TestPageProxyStreamsWhenTheBodyEndsLate(t *testing.T) {
	base, _ := startMain(t, config.Default())
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newPageProxy(target)
	passedOn := make(chan struct{})
	proxy.Transport.(*bodyFirst).next = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Body != nil {
			r.Body = &lateEnd{ReadCloser: r.Body, left: r.ContentLength, until: passedOn}
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxy.ServeHTTP(&flushSignal{ResponseWriter: w, flushed: sync.OnceFunc(func() { close(passedOn) })}, r)
	}))
	t.Cleanup(page.Close)

	words := strings.Fields("alpha beta gamma delta")
	resp, err := page.Client().Post(page.URL+"/stream", "application/json",
		strings.NewReader(`{"text": "`+strings.Join(words, " ")+`", "interval": "100ms"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /stream through the proxy: %s", resp.Status)
	}
	p := stream.NewParser(resp.Body)
	var got []string
	for {
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("after %q: %v, want the stream whole", got, err)
		}
		got = append(got, ev.Data)
	}
	if len(got) != len(words)+1 || got[len(got)-1] != "[DONE]" {
		t.Fatalf("events %q, want %d tokens and [DONE]", got, len(words))
	}
}

// roundTripFunc is a function as an http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// lateEnd passes left bytes of a request body on, then holds any further
// read (the one that finds the end) until until is closed.
type lateEnd struct {
	io.ReadCloser
	left  int64
	until <-chan struct{}
}

func (b *lateEnd) Read(p []byte) (int, error) {
	if b.left <= 0 {
		<-b.until
		return b.ReadCloser.Read(p)
	}
	n, err := b.ReadCloser.Read(p[:min(int64(len(p)), b.left)])
	b.left -= int64(n)
	return n, err
}

// flushSignal calls flushed after each flush of its writer.
type flushSignal struct {
	http.ResponseWriter
	flushed func()
}

func (w *flushSignal) Flush() {
	http.NewResponseController(w.ResponseWriter).Flush() //nolint:errcheck // the test reads what came through
	w.flushed()
}

func (w *flushSignal) Unwrap() http.ResponseWriter { return w.ResponseWriter }
