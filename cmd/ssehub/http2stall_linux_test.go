package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/testpki"
	"go.uber.org/goleak"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"golang.org/x/sys/unix"
)

// TestHTTP2ClientThatStopsReadingIsDropped: an HTTP/2 client that stops
// reading its connection altogether, not one stream, while its kernel
// still acknowledges (a zero window), is dropped within about
// stream.write_timeout (over TLS, 5 s more: Go's TLS tries that long to
// send its closing alert), its streams with it, where no
// TCP_USER_TIMEOUT ends the connection (every system but Linux; the test
// turns it off). A stream's write deadline resets only that stream, with
// a RST_STREAM that cannot be sent through the full connection: the
// stream, its slot and its connection were held until the client read
// again.
func TestHTTP2ClientThatStopsReadingIsDropped(t *testing.T) {
	t.Parallel() // its own server; it waits on timers, not the CPU
	eachHTTP2Mode(t, func(t *testing.T, _ string, cfg config.Config, roots *x509.CertPool) {
		t.Parallel()
		cfg.Server.ShutdownTimeout = time.Second
		cfg.Stream.WriteTimeout = time.Second
		closed := newClosedAddrs()
		base, _ := startMain(t, cfg, stallableConns(t, closed))

		conn := stallHTTP2(t, base, stallTLSConfig(roots), "stalled", 2)
		start := time.Now()
		select {
		case <-closed.of(conn.LocalAddr().String()):
		case <-time.After(15 * cfg.Stream.WriteTimeout):
			t.Fatalf("the connection of a client that stopped reading was still open %v after its last publish; stream.write_timeout %v",
				time.Since(start), cfg.Stream.WriteTimeout)
		}
		t.Logf("connection closed %v after the last publish", time.Since(start))
		waitStreams(t, testClient(t, roots, (*http.Protocols).SetHTTP1), base, 0)
	})
}

// eachHTTP2Mode runs test as a subtest over TLS, with the roots of the
// server's certificate, and over h2c, with roots nil, each with its own
// copy of the configuration for it.
func eachHTTP2Mode(t *testing.T, test func(t *testing.T, name string, cfg config.Config, roots *x509.CertPool)) {
	t.Helper()
	pki := testpki.New(t)
	for name, cfg := range map[string]config.Config{"tls": tlsTestConfig(pki), "h2c": hubTestConfig()} {
		t.Run(name, func(t *testing.T) {
			cfg.Server.H2C = name == "h2c"
			var roots *x509.CertPool
			if name == "tls" {
				roots = pki.Roots
			}
			test(t, name, cfg, roots)
		})
	}
}

// stallTLSConfig is the TLS configuration for stallHTTP2 of a server
// whose certificate roots verify, nil (h2c) when roots is.
func stallTLSConfig(roots *x509.CertPool) *tls.Config {
	if roots == nil {
		return nil
	}
	return &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
}

// TestHTTP2ShutdownWithStalledClients shuts down while HTTP/2 clients,
// over TLS and h2c, have stopped reading their connections, each with a
// stream blocked writing and another idle, and a write timeout far past
// the shutdown timeout: Run closes their connections when
// server.shutdown_timeout passes, every stream ends, as shutting down,
// and no goroutine of theirs is left.
func TestHTTP2ShutdownWithStalledClients(t *testing.T) {
	eachHTTP2Mode(t, func(t *testing.T, name string, cfg config.Config, roots *x509.CertPool) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		cfg.Server.ShutdownTimeout = 500 * time.Millisecond
		cfg.Stream.WriteTimeout = time.Minute
		var logs lockedBuffer
		base, stop := startMainReturning(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)), stallableConns(t, nil))
		stallHTTP2(t, base, stallTLSConfig(roots), "stalled."+name, 2)

		start := time.Now()
		err := stop()
		elapsed := time.Since(start)
		if err != nil {
			t.Fatalf("Run returned %v after %v", err, elapsed)
		}
		if bound := cfg.Server.ShutdownTimeout + closedStreamsGrace; elapsed > bound {
			t.Errorf("Run returned after %v, past the shutdown timeout and its grace, %v", elapsed, bound)
		}
		out := logs.tail(1 << 20)
		if n := strings.Count(out, `msg="stream ended"`); n != 2 {
			t.Errorf("%d stream end lines, want 2; log:\n%s", n, out)
		}
		for line := range strings.Lines(out) {
			if strings.Contains(line, `msg="stream ended"`) && !strings.Contains(line, `reason="shutting down`) {
				t.Errorf("stream end line %q, want its reason shutting down", strings.TrimSpace(line))
			}
		}
	})
}

