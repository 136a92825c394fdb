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
// hijacked connection (a detached stream) is the handler's to end. Its
// methods are safe for concurrent use.
type openConns struct {
	n atomic.Int64
}

// track is the server's ConnState hook.
func (c *openConns) track(_ net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		c.n.Add(1)
	case http.StateClosed, http.StateHijacked:
		c.n.Add(-1)
	}
}

// count is how many connections are open now.
func (c *openConns) count() int64 {
	return c.n.Load()
}

// handlers counts the requests whose handler runs. A Gin stream's access
// line is written once its handler returns, after the stream has ended
// (handler.Handler.Wait): a shutdown that closed the connections still
// open waits for the handlers too, or the process could exit before the
// line. Its methods are safe for concurrent use.
type handlers struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed while n is 0; nil before the first
}

// serve runs next for a request, counted.
func (hs *handlers) serve(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hs.add(1)
		defer hs.add(-1)
		next.ServeHTTP(w, r)
	})
}

func (hs *handlers) add(d int) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.n == 0 { // the first to start
		hs.idle = make(chan struct{})
	}
	hs.n += d
	if hs.n == 0 {
		close(hs.idle)
	}
}

// wait blocks until no handler runs, or ctx is done.
func (hs *handlers) wait(ctx context.Context) error {
	hs.mu.Lock()
	idle := hs.idle
	hs.mu.Unlock()
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
