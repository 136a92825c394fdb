package detached

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestEmptyStepSendsHead runs a step that writes nothing: the flush after
// it must send the head alone, so the client knows the stream is open, and
// the empty write must send nothing (an empty chunk would end the body).
func TestEmptyStepSendsHead(t *testing.T) {
	tests := []struct {
		proto    string
		wantRest string // what follows the head once the step ends
	}{
		{"HTTP/1.1", "0\r\n\r\n"},
		{"HTTP/1.0", ""},
	}
	for _, tt := range tests {
		t.Run(tt.proto, func(t *testing.T) {
			release := make(chan struct{})
			s := serve(t, NewGroup(), eventStream(), func(c *Conn) func(io.Writer) bool {
				first := true
				return func(w io.Writer) bool {
					if first {
						first = false
						if n, err := w.Write(nil); n != 0 || err != nil {
							panic(err)
						}
						return true
					}
					select {
					case <-release:
					case <-c.Context().Done():
					}
					return false
				}
			})
			conn := dial(t, s.Server, tt.proto)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil) // while the step waits
			if err != nil {
				t.Fatalf("no head while the step waits: %v", err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status %s", resp.Status)
			}
			close(release)
			rest, err := io.ReadAll(br)
			if err != nil {
				t.Fatal(err)
			}
			if string(rest) != tt.wantRest {
				t.Errorf("after the head %q, want %q", rest, tt.wantRest)
			}
			if p := recv(t, s.ended, "end of the response"); p != nil {
				t.Fatalf("done(%v), want done(nil)", p)
			}
		})
	}
}

// TestClientGoneEndsServe closes the client while the step waits on the
// Conn's Context: the Context must be cancelled, and Serve must end
// without calling the step again, though it asked for more.
func TestClientGoneEndsServe(t *testing.T) {
	waiting := make(chan struct{})
	ctxErr := make(chan error, 1)
	s := serve(t, NewGroup(), eventStream(), func(c *Conn) func(io.Writer) bool {
		calls := 0
		return func(w io.Writer) bool {
			calls++
			if calls == 1 {
				_, _ = io.WriteString(w, "data: hello\n\n")
				return true
			}
			close(waiting) // a third call panics, and done says so
			<-c.Context().Done()
			ctxErr <- c.Context().Err()
			return true
		}
	})
	conn := dial(t, s.Server, "HTTP/1.1")
	if _, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil {
		t.Fatal(err)
	}
	recv(t, waiting, "step waiting on the Context")
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, ctxErr, "cancelled Context"); !errors.Is(err, context.Canceled) {
		t.Errorf("Context().Err() = %v, want %v", err, context.Canceled)
	}
	if p := recv(t, s.ended, "end of the response"); p != nil {
		t.Fatalf("done(%v), want done(nil)", p)
	}
}

// TestClientFloodEndsServe has the client send more than maxDiscard after
// its request, the connection still open: reading it all would let one
// client keep a core busy, so the Context is cancelled and Serve ends.
// A pipelined request of a few bytes before it does not end the stream.
//
// Serve ending is the proof: the third step waits for the Context, and
// nothing but the flood cancels it. The flood may cancel it before the
// third step is called at all (run checks the Context between steps), so
// the test waits for the end of the response, not for that step.
func TestClientFloodEndsServe(t *testing.T) {
	sent := make(chan struct{})
	s := serve(t, NewGroup(), eventStream(), func(c *Conn) func(io.Writer) bool {
		calls := 0
		return func(w io.Writer) bool {
			calls++
			switch calls {
			case 1:
				_, _ = io.WriteString(w, "data: hello\n\n")
			case 2:
				<-sent // the pipelined request, read or not
				_, _ = io.WriteString(w, "data: still here\n\n")
			default:
				<-c.Context().Done()
			}
			return true
		}
	})
	conn := dial(t, s.Server, "HTTP/1.1")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	close(sent)
	body := bufio.NewReader(resp.Body)
	for _, want := range []string{"data: hello", "", "data: still here"} {
		if line, err := body.ReadString('\n'); err != nil || strings.TrimSuffix(line, "\n") != want {
			t.Fatalf("read %q, %v; want %q", line, err, want)
		}
	}
	go func() { _, _ = conn.Write(make([]byte, maxDiscard+1)) }()
	if p := recv(t, s.ended, "end of the response after the flood"); p != nil {
		t.Fatalf("done(%v), want done(nil)", p)
	}
}

