package main

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// openConns counts the connections net/http owns: from StateNew until
// StateClosed or StateHijacked, each connection's one terminal state. A
// hijacked connection (a detached stream) is the handler's to end. It
// also holds the connections still in StateNew, that have not yet given
// a request (over TLS, or finished their handshake and, for HTTP/2, its
// preface). Its methods are safe for concurrent use.
type openConns struct {
	n     atomic.Int64
	fresh sync.Map // net.Conn to struct{}: the connections in StateNew
}

// track is the server's ConnState hook.
func (c *openConns) track(conn net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		c.n.Add(1)
		c.fresh.Store(conn, struct{}{})
	case http.StateClosed, http.StateHijacked:
		c.n.Add(-1)
		c.fresh.Delete(conn)
	default:
		c.fresh.Delete(conn)
	}
}

// closeFresh closes the connections still in StateNew.
func (c *openConns) closeFresh() {
	c.fresh.Range(func(conn, _ any) bool {
		conn.(net.Conn).Close()
		return true
	})
}

// count is how many connections are open now.
func (c *openConns) count() int64 {
	return c.n.Load()
}

// handlers counts the requests whose handler runs. A Gin stream's access
// line is written once its handler returns, after the stream has ended
// (handler.Handler.Wait): a shutdown that closed the connections still
// open waits for the handlers too, or the process could exit before the
// line. Every request passes through it: counting is an atomic add, and
// takes the lock only when the count drops to 0 once wait has begun. Its
// methods are safe for concurrent use.
type handlers struct {
	n       atomic.Int64
	waiting atomic.Bool // set by wait, for good: the count's drops to 0 must be told

	mu   sync.Mutex
	idle chan struct{} // made by wait while n > 0; closed, and cleared, when n drops to 0
}

// serve runs next for a request, counted.
func (hs *handlers) serve(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hs.n.Add(1)
		defer hs.done()
		next.ServeHTTP(w, r)
	})
}

// done counts a handler's return. Of a drop to 0 and wait's check of n,
// whichever comes second sees the other (waiting is set before that
// check): a waiter either sees no handler or is told.
func (hs *handlers) done() {
	if hs.n.Add(-1) != 0 || !hs.waiting.Load() {
		return
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.idle != nil && hs.n.Load() == 0 { // not if another began meanwhile
		close(hs.idle)
		hs.idle = nil
	}
}

// wait blocks until no handler runs, or ctx is done.
func (hs *handlers) wait(ctx context.Context) error {
	hs.mu.Lock()
	hs.waiting.Store(true)
	if hs.n.Load() == 0 {
		hs.mu.Unlock()
		return nil
	}
	if hs.idle == nil {
		hs.idle = make(chan struct{})
	}
	idle := hs.idle
	hs.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
