// Package detached serves long HTTP/1.x responses, such as event streams,
// from connections taken over from net/http.
//
// Why: net/http keeps about 25 KB per open response for as long as its
// handler runs: the serve goroutine's stack (which a Gin handler's first
// step grows to 8 KiB), 4 KiB of read buffer, 6 KiB of write buffers and
// the parsed request with its contexts and header maps. An event stream
// lives for hours and needs none of it.
// Take hijacks the connection once the response headers are known, so the
// handler returns at once and two small goroutines remain: one runs the
// stream's steps and writes each as one chunk straight to the socket, the
// other reads, to notice at once that the client went away. See
// docs/BENCHMARKS.md for what it saves, and what it costs: the connection
// is not reused after the response (it says Connection: close), and
// middleware sees the handler return when the stream starts, not when it
// ends.
//
// The package knows nothing of the framework above it: it takes an
// http.ResponseWriter, an *http.Request and a step function.
package detached

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// Errors Take returns; the response then stays with net/http.
var (
	// ErrClosed reports a Group that Close was called on.
	ErrClosed = errors.New("detached: group closed")
	// ErrNotHijackable reports a request that cannot be taken over: an
	// HTTP/2 request, or a ResponseWriter without a connection under it.
	ErrNotHijackable = errors.New("detached: response cannot be hijacked")
	// ErrEncoded reports a response whose headers say Content-Encoding:
	// a writer above the connection (a compression middleware's) encodes
	// its body, and a response taken over would bypass it, sending the
	// body as it is under a head that says otherwise. A compressor around
	// the whole handler that says so before the handler runs, under a
	// writer that can be hijacked (gorilla/handlers' CompressHandler),
	// is one.
	ErrEncoded = errors.New("detached: response has a Content-Encoding: its body is encoded by the writer")
)

// Group takes responses over and counts them until they end, so a server
// can wait for them at shutdown: http.Server.Shutdown does not wait for
// hijacked connections. The zero value is not ready: use NewGroup. A Group
// is safe for concurrent use.
type Group struct {
	mu      sync.Mutex
	n       int                // responses taken over and not ended
	conns   map[*Conn]struct{} // the Conns of those responses
	closed  bool               // Close was called: Take refuses
	cutting bool               // CloseConns was called: Take closes what it takes over
	drained chan struct{}      // closed once closed and n is 0

	// The answer to a panic before a response has started
	// (AnswerPanics); none when panicBody is nil.
	panicHeader http.Header
	panicBody   []byte

	// finish bounds the write of a response's last chunk, when longer
	// than finishTimeout (SetFinishTimeout).
	finish time.Duration

	// inspect looks at the connection of a response cut short
	// (InspectCuts); nil: none is.
	inspect func(net.Conn) bool
}

// NewGroup returns an empty, open Group.
func NewGroup() *Group {
	return &Group{conns: make(map[*Conn]struct{}), drained: make(chan struct{})}
}

// SetFinishTimeout gives the write of each response's last chunk d from
// when it starts, where it has a second: a stream's end is a write like
// the others, and a client that reads slowly gets it as it got the rest.
// A write deadline set later than that (Conn.SetWriteDeadline) still
// holds. Call it before the first Take.
func (g *Group) SetFinishTimeout(d time.Duration) {
	g.finish = d
}

// InspectCuts makes f look at the connection of each response cut short
// (its client gone, or a write failed) while it is still open, before it
// is closed: Conn.Inspected then reports what f said. Call it before the
// first Take.
func (g *Group) InspectCuts(f func(net.Conn) bool) {
	g.inspect = f
}

// AnswerPanics makes a step that panics before its response has written
// anything answer 500 with body, and the response's headers with those of
// hdr in their place (its Content-Type, say; a header of hdr without
// values is left out), where the connection would be cut: the client
// learns that the server failed, and an EventSource does not retry. Call
// it before the first Take.
func (g *Group) AnswerPanics(hdr http.Header, body []byte) {
	g.panicHeader, g.panicBody = hdr, body
}

// add counts a response in, unless the group is closed.
func (g *Group) add() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.n++
	return true
}

// done counts a response out; c is its Conn, nil if it never had one.
func (g *Group) done(c *Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.conns, c)
	g.n--
	if g.n == 0 && g.closed {
		close(g.drained)
	}
}

// Close makes Take refuse from now on. Responses already taken over go on
// until their step function ends them. Safe to call more than once.
func (g *Group) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	g.closed = true
	if g.n == 0 {
		close(g.drained)
	}
}

// Wait blocks until Close was called and every response taken over has
// ended, or ctx is done. A drained group returns nil even when ctx is done
// too: a select between the two would pick either.
func (g *Group) Wait(ctx context.Context) error {
	select {
	case <-g.drained:
		return nil
	default:
	}
	select {
	case <-g.drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CloseConns closes the connection of every response still going and
// returns how many there were: for a server whose shutdown has waited
// long enough (Wait gave up). A response being taken over meanwhile (its
// Take under way) has its connection closed as soon as it is, and is
// counted with them. A step blocked writing to a client that stopped
// reading then fails at once, and its response ends. A TLS connection is
// cut, without the close_notify alert that a client which stopped
// reading would hold up for seconds.
func (g *Group) CloseConns() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cutting = true
	for c := range g.conns {
		c.cut()
		_ = c.conn.Close()
	}
	return g.n // those in conns, and those whose Take is under way
}

// Take takes the connection of w over to answer r with status 200 and the
// headers already set on w, and returns it as a Conn. The headers are
// read there and then: the Conn keeps no reference to them, so that a
// change made to them later (by middleware, once the handler returned)
// reaches nothing. Nothing is written until the Conn's first write or
// flush. It fails, leaving w untouched, for an HTTP/2 request, a writer
// that cannot be hijacked, a response with a Content-Encoding (ErrEncoded),
// or a closed Group. The caller must then call
// Serve on the Conn, and must not use w again.
func (g *Group) Take(w http.ResponseWriter, r *http.Request) (*Conn, error) {
	if r.ProtoMajor != 1 || !hijackable(w) {
		return nil, ErrNotHijackable
	}
	if w.Header().Get("Content-Encoding") != "" {
		return nil, ErrEncoded
	}
	if !g.add() {
		return nil, ErrClosed
	}
	head := responseHead(r, w.Header())
	conn, rw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		g.done(nil)
		return nil, errors.Join(ErrNotHijackable, err)
	}
	c := newConn(g, conn, rw.Reader, head, r.ProtoAtLeast(1, 1))
	g.mu.Lock()
	g.conns[c] = struct{}{}
	if g.cutting { // CloseConns came while the connection was taken over
		c.cut()
		_ = c.conn.Close()
	}
	g.mu.Unlock()
	return c, nil
}

// hijackable reports whether every writer of w's Unwrap chain, down to the
// one at its bottom, can be hijacked. w must be asked, not that writer, so
// that wrappers (Gin's) learn of it; but a wrapper may have a Hijack method
// that panics when the writer under it has none, a middleware's wrapper
// that only unwraps, say.
func hijackable(w http.ResponseWriter) bool {
	for {
		if _, ok := w.(http.Hijacker); !ok {
			return false
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return true
		}
		w = u.Unwrap()
	}
}
