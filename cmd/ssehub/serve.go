package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/gcpace"
	"github.com/ssehub/ssehub/internal/handler"
	"github.com/ssehub/ssehub/internal/natsbroker"
	"github.com/ssehub/ssehub/internal/stream"
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
	// a token, cookies. headerBytes adds room for more topics.
	maxHeaderBytes = 64 << 10
	// headerTopics is how many topics maxHeaderBytes has room for.
	headerTopics = 32
	// topicParamBytes is what one topic of MaxTopicLen bytes adds to a
	// request's head: "&topic=", and its final '>' as a browser sends it
	// ("%3E").
	topicParamBytes = len("&topic=") + stream.MaxTopicLen + len("%3E") - 1
)

// headerBytes is the bound on a request's head (maxHeaderBytes), with
// room for every topic past headerTopics that a subscription may have
// (hub.max_topics_per_subscription): a subscription within the hub's
// bounds is not refused 431 for its head. It is never more than
// net/http's own bound, 1 MiB (about 3,800 topics of 255 bytes).
func headerBytes(maxTopics int) int {
	return min(maxHeaderBytes+max(0, maxTopics-headerTopics)*topicParamBytes, http.DefaultMaxHeaderBytes)
}

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
	cfg, err := config.LoadContext(ctx, args, getenv)
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
	tlsConfig, err := serverTLS(ctx, m.Config.Server.TLS, interval, m.Logger)
	if err != nil {
		return err
	}
	verifier, err := jwtVerifier(ctx, m.Config.Auth.JWT)
	if err != nil {
		return err
	}
	ln, err := listen(ctx, m.Config.Server.Addr, m.Config.Stream.WriteTimeout)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			// Stopped while it looked up server.addr's host name (a
			// slow DNS server): a stop asked for, not the address's
			// failure. A failure of its own (the port taken) that a
			// stop came with is still one: exiting 0 hid it.
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
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			// Stopped while it opened (JetStream slow to answer): a stop
			// asked for, not the broker's failure. A failure of its own
			// (NATS refusing the connection) that a stop came with is
			// still one.
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
	errLog, flushErrLog := serverErrorLog(m.Logger.Handler(), servedCertExpired(tlsConfig))
	defer flushErrLog()
	srv := &http.Server{
		Handler: running.serve(h),
		// ReadTimeout bounds reading a request, body included: a body
		// that never comes holds its connection no longer. A stream lifts
		// it once it starts. Between requests, IdleTimeout governs.
		ReadTimeout:       m.Config.Server.ReadTimeout,
		ReadHeaderTimeout: min(readHeaderTimeout, m.Config.Server.ReadTimeout),
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    headerBytes(m.Config.Hub.MaxTopicsPerSubscription),
		TLSConfig:         tlsConfig,
		Protocols:         serverProtocols(m.Config.Server),
		HTTP2:             serverHTTP2(m.Config.Stream),
		ErrorLog:          errLog,
		ConnState: func(c net.Conn, state http.ConnState) {
			conns.track(c, state)
			if m.connState != nil {
				m.connState(c, state)
			}
		},
	}
	if opts.Stream.StoppedReading != nil {
		srv.ConnContext = handler.ConnContext
	}
	// Shutdown ends the streams at once. The broker stays open until the
	// requests under way have their answers, or their connections were
	// closed (Run closes it then): closed here, a NATS publish whose
	// acknowledgement was on its way was answered 503 though stored, and
	// its retry stored it twice.
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
		broker.Close()   // as below: no request under way has a connection
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
	// Every request still under way has lost its connection (Shutdown
	// closed it when its time was up): its answer reaches no one, and
	// what it may still wait for is the broker, a publish whose NATS
	// server stopped answering for its acknowledgement. Closed now, the
	// broker ends that wait, rather than Run waiting closedStreamsGrace
	// for the request in vain and logging its line after "stopped".
	broker.Close()
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
	flushErrLog() // the open window's line, before the last
	m.Logger.Info("stopped")
	return nil
}

