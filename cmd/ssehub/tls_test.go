package main

// Tests of server.tls and server.h2c: HTTPS with HTTP/2 (and HTTP/1.1 for
// clients that ask for it), cleartext HTTP/2 with prior knowledge, the
// timeouts on HTTP/2, the healthcheck over TLS, and a bad pair at start.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/stream"
	"github.com/ssehub/ssehub/internal/testpki"
	"go.uber.org/goleak"
)

// tlsTestConfig is hubTestConfig serving HTTPS with pki's certificate.
func tlsTestConfig(pki testpki.PKI) config.Config {
	cfg := hubTestConfig()
	cfg.Server.TLS = config.TLSConfig{CertFile: pki.CertFile, KeyFile: pki.KeyFile}
	return cfg
}

// testClient returns a client that trusts pki's CA and speaks the given
// protocols, closing its connections when the test ends.
func testClient(t *testing.T, roots *x509.CertPool, protocols ...func(*http.Protocols, bool)) *http.Client {
	var p http.Protocols
	for _, set := range protocols {
		set(&p, true)
	}
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
		Protocols:         &p,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// readTicker reads a ticker stream of n lines to its close event.
func readTicker(t *testing.T, resp *http.Response, n int) {
	t.Helper()
	p := stream.NewParser(resp.Body)
	for i := range n {
		ev, err := nextEvent(p)
		if err != nil || ev.Data != "Streamed line "+strconv.Itoa(i) {
			t.Fatalf("event %d: %+v, %v", i, ev, err)
		}
	}
	if ev, err := nextEvent(p); err != nil || ev.Type != "close" {
		t.Fatalf("event %+v, %v: want the close event", ev, err)
	}
}

// getStream GETs path from base with client, checks the status and the
// protocol and returns the response, closed when the test ends.
func getStream(t *testing.T, client *http.Client, base, path string, protoMajor int) *http.Response {
	t.Helper()
	resp, err := client.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != protoMajor {
		t.Fatalf("GET %s: %s over %s, want 200 over HTTP/%d", path, resp.Status, resp.Proto, protoMajor)
	}
	return resp
}

// TestTLSServesHTTP2: over TLS a Go client that offers HTTP/2 gets it, for
// the ticker and for a hub subscription with a publish beside it on the
// same connection.
func TestTLSServesHTTP2(t *testing.T) {
	pki := testpki.New(t)
	base, _ := startMain(t, tlsTestConfig(pki))
	client := testClient(t, pki.Roots, (*http.Protocols).SetHTTP1, (*http.Protocols).SetHTTP2)

	t.Run("ticker", func(t *testing.T) {
		readTicker(t, getStream(t, client, base, "/stream?count=3&interval=10ms", 2), 3)
	})
	t.Run("hub", func(t *testing.T) {
		resp := getStream(t, client, base, "/api/v1/events?topic=orders.eu", 2)
		p := stream.NewParser(resp.Body)
		for _, data := range []string{"one", "two"} {
			if status, answer := publishWith(t, client, base, hubTestToken, "orders.eu", data); status != http.StatusCreated {
				t.Fatalf("publish over TLS: %d %s", status, answer)
			}
			if ev, err := nextEvent(p); err != nil || ev.Data != data {
				t.Fatalf("event %+v, %v: want %q", ev, err, data)
			}
		}
	})
}

// TestTLSServesHTTP1: a client that offers only HTTP/1.1 over TLS gets it,
// with either stream transport (detached takes over the TLS connection).
func TestTLSServesHTTP1(t *testing.T) {
	pki := testpki.New(t)
	base, _ := startMain(t, tlsTestConfig(pki))
	client := testClient(t, pki.Roots, (*http.Protocols).SetHTTP1)
	readTicker(t, getStream(t, client, base, "/stream?count=3&interval=10ms", 1), 3)
}

// TestTLSHTTP2KeepsReadTimeout: on HTTP/2, server.read_timeout still cuts
// a request body that never comes (408), and a stream still outlives it.
func TestTLSHTTP2KeepsReadTimeout(t *testing.T) {
	const readTimeout = 500 * time.Millisecond
	pki := testpki.New(t)
	cfg := tlsTestConfig(pki)
	cfg.Server.ReadTimeout = readTimeout
	base, _ := startMain(t, cfg)
	client := testClient(t, pki.Roots, (*http.Protocols).SetHTTP2)

	t.Run("held body", func(t *testing.T) {
		body, hold := io.Pipe()
		defer hold.Close()
		req, err := http.NewRequest(http.MethodPost, base+"/api/v1/topics/a/events", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+hubTestToken)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout || resp.ProtoMajor != 2 {
			t.Errorf("%s over %s, want 408 over HTTP/2", resp.Status, resp.Proto)
		}
		if elapsed := time.Since(start); elapsed < readTimeout/2 {
			t.Errorf("answered after %v, before the read timeout", elapsed)
		}
	})
	t.Run("stream", func(t *testing.T) {
		// Three lines 400ms apart: the stream lasts 2.4 read timeouts.
		readTicker(t, getStream(t, client, base, "/stream?count=3&interval=400ms", 2), 3)
	})
}

// TestTLSHealthcheck: `ssehub healthcheck` with the server's config asks
// over HTTPS and accepts the server's own certificate, though it dials
// 127.0.0.1 and does not know the CA.
func TestTLSHealthcheck(t *testing.T) {
	pki := testpki.New(t)
	base, stop := startMain(t, tlsTestConfig(pki))
	other := testpki.New(t)
	vars := map[string]string{
		"SSEHUB_SERVER_ADDR":          strings.TrimPrefix(base, "https://"),
		"SSEHUB_SERVER_TLS_CERT_FILE": pki.CertFile,
		"SSEHUB_SERVER_TLS_KEY_FILE":  pki.KeyFile,
	}
	healthcheck := func() (int, string) {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), []string{"healthcheck", "--config", os.DevNull}, func(k string) string { return vars[k] }, &stdout, &stderr)
		return code, stderr.String()
	}
	if code, stderr := healthcheck(); code != 0 {
		t.Fatalf("healthcheck of a TLS server: exit %d, %s", code, stderr)
	}
	// Another certificate than the server's: the check refuses the server.
	vars["SSEHUB_SERVER_TLS_CERT_FILE"], vars["SSEHUB_SERVER_TLS_KEY_FILE"] = other.CertFile, other.KeyFile
	if code, stderr := healthcheck(); code == 0 || !strings.Contains(stderr, "server.tls.cert_file") {
		t.Errorf("healthcheck pinning another certificate: exit %d, %s", code, stderr)
	}
	stop()
	vars["SSEHUB_SERVER_TLS_CERT_FILE"], vars["SSEHUB_SERVER_TLS_KEY_FILE"] = pki.CertFile, pki.KeyFile
	if code, _ := healthcheck(); code == 0 {
		t.Error("healthcheck of a stopped server: exit 0")
	}
}