// TestWriteDeadline writes to a client that reads nothing: once the socket
// buffers are full, a write must fail when the deadline passes, and every
// write after it must fail the same way.
func TestWriteDeadline(t *testing.T) {
	errs := make(chan error, 2)
	s := serve(t, NewGroup(), eventStream(), func(c *Conn) func(io.Writer) bool {
		return func(w io.Writer) bool {
			if err := c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
				panic(err)
			}
			errs <- writeUntilItFails(w)
			_, err := w.Write([]byte("data: after\n\n"))
			errs <- err
			return true // the failed write, not the step, must end it
		}
	})
	dial(t, s.Server, "HTTP/1.1") // and never read
	for _, what := range []string{"stalled write", "write after it"} {
		if err := recv(t, errs, what); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s: %v, want %v", what, err, os.ErrDeadlineExceeded)
		}
	}
	if p := recv(t, s.ended, "end of the response"); p != nil {
		t.Fatalf("done(%v), want done(nil)", p)
	}
}

// TestWriteAllocatesNothing measures Write over a real TCP connection: a
// stream writes once per event, for hours.
func TestWriteAllocatesNothing(t *testing.T) {
	// The client reads only once the step is over, so all the writes must
	// fit in the socket buffers: about 14 KiB.
	const runs = 200
	payload := []byte(strings.Repeat("x", 62) + "\n\n")
	for _, proto := range []string{"HTTP/1.1", "HTTP/1.0"} {
		t.Run(proto, func(t *testing.T) {
			allocs := make(chan float64, 1)
			s := serve(t, NewGroup(), eventStream(), func(*Conn) func(io.Writer) bool {
				return func(w io.Writer) bool {
					allocs <- testing.AllocsPerRun(runs, func() {
						if _, err := w.Write(payload); err != nil {
							panic(err)
						}
					})
					return false
				}
			})
			conn := dial(t, s.Server, proto)
			if n := recv(t, allocs, "measure"); n != 0 {
				t.Errorf("%v allocations per Write, want 0", n)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			// AllocsPerRun writes once more, to warm up.
			if want := strings.Repeat(string(payload), runs+1); string(body) != want {
				t.Errorf("read back %d bytes, want %d", len(body), len(want))
			}
			recv(t, s.ended, "end of the response")
		})
	}
}

// TestPanicInStep panics in a step: done must get what it panicked with,
// the client must see the response cut, not ended, and the group must
// still drain.
func TestPanicInStep(t *testing.T) {
	tests := []struct {
		name  string
		value any
		check func(p any) bool // whether done got the right value
	}{
		{"error", errBoom, func(p any) bool {
			err, ok := p.(error)
			return ok && errors.Is(err, errBoom)
		}},
		{"nil", nil, func(p any) bool {
			var nilErr *runtime.PanicNilError
			err, ok := p.(error)
			return ok && errors.As(err, &nilErr)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewGroup()
			s := serve(t, g, eventStream(), func(*Conn) func(io.Writer) bool {
				calls := 0
				return func(w io.Writer) bool {
					calls++
					if calls == 1 {
						_, _ = io.WriteString(w, "data: hello\n\n")
						return true
					}
					panic(tt.value)
				}
			})
			resp := get(t, s)
			body, err := io.ReadAll(resp.Body)
			if err == nil {
				t.Errorf("body %q read to its end: the client cannot tell it was cut", body)
			}
			if string(body) != "data: hello\n\n" {
				t.Errorf("body %q, want what was written before the panic", body)
			}
			if p := recv(t, s.ended, "end of the response"); !tt.check(p) {
				t.Errorf("done(%#v), want what step panicked with", p)
			}
			g.Close()
			ctx, cancel := context.WithTimeout(t.Context(), bound)
			defer cancel()
			if err := g.Wait(ctx); err != nil {
				t.Errorf("Wait after a panic: %v", err)
			}
		})
	}
}

var errBoom = errors.New("boom")

// TestNewConnLiftsReadDeadline leaves a read deadline on the connection, as
// a server's read timeout would: once taken over, the response must
// outlive it, and still end when the connection does.
func TestNewConnLiftsReadDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		server, client := net.Pipe()
		defer client.Close()
		if err := server.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		c := newConn(NewGroup(), server, bufio.NewReader(server), nil, true)
		time.Sleep(time.Hour) // long past the deadline
		synctest.Wait()
		if c.Context().Err() != nil {
			t.Fatal("the read deadline set before the takeover ended the response")
		}
		server.Close()
		synctest.Wait()
		if c.Context().Err() == nil {
			t.Fatal("closing the connection did not end the response")
		}
	})
}

