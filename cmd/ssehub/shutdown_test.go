package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/testpki"
)

// TestShutdownWithBlockedStreamEndsCleanly shuts down while a hub stream
// is blocked writing to a client that stopped reading, with a write
// timeout longer than the shutdown timeout: Run must close the stream's
// connection when the shutdown timeout passes, say so, and return nil
// (exit 0), in both transports. A detached stream is not net/http's to
// close: before, Run returned the shutdown's deadline error.
func TestShutdownWithBlockedStreamEndsCleanly(t *testing.T) {
	cfg := readTimeoutConfig(5 * time.Second)
	cfg.Server.ShutdownTimeout = 500 * time.Millisecond
	cfg.Stream.WriteTimeout = time.Minute
	var logs lockedBuffer
	url, stop := startMainReturning(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)), smallSendBuffers)

	blockStream(t, url, "blocked")

	start := time.Now()
	err := stop()
	elapsed := time.Since(start)
	// Run's wait is bounded: on a machine too busy to end the stream
	// within the shutdown timeout and closedStreamsGrace, it returns the
	// wait's error, as it should. Before that, it must not. The stream's
	// write timeout, a minute, is far past both.
	bound := cfg.Server.ShutdownTimeout + closedStreamsGrace
	if elapsed > cfg.Stream.WriteTimeout/2 {
		t.Fatalf("Run returned after %v, shutdown timeout %v: it waited for the stream's write timeout", elapsed, cfg.Server.ShutdownTimeout)
	}
	if err != nil {
		if elapsed < bound {
			t.Fatalf("Run returned %v after %v, before its bound %v", err, elapsed, bound)
		}
		// Closed, the stream still ends, after Run returned.
		t.Logf("Run returned %v after %v, past its bound %v: the machine was too busy to end the stream by then", err, elapsed, bound)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if grepLine(logs.tail(1<<20), `msg="stream ended"`) != "" {
				break
			}
		}
	}
	out := logs.tail(1 << 20)
	if !strings.Contains(out, "shutdown timeout passed: closed") {
		t.Errorf("no warning that open streams were closed at the shutdown timeout; log:\n%s", out)
	}
	// The server ended the stream: not a failed write, nor a gone client.
	// Run waited for it to end: its line is there.
	if ended := grepLine(out, `msg="stream ended"`); !strings.Contains(ended, `reason="shutting down`) {
		t.Errorf("the stream's end line %q, want its reason shutting down", ended)
	}
}

// TestShutdownWaitsForTheAccessLines shuts down while a stream is blocked
// writing, past the shutdown timeout, with a log that is slow to take
// the stream's access line (a pipe to a busy reader). A Gin stream's
// access line is written after its end, once its handler returns: Run
// returned once the stream had ended, and main's exit could lose the
// line. Run must wait for it, as for the streams, within
// closedStreamsGrace.
func TestShutdownWaitsForTheAccessLines(t *testing.T) {
	cfg := readTimeoutConfig(5 * time.Second)
	cfg.Server.ShutdownTimeout = 500 * time.Millisecond
	cfg.Stream.WriteTimeout = time.Minute
	var logs lockedBuffer
	returned := make(chan struct{})
	written := make(chan bool, 1)
	log := slog.New(slowAccessLines{
		Handler: slog.NewTextHandler(&logs, nil), path: "/api/v1/events",
		returned: returned, written: written,
	})
	url, stop := startMainReturning(t, cfg, log, smallSendBuffers)

	blockStream(t, url, "blocked")
	start := time.Now()
	err := stop()
	close(returned)
	// Run's wait is bounded: on a machine too busy to end the stream
	// within the shutdown timeout and closedStreamsGrace, it returns
	// without the line, and the wait's error, as it should. Before that,
	// it must not.
	bound := cfg.Server.ShutdownTimeout + closedStreamsGrace
	elapsed := time.Since(start)
	if err != nil && elapsed < bound {
		t.Errorf("Run returned %v after %v, before its bound %v", err, elapsed, bound)
	}
	select {
	case late := <-written:
		if late && elapsed < bound {
			t.Errorf("the stream's access line was written after Run returned, %v after the shutdown began (its bound %v); log:\n%s",
				elapsed, bound, logs.tail(1<<20))
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no access line for the stream; log:\n%s", logs.tail(1<<20))
	}
}

// slowAccessLines holds back the access line of a request to path until
// returned is closed, or for 200 ms at most (less than
// closedStreamsGrace), and then says on written whether returned was
// closed by then.
type slowAccessLines struct {
	slog.Handler
	path     string
	returned <-chan struct{}
	written  chan<- bool
}

func (h slowAccessLines) Handle(ctx context.Context, r slog.Record) error {
	if r.Message != "request" || !recordHas(r, "path", h.path) {
		return h.Handler.Handle(ctx, r)
	}
	late := false
	select {
	case <-h.returned:
		late = true
	case <-time.After(200 * time.Millisecond):
	}
	err := h.Handler.Handle(ctx, r)
	select {
	case h.written <- late:
	default:
	}
	return err
}

func (h slowAccessLines) WithAttrs(attrs []slog.Attr) slog.Handler {
	h.Handler = h.Handler.WithAttrs(attrs)
	return h
}

func (h slowAccessLines) WithGroup(name string) slog.Handler {
	h.Handler = h.Handler.WithGroup(name)
	return h
}

// recordHas says whether r has the attribute key with the string value.
func recordHas(r slog.Record, key, value string) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == key && a.Value.String() == value
		return !found
	})
	return found
}