// TestTLSBadPairStopsStartup: a key that is not the certificate's stops
// start-up with a message naming the key.
func TestTLSBadPairStopsStartup(t *testing.T) {
	pki, other := testpki.New(t), testpki.New(t)
	vars := map[string]string{
		"SSEHUB_SERVER_ADDR":          "127.0.0.1:0",
		"SSEHUB_SERVER_TLS_CERT_FILE": pki.CertFile,
		"SSEHUB_SERVER_TLS_KEY_FILE":  other.KeyFile,
	}
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"--config", os.DevNull}, func(k string) string { return vars[k] }, &stdout, &stderr); code == 0 {
		t.Fatal("exit 0, want a failure")
	}
	if want := "server.tls.key_file: \"" + other.KeyFile + "\" is not the private key"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q does not say %s", stderr.String(), want)
	}
}

// TestH2CServesHTTP2: with server.h2c a client speaking HTTP/2 with prior
// knowledge over cleartext streams the ticker over HTTP/2, and HTTP/1.1
// clients are still served; without it, the same client gets no answer.
func TestH2CServesHTTP2(t *testing.T) {
	cfg := hubTestConfig()
	cfg.Server.H2C = true
	base, _ := startMain(t, cfg)
	h2c := testClient(t, nil, (*http.Protocols).SetUnencryptedHTTP2)
	readTicker(t, getStream(t, h2c, base, "/stream?count=3&interval=10ms", 2), 3)
	readTicker(t, getStream(t, testClient(t, nil, (*http.Protocols).SetHTTP1), base, "/stream?count=2&interval=10ms", 1), 2)

	plain, _ := startMain(t, hubTestConfig())
	if resp, err := h2c.Get(plain + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("h2c to a server without server.h2c: %s over %s, want an error", resp.Status, resp.Proto)
	}
}