// TestEachWriteIsOneConnWrite serves a response through a connection that
// records its writes, as a TLS connection would see them: each Write and
// WriteLast of the step, head and framing included, must reach the
// connection as one write (one system call on TCP, one TLS record).
func TestEachWriteIsOneConnWrite(t *testing.T) {
	writes := make(chan string, 16)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		g := NewGroup()
		c, err := g.Take(w, r)
		if err != nil {
			t.Errorf("Take: %v", err)
			return
		}
		steps := 0
		c.Serve(func(w io.Writer) bool {
			steps++
			if steps == 1 {
				_, _ = io.WriteString(w, "data: one\n\n")
				return true
			}
			_, _ = w.(*Conn).WriteLast([]byte("data: two\n\n"))
			return false
		}, func(any, []byte) { close(writes) })
	}))
	s.Listener = recordingListener{s.Listener, writes}
	s.Start()
	t.Cleanup(s.Close)
	conn := dial(t, s, "HTTP/1.1")
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatal(err)
	}
	var got []string
	for w := range writes {
		got = append(got, w)
	}
	if len(got) != 2 {
		t.Fatalf("%d writes to the connection, want 2: %q", len(got), got)
	}
	if !strings.HasPrefix(got[0], "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(got[0], "\r\n\r\nb\r\ndata: one\n\n\r\n") {
		t.Errorf("first write %q, want the head and the first chunk", got[0])
	}
	if want := "b\r\ndata: two\n\n\r\n0\r\n\r\n"; got[1] != want {
		t.Errorf("second write %q, want %q", got[1], want)
	}
}

// recordingListener accepts connections that send a copy of each write to
// writes.
type recordingListener struct {
	net.Listener
	writes chan<- string
}

func (l recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return recordingConn{c, l.writes}, nil
}

type recordingConn struct {
	net.Conn
	writes chan<- string
}

func (c recordingConn) Write(p []byte) (int, error) {
	c.writes <- string(p)
	return c.Conn.Write(p)
}

// TestCloseConnsEndsABlockedWrite: a step blocked writing to a client
// that reads nothing, with no write deadline, ends once CloseConns closes
// its connection, and the group drains.
func TestCloseConnsEndsABlockedWrite(t *testing.T) {
	g := NewGroup()
	writing := make(chan struct{})
	errs := make(chan error, 1)
	s := serve(t, g, eventStream(), func(c *Conn) func(io.Writer) bool {
		return func(w io.Writer) bool {
			close(writing)
			errs <- writeUntilItFails(w)
			return true // the failed write, not the step, must end it
		}
	})
	dial(t, s.Server, "HTTP/1.1") // and never read
	recv(t, writing, "step")

	g.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := g.Wait(ctx); err == nil {
		t.Fatal("Wait returned nil with a response blocked in a write")
	}
	if n := g.CloseConns(); n != 1 {
		t.Errorf("CloseConns() = %d, want 1", n)
	}
	if err := recv(t, errs, "the blocked write's error"); err == nil {
		t.Error("the blocked write returned no error after CloseConns")
	}
	if p := recv(t, s.ended, "end of the response"); p != nil {
		t.Fatalf("done(%v), want done(nil)", p)
	}
	drain, cancelDrain := context.WithTimeout(t.Context(), bound)
	defer cancelDrain()
	if err := g.Wait(drain); err != nil {
		t.Fatalf("Wait after CloseConns: %v", err)
	}
	if n := g.CloseConns(); n != 0 {
		t.Errorf("CloseConns() on a drained group = %d, want 0", n)
	}
}

