package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/gcpace"
	"github.com/ssehub/ssehub/internal/handler"
	"github.com/ssehub/ssehub/internal/natsbroker"
	"github.com/ssehub/ssehub/static"
)

// Bounds of a connection that net/http keeps, besides server.read_timeout.
const (
	// readHeaderTimeout bounds reading a request's head, or
	// server.read_timeout when that is shorter.
	readHeaderTimeout = 10 * time.Second
	// idleTimeout bounds the wait for the next request on a kept-alive
	// connection.
	idleTimeout = 2 * time.Minute
	// maxHeaderBytes bounds a request's head (its line and headers; over
	// HTTP/2, its header list): past it, 431. A stream holds its request
	// for as long as it runs, so this is also what a client can make one
	// stream hold beyond its own state, not net/http's 1 MiB. It leaves
	// room for the largest head a client needs: 32 topics of 255 bytes,
	// a token, cookies.
	maxHeaderBytes = 64 << 10
)

// newConnGrace is how long a shutdown leaves a connection that has given
// no request yet: then it is closed, as an idle kept-alive connection is
// at once. A browser opens one ahead of a request it may never send (a
// preconnect); net/http would wait until it had been silent for 5 s.
const newConnGrace = time.Second

// closedStreamsGrace bounds the wait for the streams whose connections
// shutdown closed after server.shutdown_timeout, in either transport:
// their writes fail at once, so they end within it.
const closedStreamsGrace = time.Second

// serve loads the config and runs the server until ctx is done.
func serve(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
	cfg, err := config.Load(args, getenv)
	if err != nil {
		return err
	}
	m := &Main{Config: cfg, Logger: newLogger(cfg.Log, stderr)}
	err = m.Run(ctx)
	if err != nil && cfg.Log.JSON() {
		m.Logger.Error("ssehub stopped", "err", err)
		return loggedError{err}
	}
	return err
}

// Main is one running ssehub server.
type Main struct {
	Config config.Config
	Logger *slog.Logger

	// ready, when not nil, receives the listening address once the
	// server accepts connections.
	ready chan<- net.Addr
	// connState, when not nil, is the server's http.Server.ConnState:
	// tests count the connections a proxy opens with it.
	connState func(net.Conn, http.ConnState)
	// nats, when not nil, runs the hub on the NATS broker with these
	// options, whatever the config says.
	nats *natsbroker.Options
	// certCheck, when not nil, replaces certCheckInterval: tests set 0,
	// so that every TLS handshake checks server.tls's files.
	certCheck *time.Duration
	// listening, when not nil, is given the listener before it serves:
	// tests close it to make Serve fail.
	listening func(net.Listener)
}