// TestTLSHTTP2ResetFreesTheStream: on one HTTP/2 connection, streams up to
// stream.max_streams are served and the next is refused 503; a client that
// resets one of its streams (RST_STREAM, as the Go client does when a
// request's context ends) frees its slot and its subscription, and the
// next stream on the same connection is served.
func TestTLSHTTP2ResetFreesTheStream(t *testing.T) {
	const maxStreams = 4
	pki := testpki.New(t)
	cfg := tlsTestConfig(pki)
	cfg.Stream.MaxStreams = maxStreams
	cfg.Hub.MaxSubscribers = maxStreams
	base, _ := startMain(t, cfg)
	client := testClient(t, pki.Roots, (*http.Protocols).SetHTTP2)
	var conns atomic.Int32
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		if !info.Reused {
			conns.Add(1)
		}
	}}
	open := func() (*http.Response, context.CancelFunc) {
		ctx, cancel := context.WithCancel(httptrace.WithClientTrace(t.Context(), trace))
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/events?topic=orders.eu", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		t.Cleanup(cancel)
		return resp, cancel
	}

	var cancels []context.CancelFunc
	for i := range maxStreams {
		resp, cancel := open()
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
			t.Fatalf("stream %d: %s over %s", i, resp.Status, resp.Proto)
		}
		cancels = append(cancels, cancel)
	}
	if resp, _ := open(); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("stream past max_streams: %s, want 503", resp.Status)
	}
	cancels[0]() // RST_STREAM
	waitStreams(t, client, base, maxStreams-1)
	if resp, _ := open(); resp.StatusCode != http.StatusOK {
		t.Fatalf("stream after a reset: %s, want 200", resp.Status)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want every stream on one", n)
	}
}

// metricWith reads one unlabelled metric from base's /metrics with client.
func metricWith(t *testing.T, client *http.Client, base, name string) float64 {
	t.Helper()
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s (scan: %v)", name, sc.Err())
	return 0
}