// writeUntilItFails writes 256 MiB to w, far more than any socket buffers
// hold, and returns the first write error: with a client that reads
// nothing, the write that blocks and then fails.
func writeUntilItFails(w io.Writer) error {
	payload := make([]byte, 1<<20)
	for range 256 {
		if _, err := w.Write(payload); err != nil {
			return err
		}
	}
	return nil
}

// TestTLSResponseEndsAtOnceAfterAFailedWrite writes over TLS to a client
// that reads nothing until a write times out: the response must end at
// once, not after crypto/tls has waited up to tlsCloseNotifyWait to send
// its close_notify alert into the same full socket buffers, holding the
// response (a stream's slot and subscription, a server's shutdown) that
// long.
func TestTLSResponseEndsAtOnceAfterAFailedWrite(t *testing.T) {
	const tlsCloseNotifyWait = 5 * time.Second // crypto/tls's, in Conn.Close
	failed := make(chan time.Time, 1)
	ended := make(chan time.Time, 1)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		c, err := NewGroup().Take(w, r)
		if err != nil {
			t.Errorf("Take: %v", err)
			return
		}
		c.Serve(func(w io.Writer) bool {
			if err := c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
				panic(err)
			}
			if err := writeUntilItFails(w); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("write: %v, want %v", err, os.ErrDeadlineExceeded)
			}
			failed <- time.Now()
			return true // the failed write, not the step, must end it
		}, func(any, []byte) { ended <- time.Now() })
	}))
	s.StartTLS()
	t.Cleanup(s.Close)

	raw, err := net.Dial("tcp", s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	cfg := s.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos, cfg.ServerName = []string{"http/1.1"}, "example.com" // httptest's certificate
	conn := tls.Client(raw, cfg)
	t.Cleanup(func() { _ = conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(bound)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "GET /events HTTP/1.1\r\nHost: ssehub.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	} // and never read

	at := recv(t, failed, "failed write")
	if took := recv(t, ended, "end of the response").Sub(at); took >= tlsCloseNotifyWait/2 {
		t.Errorf("the response ended %v after its write failed, want at once", took)
	}
}

// TestPanicBeforeAnyWrite panics in the first step, before anything was
// written: the client gets the group's answer to a panic, a whole response
// with the response's headers and the answer's in their place (less one
// the answer has no values for), and done gets the panic, which stays on
// the stream's goroutine: the handler has returned.
func TestPanicBeforeAnyWrite(t *testing.T) {
	for _, proto := range []string{"HTTP/1.1", "HTTP/1.0"} {
		t.Run(proto, func(t *testing.T) {
			g := NewGroup()
			body := `{"error":"Internal Server Error"}`
			g.AnswerPanics(http.Header{"Content-Type": {"application/json"}, "Cache-Control": nil}, []byte(body))
			ended := make(chan any, 1)
			reached := make(chan any, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				defer func() { reached <- recover() }()
				w.Header().Set("Content-Type", "text/event-stream")
				w.Header().Set("Cache-Control", "no-cache")
				w.Header().Set("Access-Control-Allow-Origin", "https://app.test")
				c, err := g.Take(w, r)
				if err != nil {
					t.Error(err)
					return
				}
				// Middleware may set headers once the handler returned,
				// while the answer goes out: not the answer's.
				w.Header().Set("X-Late", "1")
				c.Serve(func(io.Writer) bool { panic(errBoom) }, func(p any, _ []byte) {
					if !c.AnsweredPanic() {
						t.Error("AnsweredPanic is false: the answer went out")
					}
					ended <- p
				})
			}))
			defer srv.Close()
			conn := dial(t, srv, proto)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no response: %v", err)
			}
			got, err := io.ReadAll(resp.Body)
			if err != nil || string(got) != body {
				t.Errorf("body %q (%v), want %q in full", got, err, body)
			}
			if resp.StatusCode != http.StatusInternalServerError || resp.ContentLength != int64(len(body)) || !resp.Close {
				t.Errorf("status %d, Content-Length %d, close %v; want 500, %d, close", resp.StatusCode, resp.ContentLength, resp.Close, len(body))
			}
			if ct, acao := resp.Header.Get("Content-Type"), resp.Header.Get("Access-Control-Allow-Origin"); ct != "application/json" || acao != "https://app.test" {
				t.Errorf("Content-Type %q, Access-Control-Allow-Origin %q: want the answer's and the response's", ct, acao)
			}
			if cc := resp.Header.Values("Cache-Control"); len(cc) != 0 {
				t.Errorf("Cache-Control %q, want none: the answer has no values for it", cc)
			}
			if late := resp.Header.Values("X-Late"); len(late) != 0 {
				t.Errorf("X-Late %q, set after Take, want the headers Take found", late)
			}
			if p, _ := recv(t, ended, "end of the response").(error); !errors.Is(p, errBoom) {
				t.Errorf("done(%v), want the panic", p)
			}
			if p := recv(t, reached, "end of the handler"); p != nil {
				t.Errorf("the handler recovered %v, want no panic: the steps run on a goroutine of their own", p)
			}
			g.Close()
			ctx, cancel := context.WithTimeout(t.Context(), bound)
			defer cancel()
			if err := g.Wait(ctx); err != nil {
				t.Errorf("Wait after a panic: %v", err)
			}
		})
	}
}