// smallSendBuffers is a hook for startMainReturning that gives each
// connection the server accepts over plain TCP a send buffer of 4 KiB: a few events
// fill it, where the kernel's default, tuned up to a few MiB, took 18 MB
// of publishes (seconds of the CPU under the race detector) for
// blockStream.
func smallSendBuffers(m *Main) {
	m.connState = func(c net.Conn, state http.ConnState) {
		if state != http.StateNew {
			return
		}
		if tcp, ok := c.(*net.TCPConn); ok {
			_ = tcp.SetWriteBuffer(4096)
		}
	}
}

// blockStream subscribes to topic over a connection that then reads
// nothing, and publishes to it until the stream is blocked writing.
func blockStream(t *testing.T, url, topic string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("GET /api/v1/events?topic=" + topic + " HTTP/1.1\r\nHost: ssehub.test\r\n" +
		"Authorization: Bearer " + hubTestToken + "\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	// Read up to the stream's first field: the subscription is then
	// registered. From here on the client reads nothing.
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("subscribe: %s", resp.Status)
	}
	for { // the chunk's size line, then the retry field
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream's first chunk: %v", err)
		}
		if strings.HasPrefix(line, "retry:") {
			break
		}
	}

	// 1.2 MB is far more than the client's 4 KiB receive buffer and the
	// server's send buffer (smallSendBuffers) hold: the stream's write
	// blocks long before the last publish is answered.
	data := strings.Repeat("b", 60000)
	for i := range 20 {
		if status, answer := publishOverHTTP(t, url, hubTestToken, topic, data); status != http.StatusCreated {
			t.Fatalf("publish %d: %d %s", i, status, answer)
		}
	}
}