// logAccess says at start who may publish and subscribe without a token.
func (m *Main) logAccess() {
	const setTokens = "set auth.publish_tokens (SSEHUB_AUTH_PUBLISH_TOKENS) or an auth.jwt key to publish"
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
// It bounds a closed receive window too: a client that stopped reading,
// though it acknowledges, is ended unacked after its window closed, while
// the stream's writes may still fit in the kernel's send buffer, so before
// stream.write_timeout drops it: the handler learns so from the connection
// (stoppedReading, through ConnContext) and drops it as too slow all the
// same.
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
			StoppedReading:    stoppedReading(cfg.Stream.WriteTimeout),
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
// those a client causes, at the rate it likes, one per connection. A
// TLS handshake the client left without a word, closing or resetting
// the connection before or during it: a TCP health check (a load
// balancer's, Kubernetes' tcpSocket probe) or a port scan does that. A
// plain HTTP request, which net/http answers 400 (an HTTP health check
// given the wrong scheme, a bot trying the port). A handshake the client
// left unfinished until its bound passed (readHeaderTimeout, or
// server.read_timeout when that is shorter), or whose bytes failed it
// (not TLS, a version or cipher suites the server does not take). A
// client that completes a handshake offering HTTP/2 and resets the
// connection before its preface (a TLS health check closing with the
// server's first bytes unread; net/http leaves the same probe unlogged
// when it closes cleanly), or fails that preface otherwise (a preface
// that is not HTTP/2's, or its silence). A client that closes an HTTP/2
// connection with GOAWAY and an error code (net/http leaves one without
// a code unlogged), breaks HTTP/2 (net/http's "server connection error",
// which only the client's frames raise; ENHANCE_YOUR_CALM is Go's answer
// to a rapid reset attack, CVE-2023-44487), sends no SETTINGS after its
// preface, or answers no PING (gone without a word). Each line of these is at debug. The first of each kind is a
// warning, with its kind; those of the same kind that follow are
// counted, and one info line a clientErrorWindow sums up the kinds
// counted in it: "client connection errors", their count, and the count
// of each kind. The windows are the same for every kind, one after
// another while any is open: a kind of which a window counted none (its
// first line may have come at the window's end) is a warning again at
// its next line, so each kind warns at most once a window. So a flood,
// an attack or a stall of the server's own (clients that seem to send no
// SETTINGS) shows at info and at warn level, in a few lines whatever its
// rate. So does a handshake the client refused with its alert (a chain
// it cannot verify; any client may refuse at the rate it likes), and any
// other handshake that failed. A handshake that failed for the server's
// own certificate or key (serverTLSFault), or that a client refused
// while the served certificate has expired or is not valid yet (every
// client does), is a warning at each line, as any line no client caused.
// One cut by the server's own close of the connection (a shutdown
// closing those that have sent no request) is at debug, and counted
// nowhere.
//
// A failed accept (the process at its open files limit, EMFILE) net/http
// logs at each retry, 5 ms after the failure before, doubling to 1 s, and
// 5 ms again after each accept that succeeds: with clients that keep
// coming, a line every few milliseconds. The same window counts them,
// acceptErrorWindow long: the first is logged at once, and those that
// follow make one line a window, the last of them with their count.
//
// flush writes the open windows' lines, stops their timers and makes
// later lines log at once; call it when the server is done.
func serverErrorLog(h slog.Handler, certExpired func() bool) (errLog *log.Logger, flush func()) {
	w := &errorLogWriter{
		h:           h,
		certExpired: certExpired,
		accepts: &errorWindow{window: acceptErrorWindow, sum: func(_ map[string]int, count int, last string) {
			_ = logTo(h, slog.LevelWarn, last, slog.Int("count", count), slog.Duration("window", acceptErrorWindow))
		}},
		clients: &errorWindow{window: clientErrorWindow, sum: func(kinds map[string]int, count int, _ string) {
			attrs := []slog.Attr{slog.Int("count", count)}
			for _, kind := range slices.Sorted(maps.Keys(kinds)) {
				attrs = append(attrs, slog.Int(kind, kinds[kind]))
			}
			attrs = append(attrs, slog.Duration("window", clientErrorWindow))
			_ = logTo(h, slog.LevelInfo, "client connection errors", attrs...)
		}},
	}
	return log.New(w, "", 0), w.close
}

// acceptErrorWindow is how often, at most, failed accepts are logged.
const acceptErrorWindow = time.Second

// clientErrorWindow is how often, at most, the lines clients cause are
// summed up.
const clientErrorWindow = time.Minute

type errorLogWriter struct {
	h                slog.Handler
	accepts, clients *errorWindow
	// certExpired, when not nil, reports whether the served certificate
	// has expired, or is not valid yet.
	certExpired func() bool
}

func (w *errorLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	if strings.HasPrefix(msg, "http: Accept error: ") {
		if !w.accepts.add("accept", msg) {
			return len(p), nil
		}
		return len(p), logTo(w.h, slog.LevelWarn, msg)
	}
	kind := clientErrorKind(msg)
	if kind == "tls_refused" && w.certExpired != nil && w.certExpired() {
		kind = "" // every client refuses the server's expired certificate: its fault
	}
	if kind == "" {
		level := slog.LevelWarn
		if quietServerError(msg) {
			level = slog.LevelDebug
		}
		return len(p), logTo(w.h, level, msg)
	}
	level := slog.LevelDebug
	if w.clients.add(kind, msg) {
		level = slog.LevelWarn
	}
	return len(p), logTo(w.h, level, msg, slog.String("kind", kind))
}

// close flushes the open windows, and makes later lines log at once: no
// timer outlives the server.
func (w *errorLogWriter) close() {
	w.accepts.close()
	w.clients.close()
}

// servedCertExpired returns what reports whether the certificate
// tlsConfig serves has expired, or is not valid yet, or nil without TLS.
func servedCertExpired(tlsConfig *tls.Config) func() bool {
	if tlsConfig == nil {
		return nil
	}
	return func() bool {
		cert, err := tlsConfig.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil || cert == nil || cert.Leaf == nil { // certReloader's load sets Leaf
			return false
		}
		now := time.Now()
		return now.After(cert.Leaf.NotAfter) || now.Before(cert.Leaf.NotBefore)
	}
}

// logTo writes a line of net/http's error log to h, if h takes its level.
func logTo(h slog.Handler, level slog.Level, msg string, attrs ...slog.Attr) error {
	ctx := context.Background()
	if !h.Enabled(ctx, level) {
		return nil
	}
	r := slog.NewRecord(time.Now(), level, msg, 0)
	r.AddAttrs(attrs...)
	return h.Handle(ctx, r)
}

// errorWindow counts lines by kind. A kind's first line opens its window:
// it is logged at once. Those of its kind that follow until the window
// ends are counted, and sum writes one line for all the kinds the window
// counted, then the next window opens; a kind that window counted none of
// closes, so its next line is logged at once again.
type errorWindow struct {
	window time.Duration
	// sum writes a window's line: the count of each kind counted, their
	// total and the last line counted.
	sum func(kinds map[string]int, count int, last string)

	mu     sync.Mutex
	timer  *time.Timer    // the open window's; nil when none is open
	kinds  map[string]int // the kinds open, and how many lines each counted
	last   string         // the last line counted
	closed bool           // set by close: no window opens any more
	sums   sync.WaitGroup // the lines being written, for close to wait for
}

// add counts a line of kind, and reports whether it is the first of its
// window, to be logged at once.
func (w *errorWindow) add(kind, msg string) (first bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return true
	}
	if n, open := w.kinds[kind]; open {
		w.kinds[kind] = n + 1
		w.last = msg
		return false
	}
	if w.kinds == nil {
		w.kinds = make(map[string]int)
	}
	w.kinds[kind] = 0
	if w.timer == nil {
		w.timer = time.AfterFunc(w.window, w.flush)
	}
	return true
}