// Run listens, serves until ctx is done, then shuts down: it stops
// accepting, ends every open stream at once, waits at most
// server.shutdown_timeout for requests to finish and closes the
// connections still open then.
func (m *Main) Run(ctx context.Context) error {
	interval := certCheckInterval
	if m.certCheck != nil {
		interval = *m.certCheck
	}
	tlsConfig, err := serverTLS(m.Config.Server.TLS, interval, m.Logger)
	if err != nil {
		return err
	}
	verifier, err := jwtVerifier(m.Config.Auth.JWT)
	if err != nil {
		return err
	}
	ln, err := listen(ctx, m.Config.Server.Addr, m.Config.Stream.WriteTimeout)
	if err != nil {
		if ctx.Err() != nil {
			// Stopped while it looked up server.addr's host name (a
			// slow DNS server): a stop asked for, not the address's
			// failure.
			m.Logger.Info("stopped while listening", "err", err)
			return nil
		}
		return fmt.Errorf("server.addr: %w", err)
	}
	nats := m.nats
	if nats == nil && m.Config.Hub.NATS() {
		url, stopNATS, err := natsServers(m.Config, m.Logger)
		if err != nil {
			ln.Close()
			return fmt.Errorf("nats: %w", err)
		}
		defer stopNATS() // after the broker, closed below, is done with it
		nats = natsOptions(m.Config, url)
	}
	broker, err := openBroker(ctx, m.Config.Hub, nats, m.Logger)
	if err != nil {
		ln.Close()
		if ctx.Err() != nil {
			// Stopped while it opened (JetStream slow to answer): a stop
			// asked for, not the broker's failure.
			m.Logger.Info("stopped while opening the hub broker", "err", err)
			return nil
		}
		return fmt.Errorf("hub broker: %w", err)
	}
	defer broker.Close() // Close runs on shutdown too: it is idempotent
	if m.Config.Hub.HistoryGCPacing {
		// The history is bounded by hub.history_max_bytes and kept on
		// purpose: the collector need not leave room for it to double.
		defer gcpace.Exclude(func() int64 { return broker.Stats().HistoryBytes })()
	}
	opts := handlerOptions(m.Config, m.Logger, broker)
	opts.Hub.JWT = verifier
	opts.Stream.MaxStreams = capStreams(opts.Stream.MaxStreams, m.Logger)
	h := handler.New(opts)
	var conns openConns
	var running handlers
	errLog, flushErrLog := serverErrorLog(m.Logger.Handler())
	defer flushErrLog()
	srv := &http.Server{
		Handler: running.serve(h),
		// ReadTimeout bounds reading a request, body included: a body
		// that never comes holds its connection no longer. A stream lifts
		// it once it starts. Between requests, IdleTimeout governs.
		ReadTimeout:       m.Config.Server.ReadTimeout,
		ReadHeaderTimeout: min(readHeaderTimeout, m.Config.Server.ReadTimeout),
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		TLSConfig:         tlsConfig,
		Protocols:         serverProtocols(m.Config.Server),
		ErrorLog:          errLog,
		ConnState: func(c net.Conn, state http.ConnState) {
			conns.track(c, state)
			if m.connState != nil {
				m.connState(c, state)
			}
		},
	}
	// Shutdown ends the streams at once. The broker stays open until the
	// requests under way have their answers (its deferred Close): closed
	// here, a NATS publish whose acknowledgement was on its way was
	// answered 503 though stored, and its retry stored it twice.
	srv.RegisterOnShutdown(h.Close)

	if m.listening != nil {
		m.listening(ln)
	}
	served := make(chan error, 1)
	go func() { served <- serveOn(srv, ln) }()
	brokerName, transport := "memory", "gin"
	if nats != nil {
		brokerName = "nats"
	}
	if m.Config.Stream.Detached() {
		transport = "detached"
	}
	m.Logger.Info("listening", "addr", ln.Addr().String(), "tls", tlsConfig != nil, "h2c", m.Config.Server.H2C,
		"broker", brokerName, "transport", transport, "allowed_origins", m.Config.CORS.AllowedOrigins,
		"publish_tokens", len(m.Config.Auth.PublishTokens), "subscribe_tokens", len(m.Config.Auth.SubscribeTokens),
		"jwt", m.Config.Auth.JWT.Enabled())
	m.logAccess()
	if m.ready != nil {
		m.ready <- ln.Addr()
	}

	select {
	case err := <-served:
		// The listener failed in a way net/http does not retry: nothing
		// is accepted any more. End what runs at once, as a shutdown
		// past its timeout would, so that no stream outlives Run.
		h.Close()
		h.Cutting()
		srv.Close()
		h.CloseDetached()
		gctx, cancelGrace := context.WithTimeout(context.Background(), closedStreamsGrace)
		defer cancelGrace()
		_ = h.Wait(gctx) // the error says why Run ends; this only bounds the wait
		_ = running.wait(gctx)
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	m.Logger.Info("shutting down", "timeout", m.Config.Server.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), m.Config.Server.ShutdownTimeout)
	defer cancel()
	// What is still open when sctx is done is closed: its writes fail at
	// once, so it ends within closedStreamsGrace more.
	gctx, cancelGrace := context.WithTimeout(context.Background(), m.Config.Server.ShutdownTimeout+closedStreamsGrace)
	defer cancelGrace()
	err = m.shutdown(sctx, srv, h, &conns)
	// Shutdown does not wait for streams taken over from net/http, nor
	// close them when its time is up: a stream blocked writing to a
	// client that stopped reading would wait for its write timeout. Nor
	// does it wait for the streams whose connections it closed.
	if werr := h.Wait(sctx); werr != nil {
		if n := h.CloseDetached(); n > 0 {
			m.Logger.Warn("shutdown timeout passed: closed the detached streams still open",
				"streams", n, "timeout", m.Config.Server.ShutdownTimeout)
		}
		if werr := h.Wait(gctx); err == nil && werr != nil {
			err = werr
		}
	}
	// A Gin stream's access line is written after its end, once its
	// handler returns. Shutdown waits for that on the connections it
	// does not close; on those it closed, and so that the exit does not
	// lose the line, Run waits for it here.
	_ = running.wait(gctx) // the streams have ended: this only bounds the wait
	if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serveErr)
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	m.Logger.Info("stopped")
	return nil
}