// stallableConns returns a hook for startMain that makes the server's
// connections as on a system without TCP_USER_TIMEOUT, with a small send
// buffer that a few events fill, and tells closed, when not nil, the
// client's address of each connection closed. It never blocks: it sent
// each address to a channel of a hundred places, and once they were full
// of closes no test waited for, the next connection's goroutine was held
// in the hook for good (TestStallableConnsClosedUnwatched).
func stallableConns(t *testing.T, closed *closedAddrs) func(*Main) {
	return func(m *Main) {
		m.connState = func(c net.Conn, state http.ConnState) {
			switch state {
			case http.StateNew:
				if tc, ok := c.(*tls.Conn); ok {
					c = tc.NetConn()
				}
				raw, err := c.(syscall.Conn).SyscallConn()
				if err != nil {
					t.Error(err)
					return
				}
				if err := raw.Control(func(fd uintptr) {
					if err := unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 0); err != nil {
						t.Error(err)
					}
				}); err != nil {
					t.Error(err)
				}
				if err := c.(*net.TCPConn).SetWriteBuffer(4096); err != nil {
					t.Error(err)
				}
			case http.StateClosed:
				if closed != nil {
					closed.close(c.RemoteAddr().String())
				}
			}
		}
	}
}

// closedAddrs tells of the connections a server closed, by the client's
// address, from its ConnState hook (stallableConns), without blocking it.
type closedAddrs struct {
	mu     sync.Mutex
	closed map[string]chan struct{} // closed once that address's connection is
}

func newClosedAddrs() *closedAddrs {
	return &closedAddrs{closed: make(map[string]chan struct{})}
}

// of returns a channel closed once the server has closed the connection
// of the client at addr.
func (c *closedAddrs) of(addr string) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.chanOf(addr)
}

// close tells that the server closed the connection of the client at
// addr.
func (c *closedAddrs) close(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.chanOf(addr)
	select {
	case <-ch: // told already
	default:
		close(ch)
	}
}

// chanOf is of's channel, made on first use; called under mu.
func (c *closedAddrs) chanOf(addr string) chan struct{} {
	ch, ok := c.closed[addr]
	if !ok {
		ch = make(chan struct{})
		c.closed[addr] = ch
	}
	return ch
}

// stallHTTP2 opens an HTTP/2 connection to base, over TLS with tlsConfig
// when not nil, else h2c, with its windows wide open, subscribes to topic
// on its first stream and to topic.idle on the others up to streams,
// reads up to each one's first bytes and then reads nothing. It
// publishes to topic over another connection until the server's writes
// to it block, and returns the connection, with its small receive
// buffer.
func stallHTTP2(t *testing.T, base string, tlsConfig *tls.Config, topic string, streams int) net.Conn {
	t.Helper()
	conn, fr, scheme := dialHTTP2(t, net.Dialer{Control: smallReceiveBuffer}, base, tlsConfig)
	// Windows wide open: only the connection itself holds the server's
	// bytes back.
	const window = 1<<31 - 1
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: window}); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteWindowUpdate(0, window-65535); err != nil {
		t.Fatal(err)
	}
	for i := range streams {
		path := "/api/v1/events?topic=" + topic
		if i > 0 {
			path += ".idle"
		}
		writeGet(t, fr, uint32(2*i+1), scheme, path)
	}
	// Read up to each stream's first bytes, its retry field: its
	// subscription is then registered. From here on the client reads
	// nothing.
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for started := map[uint32]bool{}; len(started) < streams; {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the streams' start: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := fr.WriteSettingsAck(); err != nil {
					t.Fatal(err)
				}
			}
		case *http2.MetaHeadersFrame:
			if status := f.PseudoValue("status"); status != "200" {
				t.Fatalf("subscribe: %s", status)
			}
		case *http2.DataFrame:
			started[f.StreamID] = true
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			t.Fatalf("subscribe: %v", f)
		}
	}

	// Events for the first stream alone, 1.2 MB, are far more than the
	// client's receive buffer and the server's send buffer hold: the
	// connection's writes block.
	var roots *x509.CertPool
	if tlsConfig != nil {
		roots = tlsConfig.RootCAs
	}
	client := testClient(t, roots, (*http.Protocols).SetHTTP1)
	data := strings.Repeat("b", 60000)
	for i := range 20 {
		if status, answer := publishWith(t, client, base, hubTestToken, topic, data); status != http.StatusCreated {
			t.Fatalf("publish %d: %d %s", i, status, answer)
		}
	}
	client.CloseIdleConnections()
	return conn
}

// dialHTTP2 connects to base with dialer, over TLS with tlsConfig when
// not nil, else h2c, sends the client preface, and returns the
// connection, a framer on it that reads headers whole, and the scheme.
func dialHTTP2(t *testing.T, dialer net.Dialer, base string, tlsConfig *tls.Config) (net.Conn, *http2.Framer, string) {
	t.Helper()
	tcp, err := dialer.Dial("tcp", base[strings.Index(base, "://")+3:])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcp.Close() })
	conn, scheme := tcp, "http"
	if tlsConfig != nil {
		tlsConfig = tlsConfig.Clone()
		tlsConfig.NextProtos = []string{"h2"}
		tc := tls.Client(tcp, tlsConfig)
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		conn, scheme = tc, "https"
	}
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	return conn, fr, scheme
}