// grepLine returns the first line of s that holds sub, or "".
func grepLine(s, sub string) string {
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// TestShutdownClosesConnectionsThatSentNothing: a connection accepted but
// given no request (a browser's preconnect, opened in case the page asks
// for something) is idle, as a kept-alive one between requests is, and
// the shutdown closes it soon instead of waiting for it: net/http
// closes a new connection only once it has been silent for 5 s, so a
// shutdown with nothing under way took that long.
func TestShutdownClosesConnectionsThatSentNothing(t *testing.T) {
	pki := testpki.New(t)
	for _, cfg := range []config.Config{config.Default(), tlsTestConfig(pki)} {
		cfg.Server.ShutdownTimeout = time.Minute
		var logs lockedBuffer
		url, stop := startMainReturning(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
		addr := url[strings.Index(url, "//")+2:]
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// The server has the connection: it answers a request on another.
		if resp, err := testClient(t, pki.Roots).Get(url + "/healthz"); err != nil {
			t.Fatal(err)
		} else {
			resp.Body.Close()
		}

		start := time.Now()
		if err := stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if elapsed := time.Since(start); elapsed > 4*time.Second {
			t.Errorf("%s: shutdown took %v with only a connection that sent nothing open, want about %v", url, elapsed, newConnGrace)
		}
		// Neither the shutdown's warning nor, over TLS, a handshake
		// error: the server closed the connection itself.
		for _, warning := range []string{"shutdown timeout passed", "TLS handshake error"} {
			if line := grepLine(logs.tail(1<<20), warning); line != "" {
				t.Errorf("%s: a connection that sent nothing: %s", url, line)
			}
		}
		// The server closed it.
		if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if n, err := conn.Read(make([]byte, 1)); err == nil {
			t.Errorf("%s: read %d bytes from a connection closed by the shutdown", url, n)
		}
	}
}

// TestShutdownAnswersNoRequestSentAfterTheSignal: a request a client
// sends after the signal, on a connection still open (one it opened
// before, and had given no request), gets no answer, a 503 no more than
// anything else: net/http, shutting down, closes the connection once it
// has read the request, without running its handler. The 503 with
// Retry-After is only for a stream whose request was under way at the
// signal.
func TestShutdownAnswersNoRequestSentAfterTheSignal(t *testing.T) {
	cfg := config.Default()
	cfg.Server.ShutdownTimeout = time.Minute
	var logs lockedBuffer
	url, stop := startMainReturning(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	// The server has the connection: it answers a request on another.
	if resp, err := http.Get(url + "/healthz"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	for grepLine(logs.String(), `msg="shutting down"`) == "" {
		time.Sleep(time.Millisecond)
	}
	if _, err := io.WriteString(conn, "GET /api/v1/events?topic=demo.a HTTP/1.1\r\nHost: ssehub\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil {
		resp.Body.Close()
		t.Errorf("a stream asked for after the signal: %s, want the connection closed without an answer", resp.Status)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Run: %v", err)
	}
	if line := grepLine(logs.String(), "path=/api/v1/events"); line != "" {
		t.Errorf("a request net/http did not hand over has an access line: %s", line)
	}
}

// TestShutdownCutOfAPublishBodyIsNotTheClients: a publish whose body was
// still being read when server.shutdown_timeout passed is cut by the
// server, which closes its connection: its access line said 400, a
// client's fault, and ssehub_http_requests_total counted it so. It is the
// shutdown's 503, in either transport. Expect: 100-continue tells the
// test the handler is reading the body: net/http sends the 100 then.
func TestShutdownCutOfAPublishBodyIsNotTheClients(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		cfg := readTimeoutConfig(time.Minute)
		cfg.Server.H2C = h2
		cfg.Server.ShutdownTimeout = 200 * time.Millisecond
		var logs lockedBuffer
		url, stop := startMainReturning(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))

		body, more := io.Pipe()
		defer more.Close()
		req, err := http.NewRequest(http.MethodPost, url+"/api/v1/topics/cut/events", body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = 100
		req.Header.Set("Authorization", "Bearer "+hubTestToken)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Expect", "100-continue")
		reading := make(chan struct{})
		req = req.WithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			Got100Continue: func() { close(reading) },
		}))
		client := testClient(t, nil, (*http.Protocols).SetHTTP1)
		if h2 {
			client = testClient(t, nil, (*http.Protocols).SetUnencryptedHTTP2)
		}
		client.Transport.(*http.Transport).ExpectContinueTimeout = time.Minute
		answered := make(chan error, 1)
		go func() {
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			answered <- err
		}()
		go func() { _, _ = io.WriteString(more, `{"data": "`) }()
		select {
		case <-reading:
		case err := <-answered:
			t.Fatalf("h2 %v: the publish was answered before its body was read: %v", h2, err)
		}
		if err := stop(); err != nil {
			t.Fatalf("h2 %v: Run: %v", h2, err)
		}
		_ = more.Close() // the client's write of the body ends
		if err := <-answered; err == nil {
			t.Errorf("h2 %v: a publish the shutdown cut was answered", h2)
		}
		line := grepLine(logs.tail(1<<20), "path=/api/v1/topics/cut/events")
		if !strings.Contains(line, "status=503") {
			t.Errorf("h2 %v: the access line of a publish the shutdown cut: %q, want status 503; log:\n%s", h2, line, logs.tail(1<<20))
		}
	}
}

// TestShutdownEndsEachStreamWithASpreadRetry stops the server while a
// ticker and a hub stream are open, over HTTP/1.1 and HTTP/2 (TLS and
// h2c), in either transport: the server's own shutdown (its GOAWAY on
// HTTP/2 included) lets each stream end cleanly with its last retry
// field, stream.retry to twice that, which the handler's tests check of
// Close alone.
func TestShutdownEndsEachStreamWithASpreadRetry(t *testing.T) {
	pki := testpki.New(t)
	for _, c := range []struct {
		name       string
		tls, h2c   bool
		protocol   func(*http.Protocols, bool)
		protoMajor int
	}{
		{"HTTP/1.1", false, false, (*http.Protocols).SetHTTP1, 1},
		{"HTTP/2 over TLS", true, false, (*http.Protocols).SetHTTP2, 2},
		{"h2c", false, true, (*http.Protocols).SetUnencryptedHTTP2, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := hubTestConfig()
			if c.tls {
				cfg = tlsTestConfig(pki)
			}
			cfg.Server.H2C = c.h2c
			cfg.Stream.Retry = 2 * time.Second
			base, stop := startMain(t, cfg)
			client := testClient(t, pki.Roots, c.protocol)
			var bodies []io.Reader
			for _, path := range []string{"/stream?count=5&interval=1m", "/api/v1/events?topic=a"} {
				body := bufio.NewReader(getStream(t, client, base, path, c.protoMajor).Body)
				if _, err := body.Peek(1); err != nil { // the stream has begun
					t.Fatal(err)
				}
				bodies = append(bodies, body)
			}
			stop()
			for _, body := range bodies {
				b, err := io.ReadAll(body)
				if err != nil {
					t.Fatalf("stream after the shutdown: %v (read %q), want its clean end", err, b)
				}
				frames := strings.Split(strings.TrimSuffix(string(b), "\n\n"), "\n\n")
				ms, err := strconv.Atoi(strings.TrimPrefix(frames[len(frames)-1], "retry: "))
				if err != nil || ms < 2000 || ms > 4000 {
					t.Errorf("stream %q: want its last field retry: 2000 to 4000", b)
				}
			}
		})
	}
}