// logAccess says at start who may publish and subscribe without a token.
func (m *Main) logAccess() {
	const setTokens = "set auth.publish_tokens (SSEHUB_AUTH_PUBLISH_TOKENS) to publish"
	noTokens := len(m.Config.Auth.PublishTokens) == 0 && !m.Config.Auth.JWT.Enabled()
	switch {
	case m.Config.Demo.Enabled:
		m.Logger.Info("demo hub open: anyone may publish and subscribe to " + handler.DemoTopics + " without a token (demo.enabled: false turns it off)")
		if noTokens {
			m.Logger.Warn("publishing is off outside " + handler.DemoTopics + ": " + setTokens + " to other topics")
		}
	case noTokens:
		m.Logger.Warn("publishing is off: " + setTokens + " to the hub")
	}
	if len(m.Config.Auth.SubscribeTokens) == 0 && !m.Config.Auth.JWT.Enabled() {
		m.Logger.Warn("subscribing is open: anyone may subscribe to every topic and list them; set auth.subscribe_tokens (SSEHUB_AUTH_SUBSCRIBE_TOKENS) or an auth.jwt key to require a token")
	}
}

// shutdown stops srv: it stops accepting and waits, until ctx is done, for
// the requests under way to finish. A connection that has given no request
// newConnGrace after it began is closed. What is still open then is closed, with
// a warning naming how many connections were cut, and shutdown returns nil:
// the process stopped within its bound, which is what was asked of it; the
// streams cut end as shutting down (handler.Handler.Cutting). A
// client can hold a connection that long, say by declaring a body it never
// sends (server.read_timeout ends that, but it may be as long as the
// shutdown timeout, or longer); exiting 1 for it would make a supervisor
// take a routine stop for a crash.
func (m *Main) shutdown(ctx context.Context, srv *http.Server, h *handler.Handler, conns *openConns) error {
	closeFresh := time.AfterFunc(newConnGrace, conns.closeFresh)
	defer closeFresh.Stop()
	err := srv.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	open := conns.count()
	h.Cutting()
	if err := srv.Close(); err != nil {
		return err
	}
	m.Logger.Warn("shutdown timeout passed: closed the connections still open",
		"connections", open, "timeout", m.Config.Server.ShutdownTimeout)
	return nil
}

// listen opens the server's socket. Its connections get no TCP keep-alive
// probes: every stream sends a heartbeat, and the server closes idle
// connections itself (IdleTimeout), so probes would find nothing those
// miss, and setting them up costs four system calls per connection.
//
// Where the system has it (Linux), the socket gets TCP_USER_TIMEOUT, which
// its connections inherit: what they send and is not acknowledged within
// unacked ends them. A client gone without a word (a NAT that dropped it,
// a laptop asleep) never acknowledges the next heartbeat, but the
// heartbeat's write does not block, it waits in the kernel's queue, so
// stream.write_timeout never fired; the kernel kept retransmitting for
// about 15 minutes, holding the stream, its subscription and its socket.
// unacked 0 leaves the system's default.
func listen(ctx context.Context, addr string, unacked time.Duration) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1, Control: userTimeout(unacked)}
	return lc.Listen(ctx, "tcp", addr)
}

