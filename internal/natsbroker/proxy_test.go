package natsbroker

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
)

// natsProxy stands between brokers and the NATS server, and can swallow
// the requests a broker publishes to subjects of a prefix, as a server
// too busy to answer them would: the broker stays connected and its
// request waits for its timeout.
type natsProxy struct {
	ln     net.Listener
	target string

	mu       sync.Mutex
	swallow  []byte        // the subject prefix swallowed, or nil
	swallowd chan struct{} // closed at the first request swallowed
	conns    []net.Conn
	wg       sync.WaitGroup
}

func startProxy(t *testing.T, ns *natsServer) *natsProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &natsProxy{ln: ln, target: ns.Addr().String()}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *natsProxy) url() string { return "nats://" + p.ln.Addr().String() }

// swallowRequests starts swallowing what is published to subjects
// beginning with prefix; the channel is closed once one was.
func (p *natsProxy) swallowRequests(prefix string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.swallow, p.swallowd = []byte(prefix), make(chan struct{})
	return p.swallowd
}

// passRequests stops swallowing.
func (p *natsProxy) passRequests() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.swallow = nil
}

func (p *natsProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); _, _ = io.Copy(c, s); c.Close() }()
		go func() { defer p.wg.Done(); p.forward(s, c); s.Close() }()
	}
}

// forward copies the client's protocol to the server one operation at a
// time, leaving out PUB and HPUB operations to a swallowed subject.
func (p *natsProxy) forward(dst io.Writer, src io.Reader) {
	r := bufio.NewReader(src)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		op := bytes.Fields(line)
		msg := line
		if len(op) >= 3 && (bytes.EqualFold(op[0], []byte("PUB")) || bytes.EqualFold(op[0], []byte("HPUB"))) {
			size, err := strconv.Atoi(string(op[len(op)-1]))
			if err != nil {
				return
			}
			payload := make([]byte, size+2) // and its CRLF
			if _, err := io.ReadFull(r, payload); err != nil {
				return
			}
			msg = append(line, payload...)
			p.mu.Lock()
			drop := p.swallow != nil && bytes.HasPrefix(op[1], p.swallow)
			if drop {
				select {
				case <-p.swallowd:
				default:
					close(p.swallowd)
				}
			}
			p.mu.Unlock()
			if drop {
				continue
			}
		}
		if _, err := dst.Write(msg); err != nil {
			return
		}
	}
}

func (p *natsProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