// flush writes the open window's line, if it counted any line, and opens
// the next window for the kinds it counted; the others close.
func (w *errorWindow) flush() {
	w.mu.Lock()
	counted, count, last := make(map[string]int), 0, w.last
	for kind, n := range w.kinds {
		if n == 0 || w.closed {
			delete(w.kinds, kind)
		} else {
			w.kinds[kind] = 0
		}
		if n > 0 {
			counted[kind] = n
			count += n
		}
	}
	w.last = ""
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
		if len(w.kinds) > 0 {
			w.timer = time.AfterFunc(w.window, w.flush)
		}
	}
	if count == 0 {
		w.mu.Unlock()
		return
	}
	w.sums.Add(1)
	w.mu.Unlock()
	defer w.sums.Done()
	w.sum(counted, count, last)
}

// close flushes the open window, and makes later lines log at once: no
// timer outlives the server. It returns once every window's line is
// written, the one its timer may be writing too.
func (w *errorWindow) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.flush()
	w.sums.Wait()
}

// clientErrorKind names the kind of a line of net/http's error log that a
// client causes (see serverErrorLog), or is "" for any other line.
func clientErrorKind(msg string) string {
	if rest, ok := strings.CutPrefix(msg, "http: TLS handshake error from "); ok {
		for _, k := range []struct{ end, kind string }{
			{": EOF", "tls_closed"}, // a TCP probe, a port scan
			{": connection reset by peer", "tls_closed"},
			{": i/o timeout", "tls_timeout"},                                       // one that held the connection and said nothing
			{": client sent an HTTP request to an HTTPS server", "tls_plain_http"}, // answered 400
		} {
			if strings.HasSuffix(rest, k.end) {
				return k.kind
			}
		}
		// The client's bytes, not the server's certificate, failed it:
		// not TLS at all (a scanner's probe, another protocol on the
		// wrong port), or nothing the server takes offered.
		for _, k := range []struct{ mistake, kind string }{
			{": tls: first record does not look like a TLS handshake", "tls_not_tls"},
			{": tls: unsupported SSLv2 handshake received", "tls_not_tls"},
			{": tls: client offered only unsupported versions", "tls_unsupported"},
			{": tls: no cipher suite supported by both client and server", "tls_unsupported"},
			{": tls: client requested unsupported application protocols", "tls_unsupported"},
		} {
			if strings.Contains(rest, k.mistake) {
				return k.kind
			}
		}
		switch {
		case strings.HasSuffix(rest, ": use of closed network connection"):
			return "" // closed by the server: a shutdown
		case strings.Contains(rest, ": remote error: tls: "):
			// The client refused the handshake with its alert: one that
			// does not trust the certificate (every client, once it has
			// expired), or any client that chooses to.
			return "tls_refused"
		case serverTLSFault(rest):
			return "" // the server's own certificate or key: whichever client comes
		}
		// Any other failure of a handshake's bytes: a client's.
		return "tls_error"
	}
	switch {
	case strings.HasPrefix(msg, "http2: received GOAWAY "):
		// Closed with an error code: its own trouble, or its way to leave.
		return "http2_goaway"
	case strings.HasPrefix(msg, "http2: server connection error from "):
		// Its frames broke the protocol (its first frame not SETTINGS,
		// a frame on the wrong stream), or, ENHANCE_YOUR_CALM, it reset
		// streams faster than their handlers ended (a rapid reset).
		if strings.HasSuffix(msg, ": ENHANCE_YOUR_CALM") {
			return "http2_enhance_your_calm"
		}
		return "http2_connection_error"
	case strings.HasPrefix(msg, "timeout waiting for SETTINGS frames from "):
		// A preface and then nothing, or a server too busy to read.
		return "http2_settings_timeout"
	case msg == "timeout waiting for PING response":
		// Sent nothing for stream.heartbeat_interval, and left a PING
		// unanswered: a client gone without a word (a laptop that
		// slept, a connection a NAT dropped).
		return "http2_ping_timeout"
	case strings.HasPrefix(msg, "http2: server: error reading preface from client "):
		// A TLS health check that closed with the server's first bytes
		// unread, a client that said nothing, or one whose first bytes
		// were not HTTP/2's preface.
		return "http2_preface"
	}
	return ""
}

// serverTLSFault reports whether a failed handshake's error is crypto/tls's
// for the server's own certificate or key, not the client's bytes: a key
// too small to sign with, or that cannot sign or decrypt, a certificate
// the cipher suite cannot use, none configured.
func serverTLSFault(err string) bool {
	for _, fault := range []string{
		": tls: no certificates configured",
		": tls: certificate ", // RSA key size too small, private key does not implement, cannot be used
		": tls: failed to sign ",
		": tls: unsupported signing key type",
		": tls: unsupported decryption key type",
		": tls: server certificate contains incorrect key type",
		": tls: internal error",
	} {
		if strings.Contains(err, fault) {
			return true
		}
	}
	return false
}

// quietServerError reports whether msg, a line of net/http's error log
// that no client caused, is one serverErrorLog puts at debug: a TLS
// handshake cut by the server's own close of the connection.
func quietServerError(msg string) bool {
	return strings.HasPrefix(msg, "http: TLS handshake error from ") &&
		strings.HasSuffix(msg, ": use of closed network connection")
}

// newLogger builds the process logger from log.level and log.format.
func newLogger(c config.LogConfig, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.SlogLevel()}
	if c.JSON() {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