// pipeListener hands out one end of a net.Pipe per dial: a connection that
// holds nothing, so a write blocks until the other end reads it.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
}

func (l pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l pipeListener) Close() error   { return nil }
func (l pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// TestCloseConnsOverTLSEndsAtOnce closes, with CloseConns, an idle stream
// over TLS whose client reads nothing more: crypto/tls's Close would first
// send its close_notify alert and wait up to 5 seconds for the client to
// take it, per stream and one after another, with the group locked, while
// a shutdown that had waited long enough waited on. Over a pipe nothing
// is buffered, as over socket buffers a client that stopped reading filled.
func TestCloseConnsOverTLSEndsAtOnce(t *testing.T) {
	const tlsCloseNotifyWait = 5 * time.Second // crypto/tls's, in Conn.Close
	g := NewGroup()
	idle := make(chan struct{})
	defer close(idle)
	waiting := make(chan struct{}, 1)
	ts := httptest.NewUnstartedServer(nil)
	ts.StartTLS() // for its certificate and its client's configuration
	defer ts.Close()
	ln := pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		c, err := g.Take(w, r)
		if err != nil {
			t.Errorf("Take: %v", err)
			return
		}
		steps := 0
		c.Serve(func(io.Writer) bool {
			steps++
			if steps == 1 {
				return true // the flush after it sends the head
			}
			waiting <- struct{}{}
			select { // idle: waiting for an event, writing nothing
			case <-idle:
			case <-c.Context().Done():
			}
			return false
		}, func(any, []byte) {})
	})}
	go func() { _ = srv.Serve(tls.NewListener(ln, ts.TLS)) }()
	defer close(ln.done)

	server, client := net.Pipe()
	ln.conns <- server
	cfg := ts.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos, cfg.ServerName = []string{"http/1.1"}, "example.com" // httptest's certificate
	conn := tls.Client(client, cfg)
	t.Cleanup(func() { _ = client.Close() })
	if err := conn.SetDeadline(time.Now().Add(bound)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "GET /events HTTP/1.1\r\nHost: ssehub.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close() // and nothing more is read
	recv(t, waiting, "idle step")

	g.Close()
	start := time.Now()
	if n := g.CloseConns(); n != 1 {
		t.Errorf("CloseConns() = %d, want 1", n)
	}
	if took := time.Since(start); took >= tlsCloseNotifyWait/2 {
		t.Errorf("CloseConns took %v, want at once", took)
	}
	ctx, cancel := context.WithTimeout(t.Context(), tlsCloseNotifyWait/2)
	defer cancel()
	if err := g.Wait(ctx); err != nil {
		t.Errorf("the response had not ended %v after CloseConns: %v", time.Since(start), err)
	}
}