// writeGet writes on fr a GET of path at scheme as stream id, its headers
// in one frame.
func writeGet(t *testing.T, fr *http2.Framer, id uint32, scheme, path string) {
	t.Helper()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range []hpack.HeaderField{
		{Name: ":method", Value: http.MethodGet},
		{Name: ":scheme", Value: scheme},
		{Name: ":authority", Value: "ssehub.test"},
		{Name: ":path", Value: path},
	} {
		if err := enc.WriteField(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
}

// TestHTTP2StreamNotReadKeepsItsConnection: an HTTP/2 client that reads
// its connection but not one of its streams (that stream's window full,
// as a page that stopped consuming one EventSource) has that stream
// reset at stream.write_timeout, and keeps its connection and its other
// stream, which goes on receiving events: the connection's write timeout
// (HTTP2Config.WriteByteTimeout) is for a connection that takes no byte,
// not for a stream that may send none.
func TestHTTP2StreamNotReadKeepsItsConnection(t *testing.T) {
	t.Parallel() // its own server; it waits on timers, not the CPU
	eachHTTP2Mode(t, func(t *testing.T, _ string, cfg config.Config, roots *x509.CertPool) {
		t.Parallel()
		cfg.Stream.WriteTimeout = time.Second
		streamNotRead(t, cfg, roots)
	})
}

// streamNotRead is TestHTTP2StreamNotReadKeepsItsConnection over TLS
// with roots, else h2c.
func streamNotRead(t *testing.T, cfg config.Config, roots *x509.CertPool) {
	closed := newClosedAddrs()
	base, _ := startMain(t, cfg, stallableConns(t, closed))
	conn, fr, scheme := dialHTTP2(t, net.Dialer{}, base, stallTLSConfig(roots))
	// The streams' windows are the default 64 KiB, never raised; the
	// connection's is wide open.
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteWindowUpdate(0, 1<<31-1-65535); err != nil {
		t.Fatal(err)
	}
	for i, topic := range []string{"unread", "read"} {
		writeGet(t, fr, uint32(2*i+1), scheme, "/api/v1/events?topic="+topic)
	}
	// The client reads every frame: stream 3's data, and the end of
	// stream 1 (reset) or of the connection.
	started := make(chan uint32, 2)
	reset := make(chan uint32, 2)
	received := make(chan string, 100)
	ended := make(chan error, 1)
	go func() {
		seen := map[uint32]bool{}
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				ended <- err
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					if err := fr.WriteSettingsAck(); err != nil {
						ended <- err
						return
					}
				}
			case *http2.DataFrame:
				if !seen[f.StreamID] {
					seen[f.StreamID] = true
					started <- f.StreamID
				}
				if f.StreamID == 3 && len(f.Data()) > 0 {
					// Stream 3 is read: its window is given back.
					if err := fr.WriteWindowUpdate(3, uint32(len(f.Data()))); err != nil {
						ended <- err
						return
					}
					received <- string(f.Data())
				}
			case *http2.RSTStreamFrame:
				reset <- f.StreamID
			case *http2.GoAwayFrame:
				ended <- fmt.Errorf("GOAWAY %v", f.ErrCode)
				return
			}
		}
	}()
	for range 2 {
		select {
		case <-started:
		case err := <-ended:
			t.Fatalf("the connection ended as its streams started: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("the streams did not start")
		}
	}

	client := testClient(t, roots, (*http.Protocols).SetHTTP1)
	data := strings.Repeat("b", 60000)
	for i := range 4 {
		if status, answer := publishWith(t, client, base, hubTestToken, "unread", data); status != http.StatusCreated {
			t.Fatalf("publish %d: %d %s", i, status, answer)
		}
	}
	select {
	case id := <-reset:
		if id != 1 {
			t.Fatalf("stream %d reset, want 1", id)
		}
	case err := <-ended:
		t.Fatalf("the connection ended, not the stream its client did not read: %v", err)
	case <-time.After(15 * cfg.Stream.WriteTimeout):
		t.Fatal("the stream its client did not read was not reset")
	}
	// Past several write timeouts, stream 3 still gets each event, and
	// the connection is open.
	until := time.Now().Add(3 * cfg.Stream.WriteTimeout)
	for i := 0; time.Now().Before(until); i++ {
		want := "event-" + strconv.Itoa(i)
		if status, answer := publishWith(t, client, base, hubTestToken, "read", want); status != http.StatusCreated {
			t.Fatalf("publish to the read stream: %d %s", status, answer)
		}
		for got := false; !got; {
			select {
			case frame := <-received:
				got = strings.Contains(frame, "data: "+want+"\n")
			case err := <-ended:
				t.Fatalf("the connection ended after the stream's reset: %v", err)
			case <-closed.of(conn.LocalAddr().String()):
				t.Fatal("the server closed the connection of a client that reads it")
			case <-time.After(10 * time.Second):
				t.Fatalf("event %q did not reach the stream the client reads", want)
			}
		}
	}
}

// TestStallableConnsClosedUnwatched: connections the server closed while
// no test waited for them (more than the hundred places of the channel
// stallableConns's hook sent to) leave no goroutine behind once the
// server stopped. The send of the hundred and first held its
// connection's goroutine in the hook for good.
func TestStallableConnsClosedUnwatched(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) }) // after the server stopped
	base, _ := startMain(t, hubTestConfig(), stallableConns(t, newClosedAddrs()))
	addr := strings.TrimPrefix(base, "http://")
	for range 110 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}
}
