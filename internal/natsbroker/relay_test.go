package natsbroker

import (
	"io"
	"net"
	"sync"
	"testing"
)

// relay passes the TCP connections made to a port of its own on to a
// server's, until cut: then it closes them, and closes at once each
// connection made after, as the network does to a server that crashed
// (or to one cut off from it). Safe for concurrent use.
type relay struct {
	ln net.Listener

	mu     sync.Mutex
	target string // "" until set: connections are closed at once
	cut    bool
	conns  map[net.Conn]struct{} // both ends of each connection passed

	wg sync.WaitGroup // the goroutines; close waits for them
}

// newRelay starts a relay with no target yet, closed when the test
// ends.
func newRelay(t *testing.T) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, conns: make(map[net.Conn]struct{})}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(r.close)
	return r
}

// setTarget makes the relay pass the connections made from now on to
// target, a host:port.
func (r *relay) setTarget(target string) {
	r.mu.Lock()
	r.target = target
	r.mu.Unlock()
}

// addr is the relay's host:port.
func (r *relay) addr() string { return r.ln.Addr().String() }

func (r *relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.wg.Add(1)
		go r.pass(c)
	}
}

// pass copies between c and a connection to the target, both ways,
// until either ends or the relay is cut.
func (r *relay) pass(c net.Conn) {
	defer r.wg.Done()
	r.mu.Lock()
	target := r.target
	r.mu.Unlock()
	s, err := net.Dial("tcp", target)
	if err != nil {
		c.Close()
		return
	}
	r.mu.Lock()
	if r.cut {
		r.mu.Unlock()
		c.Close()
		s.Close()
		return
	}
	r.conns[c], r.conns[s] = struct{}{}, struct{}{}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(s, c)
		s.Close()
	}()
	_, _ = io.Copy(c, s)
	c.Close()
	<-done
	r.mu.Lock()
	delete(r.conns, c)
	delete(r.conns, s)
	r.mu.Unlock()
}

// cutOff closes every connection passed, and those to come.
func (r *relay) cutOff() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cut = true
	for c := range r.conns {
		c.Close()
	}
}

func (r *relay) close() {
	r.ln.Close()
	r.cutOff()
	r.wg.Wait()
}

// heal lets connections pass again after cutOff.
func (r *relay) heal() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cut = false
}