// waitStreams waits, 10s at most, until base has n streams open and n hub
// subscribers: the server ends a stream its client reset on its own time.
func waitStreams(t *testing.T, client *http.Client, base string, n float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for metricWith(t, client, base, "ssehub_streams_active") != n || metricWith(t, client, base, "ssehub_subscribers") != n {
		if time.Now().After(deadline) {
			t.Fatalf("%v streams, %v subscribers; want %v of each",
				metricWith(t, client, base, "ssehub_streams_active"), metricWith(t, client, base, "ssehub_subscribers"), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startTLSLogging runs Main over TLS with pki's certificate until the test
// ends, logging into logs, and returns its host:port and waitClosed,
// which waits 20s at most for the server to close one more connection
// (after net/http logged its error, if any), failing the test naming what.
func startTLSLogging(t *testing.T, pki testpki.PKI) (addr string, logs *lockedBuffer, waitClosed func(what string)) {
	t.Helper()
	logs = new(lockedBuffer)
	closed := newClosedConns()
	base, _ := startMainLogging(t, tlsTestConfig(pki), slog.New(slog.NewTextHandler(logs, nil)), func(m *Main) {
		m.connState = closed.connState
	})
	waited := 0
	waitClosed = func(what string) {
		t.Helper()
		waited++
		closed.wait(t, waited, what)
	}
	return strings.TrimPrefix(base, "https://"), logs, waitClosed
}

// closedConns counts the connections a server closed, from its ConnState
// hook (Main.connState), which never blocks: it sent each close to a
// channel of a few places, and once they were full of closes no test
// waited for, the next connection's goroutine was held in the hook for
// good, as startMainAccepting's send from StateNew held the accept loop.
type closedConns struct {
	mu      sync.Mutex
	n       int
	changed chan struct{} // closed, and made again, at each close
}

func newClosedConns() *closedConns { return &closedConns{changed: make(chan struct{})} }

// connState is the server's ConnState hook.
func (c *closedConns) connState(_ net.Conn, state http.ConnState) {
	if state != http.StateClosed {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	close(c.changed)
	c.changed = make(chan struct{})
}

// wait waits 20s at most until the server has closed n connections in
// all, failing the test naming what.
func (c *closedConns) wait(t *testing.T, n int, what string) {
	t.Helper()
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for {
		c.mu.Lock()
		got, changed := c.n, c.changed
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("%s: the server did not close the connection (%d closed, want %d)", what, got, n)
		}
	}
}

// TestTLSLoggingConnectionsClosedUnwatched: connections the server closed
// while no test waited for them (more than the four places of the channel
// startTLSLogging's hook sent to) leave no goroutine behind once the
// server stopped. The send of the fifth held its connection's goroutine in
// the hook for good.
func TestTLSLoggingConnectionsClosedUnwatched(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) }) // after the server stopped
	addr, _, _ := startTLSLogging(t, testpki.New(t))
	for range 8 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}
}

// TestTLSProbeWarnsOnce: a connection closed before its TLS handshake (a
// TCP health check of a load balancer or of Kubernetes, a port scan)
// warns for the first alone: net/http's "TLS handshake error ...: EOF"
// was a warning every few seconds per probe, and at the rate a client
// chose. The others are debug lines, as are plain HTTP requests, which
// net/http answers 400, but the first, and handshakes the client refuses
// (a chain it cannot verify) but the first.
func TestTLSProbeWarnsOnce(t *testing.T) {
	addr, logs, waitClosed := startTLSLogging(t, testpki.New(t))
	for _, reset := range []bool{false, true, false} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if reset {
			if err := conn.(*net.TCPConn).SetLinger(0); err != nil {
				t.Fatal(err)
			}
		}
		conn.Close()
		waitClosed("a probe")
	}
	warnedOnce(t, logs.tail(1<<20), "tls_closed", "TLS handshake error", 1)

	// An HTTP health check given the wrong scheme asks every few seconds
	// in plain HTTP; net/http answers it 400 itself, and the checker
	// reports that. A warning for each would flood the log.
	for range 2 {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the HTTPS port: %s, want 400", resp.Status)
		}
		waitClosed("a plain HTTP request")
	}
	warnedOnce(t, logs.tail(1<<20), "tls_plain_http", "client sent an HTTP request to an HTTPS server", 1)

	// A client that does not trust the certificate refuses the handshake:
	// any client may choose to, at its rate.
	for range 2 {
		conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "127.0.0.1"})
		if err == nil {
			conn.Close()
			t.Fatal("a client without the CA completed the handshake")
		}
		waitClosed("a refused handshake")
	}
	warnedOnce(t, logs.tail(1<<20), "tls_refused", "remote error: tls: bad certificate", 1)
}

