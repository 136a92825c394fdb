package natsbroker

import (
	"bufio"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
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
	// routes is whether it reads the route protocol it passes
	// (readRoutes), and drop, if set, the messages of it that it drops,
	// by subject or reply (dropRoutes).
	routes bool
	drop   func(subject string) bool

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
	routes := r.routes
	r.mu.Unlock()
	copyConn := func(dst, src net.Conn) { _, _ = io.Copy(dst, src) }
	if routes {
		copyConn = func(dst, src net.Conn) { copyRoute(dst, src, r.dropped) }
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		copyConn(s, c)
		s.Close()
	}()
	copyConn(c, s)
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

// readRoutes has the relay, one between two servers' route ports, read
// the route protocol it passes, from its first connection on: called
// before any.
func (r *relay) readRoutes() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes = true
}

// dropRoutes has the relay, one that reads routes (readRoutes), drop
// each message whose subject or reply drop accepts, both ways, from now
// on, and pass the rest, as a firewall that filters some of the servers'
// traffic does. The connections stay up: closed, the routes took a
// second or more to come back, and an instance whose questions went
// unanswered meanwhile moved. heal does not end it.
func (r *relay) dropRoutes(t *testing.T, drop func(subject string) bool) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.routes {
		t.Fatal("dropRoutes on a relay that does not read routes (readRoutes)")
	}
	r.drop = drop
}

// dropped reports whether the relay drops a message of that subject or
// reply.
func (r *relay) dropped(subject string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.drop != nil && r.drop(subject)
}

// copyRoute copies NATS's route protocol from src to dst, one protocol
// line at a time (compression is off on the test's routes: both sides
// accept it, and neither asks), without the messages (RMSG, HMSG) whose
// subject or reply drop accepts, until either fails.
func copyRoute(dst, src net.Conn, drop func(subject string) bool) {
	br := bufio.NewReaderSize(src, 1<<16)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		fields := strings.Fields(line)
		if len(fields) < 3 || fields[0] != "RMSG" && fields[0] != "HMSG" {
			if _, err := io.WriteString(dst, line); err != nil {
				return
			}
			continue
		}
		size, err := strconv.Atoi(fields[len(fields)-1]) // its payload's, headers included
		if err != nil {
			return
		}
		if slices.ContainsFunc(fields[1:len(fields)-1], drop) {
			if _, err := br.Discard(size + 2); err != nil {
				return
			}
			continue
		}
		if _, err := io.WriteString(dst, line); err != nil {
			return
		}
		if _, err := io.CopyN(dst, br, int64(size+2)); err != nil {
			return
		}
	}
}

// heal lets connections pass again after cutOff.
func (r *relay) heal() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cut = false
}