// TestCloseConnsClosesAResponseTakenOverMeanwhile calls CloseConns while a
// response is being taken over (Take counted it, its Hijack has not
// returned): its connection must be closed too, once taken over, or a
// step blocked writing to a client that reads nothing holds the server's
// shutdown past its bound; and it must be counted, or the shutdown's
// warning says too few streams closed (none, and no warning at all, when
// it is the only one). The Conn may find its connection closed before
// its first step, and end without running it: what must hold either way
// is that the response ends, and that a write it made failed.
func TestCloseConnsClosesAResponseTakenOverMeanwhile(t *testing.T) {
	g := NewGroup()
	hijacking, release := make(chan struct{}), make(chan struct{})
	errs := make(chan error, 1)
	ended := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		c, err := g.Take(heldHijacker{w, hijacking, release}, r)
		if err != nil {
			t.Errorf("Take: %v", err)
			close(ended)
			return
		}
		c.Serve(func(w io.Writer) bool {
			errs <- writeUntilItFails(w)
			return false
		}, func(any, []byte) { close(ended) })
	}))
	defer s.Close()
	dial(t, s, "HTTP/1.1") // and never read
	recv(t, hijacking, "Hijack")

	g.Close()
	if err := g.Wait(cancelled(t)); err == nil {
		t.Fatal("Wait returned nil with a response being taken over")
	}
	if n := g.CloseConns(); n != 1 {
		t.Errorf("CloseConns closed %d connections, want 1: the one being taken over", n)
	}
	close(release)
	// The step may not run at all: the connection, closed as Take
	// returns, reads as a client gone before it.
	recv(t, ended, "end of the response")
	select {
	case err := <-errs:
		if err == nil {
			t.Error("the write returned no error: CloseConns did not close the connection")
		}
	default:
	}
	ctx, cancel := context.WithTimeout(t.Context(), bound)
	defer cancel()
	if err := g.Wait(ctx); err != nil {
		t.Fatalf("Wait after CloseConns: %v", err)
	}
}

// heldHijacker is a writer whose Hijack says it started, on hijacking,
// then waits for release.
type heldHijacker struct {
	http.ResponseWriter
	hijacking chan<- struct{}
	release   <-chan struct{}
}

func (w heldHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	close(w.hijacking)
	<-w.release
	return w.ResponseWriter.(http.Hijacker).Hijack()
}

func (w heldHijacker) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// TestTLSResponseEndsAtOnceForAClientThatStopsReadingAfterIt ends a
// response over TLS whose client reads it to its end (the last chunk) and
// then nothing more: crypto/tls's Close sends its close_notify alert and
// waits up to 5 seconds for the client to take it, holding the response
// (a stream's slot, its access line, a server's shutdown) that long after
// its end went out. Over a pipe nothing is buffered, as over socket
// buffers that the end of the response filled.
func TestTLSResponseEndsAtOnceForAClientThatStopsReadingAfterIt(t *testing.T) {
	const tlsCloseNotifyWait = 5 * time.Second // crypto/tls's, in Conn.Close
	g := NewGroup()
	ended := make(chan time.Time, 1)
	ts := httptest.NewUnstartedServer(nil)
	ts.StartTLS() // for its certificate and its client's configuration
	defer ts.Close()
	ln := pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		c, err := g.Take(w, r)
		if err != nil {
			t.Errorf("Take: %v", err)
			return
		}
		c.Serve(func(io.Writer) bool {
			if _, err := c.WriteLast([]byte("data: bye\n\n")); err != nil {
				t.Errorf("WriteLast: %v", err)
			}
			return false
		}, func(any, []byte) { ended <- time.Now() })
	})}
	go func() { _ = srv.Serve(tls.NewListener(ln, ts.TLS)) }()
	defer close(ln.done)

	server, client := net.Pipe()
	ln.conns <- server
	cfg := ts.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos, cfg.ServerName = []string{"http/1.1"}, "example.com" // httptest's certificate
	conn := tls.Client(client, cfg)
	t.Cleanup(func() { _ = client.Close() })
	if err := conn.SetDeadline(time.Now().Add(bound)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "GET /events HTTP/1.1\r\nHost: ssehub.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if body, err := io.ReadAll(resp.Body); err != nil || string(body) != "data: bye\n\n" {
		t.Fatalf("body %q, %v; want the whole response", body, err)
	}
	read := time.Now() // and nothing more is read
	if took := recv(t, ended, "end of the response").Sub(read); took >= tlsCloseNotifyWait/2 {
		t.Errorf("the response ended %v after its client read it all, want within %v", took, finishTimeout)
	}
	ctx, cancel := context.WithTimeout(t.Context(), bound)
	defer cancel()
	g.Close()
	if err := g.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}