// TestTLSHTTP2ProbeWarnsOnce: a client that completes a handshake
// offering HTTP/2 and leaves before the connection preface (a load
// balancer's TLS health check, a scanner) resets the connection, as
// closing a socket with unread bytes does (the server's SETTINGS, its
// session tickets). net/http's "http2: server: error reading preface from
// client ...: connection reset by peer" was a warning per probe; it is a
// debug line but the first, as for a probe that leaves before the
// handshake. So is a client that sends a preface that is not HTTP/2's:
// it warned, once per connection, at the rate the client chose.
func TestTLSHTTP2ProbeWarnsOnce(t *testing.T) {
	pki := testpki.New(t)
	addr, logs, waitClosed := startTLSLogging(t, pki)
	// probe completes a handshake offering h2, sends what it is given
	// and closes the connection with a reset, then waits until the
	// server has closed its side, after it logged the error.
	probe := func(send string) {
		t.Helper()
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn := tls.Client(raw, &tls.Config{RootCAs: pki.Roots, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
		if err := conn.Handshake(); err != nil || conn.ConnectionState().NegotiatedProtocol != "h2" {
			t.Fatalf("handshake: %v, protocol %q", err, conn.ConnectionState().NegotiatedProtocol)
		}
		if send != "" {
			if _, err := io.WriteString(conn, send); err != nil {
				t.Fatal(err)
			}
		}
		if err := raw.(*net.TCPConn).SetLinger(0); err != nil {
			t.Fatal(err)
		}
		raw.Close()
		waitClosed("a probe")
	}

	for range 2 {
		probe("")
		probe("GET / HTTP/1.1\r\nHost: ssehub\r\n\r\n")
	}
	warnedOnce(t, logs.tail(1<<20), "http2_preface", "error reading preface", 1)
}

// TestTLSSilentClientCutAtHeaderBound: a client that opens a connection
// and says nothing has its handshake cut within the 10s that bound a
// request's headers, however long server.read_timeout is: net/http
// bounds a handshake by the shortest of its timeouts.
func TestTLSSilentClientCutAtHeaderBound(t *testing.T) {
	t.Parallel() // its own server; it waits on timers, not the CPU
	cfg := tlsTestConfig(testpki.New(t))
	cfg.Server.ReadTimeout = time.Hour
	var logs lockedBuffer
	base, _ := startMainLogging(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := io.Copy(io.Discard, conn); err != nil { // until the server closes it
		t.Fatal(err)
	}
	if took := time.Since(start); took < readHeaderTimeout-time.Second || took > readHeaderTimeout+5*time.Second {
		t.Errorf("a silent handshake cut after %v, want %v", took, readHeaderTimeout)
	}
	warnedOnce(t, logs.String(), "tls_timeout", "i/o timeout", 1)
}

// TestTLSHealthcheckCertificateOutOfValidity: `ssehub healthcheck` fails
// while the server serves a certificate that has expired, or is not
// valid yet: every client refuses the server then, and the check, which
// pins the certificate in place of verifying it, passed, so that the
// container showed healthy through the outage. The error says why, and
// that a renewed pair needs no restart.
func TestTLSHealthcheckCertificateOutOfValidity(t *testing.T) {
	for _, valid := range []struct {
		name, want string
		from, to   time.Duration
	}{
		{"expired", "the server's certificate (server.tls.cert_file) expired at ", -48 * time.Hour, -time.Hour},
		{"not yet valid", "the server's certificate (server.tls.cert_file) is not valid until ", time.Hour, 48 * time.Hour},
	} {
		t.Run(valid.name, func(t *testing.T) {
			pki := pkiValidFor(t, valid.from, valid.to)
			addr, _, _ := startTLSLogging(t, pki)
			vars := map[string]string{
				"SSEHUB_SERVER_ADDR":          addr,
				"SSEHUB_SERVER_TLS_CERT_FILE": pki.CertFile,
				"SSEHUB_SERVER_TLS_KEY_FILE":  pki.KeyFile,
			}
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), []string{"healthcheck", "--config", os.DevNull}, func(k string) string { return vars[k] }, &stdout, &stderr)
			if code == 0 || !strings.Contains(stderr.String(), valid.want) || !strings.Contains(stderr.String(), "without a restart") {
				t.Errorf("healthcheck: exit %d, stderr %q; want a failure saying %q", code, stderr.String(), valid.want)
			}
		})
	}
}