// handlerOptions copies what the HTTP layer needs out of the config.
func handlerOptions(cfg config.Config, log *slog.Logger, broker handler.Broker) handler.Options {
	return handler.Options{
		Logger: log,
		CORS: handler.CORSOptions{
			AllowOrigin:      cfg.CORS.AllowOrigin,
			AllowCredentials: cfg.CORS.AllowCredentials,
			AllowedHeaders:   cfg.CORS.AllowedHeaders,
			ExposedHeaders:   cfg.CORS.ExposedHeaders,
			MaxAge:           cfg.CORS.MaxAge,
		},
		Stream: handler.StreamOptions{
			HeartbeatInterval: cfg.Stream.HeartbeatInterval,
			Retry:             cfg.Stream.Retry,
			WriteTimeout:      cfg.Stream.WriteTimeout,
			Detached:          cfg.Stream.Detached(),
			MaxStreams:        cfg.Stream.MaxStreams,
		},
		Demo: handler.DemoOptions{
			Enabled:        cfg.Demo.Enabled,
			TickerCount:    cfg.Demo.TickerCount,
			TickerInterval: cfg.Demo.TickerInterval,
			MaxDuration:    cfg.Demo.MaxDuration,
			MaxTokens:      cfg.Demo.MaxTokens,
		},
		Hub: handler.HubOptions{
			Broker:                   broker,
			MaxEventBytes:            cfg.Hub.MaxEventBytes,
			MaxTopicsPerSubscription: cfg.Hub.MaxTopicsPerSubscription,
			PublishTokens:            cfg.Auth.PublishTokens,
			SubscribeTokens:          cfg.Auth.SubscribeTokens,
			TokenCookie:              cfg.Auth.JWT.CookieName,
		},
		TrustedProxies: cfg.Server.TrustedProxies,
		Static:         static.FS,
	}
}

// serverErrorLog is net/http's error log: its lines are warnings, except
// a TLS handshake the client left without a word, closing or resetting
// the connection before or during it. A TCP health check (a load
// balancer's, Kubernetes' tcpSocket probe) or a port scan does that, every
// few seconds or at the rate it likes: at debug. So is a plain HTTP
// request, which net/http answers 400 (an HTTP health check given the
// wrong scheme, a bot trying the port), a handshake cut by the
// server's own close of the connection (a shutdown closing those that
// have sent no request), one the client left unfinished until
// server.read_timeout passed, and one the client's bytes failed (not TLS, a
// version or cipher suites the server does not take). A handshake the client
// refused (an expired certificate, a chain it cannot verify) ends with its
// alert, and still warns. A client that completes a handshake offering
// HTTP/2 and resets the connection before its preface (a TLS health check
// closing with the server's first bytes unread, which resets it) is at
// debug too: net/http leaves the same probe unlogged when it closes
// cleanly (EOF). So is every other failure to read that preface: the
// client's bytes (a preface that is not HTTP/2's, as a client speaking
// HTTP/1.1 after choosing h2 sends) or its silence, never the server's
// doing. A client that closes an HTTP/2 connection with GOAWAY and an
// error code is at debug: net/http leaves one without a code unlogged. So
// is one that breaks HTTP/2 (net/http's "server connection error", which
// only the client's frames raise) or sends no SETTINGS after its preface.
//
// A failed accept (the process at its open files limit, EMFILE) net/http
// logs at each retry, 5 ms after the failure before, doubling to 1 s, and
// 5 ms again after each accept that succeeds: with clients that keep
// coming, a line every few milliseconds. The first is logged at once, and
// those that follow within acceptErrorWindow make one line a window, the
// last of them with their count. flush writes the open window's line and
// makes later ones log at once; call it when the server is done.
func serverErrorLog(h slog.Handler) (errLog *log.Logger, flush func()) {
	w := &errorLogWriter{h: h}
	return log.New(w, "", 0), w.close
}

