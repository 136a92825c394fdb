package main

import (
	"net"
	"net/http"
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