// acceptErrorWindow is how often, at most, failed accepts are logged.
const acceptErrorWindow = time.Second

type errorLogWriter struct {
	h slog.Handler

	mu     sync.Mutex
	timer  *time.Timer // the open window's; nil when none is open
	count  int         // failed accepts in the open window
	last   string      // the last of them
	closed bool        // set by close: no window opens any more
}

func (w *errorLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	if strings.HasPrefix(msg, "http: Accept error: ") {
		w.mu.Lock()
		if w.timer != nil {
			w.count++
			w.last = msg
			w.mu.Unlock()
			return len(p), nil
		}
		if !w.closed {
			w.timer = time.AfterFunc(acceptErrorWindow, w.flush)
		}
		w.mu.Unlock()
	}
	level := slog.LevelWarn
	if quietServerError(msg) {
		level = slog.LevelDebug
	}
	return len(p), w.log(level, msg)
}

func (w *errorLogWriter) log(level slog.Level, msg string, attrs ...slog.Attr) error {
	ctx := context.Background()
	if !w.h.Enabled(ctx, level) {
		return nil
	}
	r := slog.NewRecord(time.Now(), level, msg, 0)
	r.AddAttrs(attrs...)
	return w.h.Handle(ctx, r)
}

// flush writes the open window's line, if it counted any failed accept,
// and opens the next window; a window that counted none closes, so the
// next failed accept is logged at once.
func (w *errorLogWriter) flush() {
	w.mu.Lock()
	count, last := w.count, w.last
	w.count, w.last = 0, ""
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
		if count > 0 && !w.closed {
			w.timer = time.AfterFunc(acceptErrorWindow, w.flush)
		}
	}
	w.mu.Unlock()
	if count > 0 {
		_ = w.log(slog.LevelWarn, last, slog.Int("count", count), slog.Duration("window", acceptErrorWindow))
	}
}

// close flushes the open window, and makes later failed accepts log at
// once: no timer outlives the server.
func (w *errorLogWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.flush()
}

// quietServerError reports whether msg, a line of net/http's error log,
// is one serverErrorLog puts at debug.
func quietServerError(msg string) bool {
	if rest, ok := strings.CutPrefix(msg, "http: TLS handshake error from "); ok {
		for _, end := range []string{
			": EOF", ": connection reset by peer", // a TCP probe, a port scan
			": i/o timeout", // one that held the connection and said nothing
			": client sent an HTTP request to an HTTPS server", // answered 400
			": use of closed network connection",               // closed by a shutdown
		} {
			if strings.HasSuffix(rest, end) {
				return true
			}
		}
		// The client's bytes, not the server's certificate, failed it:
		// not TLS at all (a scanner's probe, another protocol on the
		// wrong port), or nothing the server takes offered.
		for _, mistake := range []string{
			": tls: first record does not look like a TLS handshake",
			": tls: unsupported SSLv2 handshake received",
			": tls: client offered only unsupported versions",
			": tls: no cipher suite supported by both client and server",
			": tls: client requested unsupported application protocols",
		} {
			if strings.Contains(rest, mistake) {
				return true
			}
		}
		return false
	}
	// A client that closed its HTTP/2 connection with an error code: its
	// own trouble, or its way to leave. One that broke the protocol (its
	// first frame not SETTINGS, a frame on the wrong stream), or sent its
	// preface and then nothing: its trouble too, a line per connection.
	for _, prefix := range []string{
		"http2: received GOAWAY ",
		"http2: server connection error from ",
		"timeout waiting for SETTINGS frames from ",
	} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	// A TLS health check that closed with the server's first bytes
	// unread, a client that said nothing, or one whose first bytes were
	// not HTTP/2's preface: a line per connection, at the rate a client
	// chooses.
	return strings.HasPrefix(msg, "http2: server: error reading preface from client ")
}

// newLogger builds the process logger from log.level and log.format.
func newLogger(c config.LogConfig, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.SlogLevel()}
	if c.JSON() {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
