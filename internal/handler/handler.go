// Package handler is ssehub's HTTP layer: the Gin router with CORS from
// config, the demo streams, health, metrics, and the mapping of errors to
// statuses. It never reads configuration files itself: cmd/ssehub copies the
// values it needs into Options.
package handler

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/ssehub/ssehub/internal/detached"
	"github.com/ssehub/ssehub/internal/gcpace"
	"github.com/ssehub/ssehub/internal/stream"
)

// Options configures a Handler. A zero field means its default.
type Options struct {
	Logger *slog.Logger
	CORS   CORSOptions
	Stream StreamOptions
	Demo   DemoOptions
	Hub    HubOptions
	// Static is the demo page's file tree, served at "/" when Demo.Enabled.
	Static fs.FS
	// Registry receives the handler's metrics; nil means a new registry
	// with the Go and process collectors.
	Registry *prometheus.Registry
	// TrustedProxies are the addresses and CIDRs of proxies whose
	// forwarding headers (X-Forwarded-For, X-Real-IP) name the client.
	// None: those headers are ignored, the client is the peer.
	TrustedProxies []string
	// Middleware runs for every request, after recovery, the access log
	// and CORS (which answers a preflight itself), before the check of
	// the query string and the route's handler: timing, tracing, metrics
	// of one's own, which see a request refused for its query too. It sees a stream end when its handler returns, which is
	// when the stream ends, except for a detached stream (see
	// StreamOptions.Detached; a middleware that puts a writer of its
	// own in c.Writer keeps every stream inside c.Stream). A stream writes, and flushes after each
	// step, through the writer a middleware puts in c.Writer, which need
	// not unwrap: the stream's write deadlines are set, and its flush
	// errors read, on net/http's writer under Gin's. The time a
	// middleware takes after the handler's answer is written is not a
	// write: stream.write_timeout does not count it (liftWriteBound).
	Middleware []gin.HandlerFunc
}

// CORSOptions configures cross-origin access.
type CORSOptions struct {
	// AllowOrigin reports whether a cross-origin page may read responses.
	// Nil means same-origin only.
	AllowOrigin      func(origin string) bool
	AllowCredentials bool
	AllowedHeaders   []string
	ExposedHeaders   []string
	MaxAge           time.Duration
}

// StreamOptions configures every event stream.
type StreamOptions struct {
	// HeartbeatInterval is how long a stream may stay silent before a
	// comment line is sent; default 15s.
	HeartbeatInterval time.Duration
	// Retry is sent as the retry field at stream start, and, up to as
	// much longer at random (5s at most), at the end of a stream that
	// Close ends; default 3s.
	Retry time.Duration
	// WriteTimeout bounds each write; a client that does not read for
	// longer is dropped. Default 10s.
	WriteTimeout time.Duration
	// Detached takes HTTP/1.x streams over from net/http once their
	// headers are set (package detached): less memory per open stream,
	// no keep-alive after it, and middleware sees its handler return when
	// the stream starts. A stream under a middleware that wraps the
	// writer (Options.Middleware) is not taken over, and the first such
	// is logged as a warning. False: every stream runs inside Gin's
	// c.Stream.
	Detached bool
	// MaxStreams caps the streams open at once, of every kind; beyond,
	// 503 with Retry-After. Default 20000.
	MaxStreams int
	// StoppedReading, when set, reports whether the system ended conn,
	// still open, because its client stopped reading: its receive window
	// stayed closed past WriteTimeout (Linux's TCP_USER_TIMEOUT), before
	// a write could block that long. A stream that ended so is dropped
	// as one whose write timed out is: a hub subscriber counts as too
	// slow. Each connection must be in its context (ConnContext).
	StoppedReading func(conn net.Conn) bool
}

// DemoOptions configures the demo page and the demo streams.
type DemoOptions struct {
	// Enabled serves the page and the demo streams, and opens the hub's
	// topics under DemoTopics to anyone, without a token.
	Enabled        bool
	TickerCount    int
	TickerInterval time.Duration
	// MaxDuration is the longest a demo stream may last; default 10m.
	MaxDuration time.Duration
	// MaxTokens caps the words of one POST /stream; default 2000.
	MaxTokens int
}

// Handler serves ssehub's HTTP API. It is safe for concurrent use.
type Handler struct {
	engine  *gin.Engine
	log     *slog.Logger
	stream  StreamOptions
	demo    DemoOptions
	hub     HubOptions
	metrics *metrics
	// publishTokens and subscribeTokens are hub's static tokens, as
	// digests (auth.go).
	publishTokens, subscribeTokens tokenSet
	ticker                         *tickerFrames
	// heartbeatGrain is the grid step of heartbeat timers (grid.go).
	heartbeatGrain time.Duration

	// wrapped: Options.Middleware has some, whose writers may hide the
	// write bound of plain answers from a stream (boundWrites).
	wrapped bool
	// warnedWrapped: a stream under a middleware's writer stayed with
	// Gin though stream.transport is detached, and was logged
	// (wrappedWriter).
	warnedWrapped atomic.Bool
	// warnedOuter: a stream stayed with Gin over HTTP/1.x though
	// stream.transport is detached, for a writer around the handler
	// (one that cannot be hijacked, or said Content-Encoding), and was
	// logged (openStream).
	warnedOuter atomic.Bool

	// slots counts the open streams against Stream.MaxStreams.
	slots *streamSlots
	// refusals logs refusals for capacity, a line a second at most.
	refusals refusalLog
	// stepBufs and takenBufs lend streams what one step needs
	// (stepbuf.go).
	stepBufs  lender[byte]
	takenBufs lender[*stream.Message]

	closeOnce sync.Once
	done      chan struct{} // closed by Close: every open stream ends
	// closedCtx ends with Close too, as a context: what a broker waits
	// for before a subscription is tracked ends with it
	// (subscribeBroker). endCtx ends it.
	closedCtx context.Context
	endCtx    context.CancelFunc
	// cut is set once the server closes the connections of the streams
	// still open (Cutting, CloseDetached).
	cut atomic.Bool

	// detached takes HTTP/1.x streams over from net/http, with
	// stream.transport: detached; nil otherwise.
	detached *detached.Group

	// The open subscriptions, which Close ends, each with the context
	// the broker's waits for it end with (nil when the broker does not
	// wait).
	mu       sync.Mutex
	closed   bool
	subs     map[stream.Subscription]*waitContext
	subsPeak int // the most entries subs held since it was made

	// streamEnded, when set (by tests), is called with the path of each
	// stream as it ends.
	streamEnded func(path string)
}

// internalErrorBody is the answer to a panic: Gin's recovery's
// (recovered), and the detached transport's to a stream's.
var internalErrorBody = []byte(`{"error":"Internal Server Error"}`)

// New builds the router.
func New(opts Options) *Handler {
	opts.setDefaults()
	gin.SetMode(gin.ReleaseMode)
	h := &Handler{
		engine:          gin.New(),
		log:             opts.Logger,
		stream:          opts.Stream,
		demo:            opts.Demo,
		hub:             opts.Hub,
		publishTokens:   newTokenSet(opts.Hub.PublishTokens),
		subscribeTokens: newTokenSet(opts.Hub.SubscribeTokens),
		metrics:         newMetrics(opts.Registry, opts.Hub.Broker),
		ticker:          newTickerFrames(maxTickerCount),
		heartbeatGrain:  grainOf(opts.Stream.HeartbeatInterval),
		wrapped:         len(opts.Middleware) > 0,
		done:            make(chan struct{}),
		subs:            make(map[stream.Subscription]*waitContext),
		refusals:        refusalLog{log: opts.Logger},
		stepBufs:        lender[byte]{size: stepBufSize, max: maxLentBuf},
		takenBufs:       lender[*stream.Message]{size: takenSize, max: maxLentTaken},
	}
	h.closedCtx, h.endCtx = context.WithCancel(context.Background())
	h.slots = newStreamSlots(int64(opts.Stream.MaxStreams), h.releaseMemory)
	if opts.Stream.Detached {
		h.detached = detached.NewGroup()
		// What Gin's recovery answers (recovered): the stream's headers
		// left out, JSON's Content-Type and nosniff in their place.
		answer := http.Header{}
		for _, k := range streamHeaders {
			answer[k] = nil
		}
		answer.Set("Content-Type", "application/json; charset=utf-8")
		answer["X-Content-Type-Options"] = nosniff
		h.detached.AnswerPanics(answer, internalErrorBody)
		// The end of a response (its last chunk) is a write of the
		// stream too, with as long as Gin gives it (sseStream.run).
		h.detached.SetFinishTimeout(opts.Stream.WriteTimeout)
		if opts.Stream.StoppedReading != nil {
			h.detached.InspectCuts(opts.Stream.StoppedReading)
		}
	}
	r := h.engine
	r.HandleMethodNotAllowed = true
	// Every route is one exact path: /healthz/ is a 404 in JSON like any
	// unknown path, not a redirect with an HTML body (which behind a proxy
	// that rewrites paths may also point somewhere else).
	r.RedirectTrailingSlash = false
	// Routes match the path with its encoded slashes kept (routedPath),
	// each parameter decoded on its own: a topic written "a%2Fb" is the
	// topic "a/b", refused as no topic may have a slash, not the path
	// /api/v1/topics/a/b/events, which no route has (a 404 naming a path
	// the client never sent).
	r.UseRawPath = true
	h.trustProxies(opts.TrustedProxies)
	var demoFiles fs.FS
	if opts.Demo.Enabled {
		demoFiles = opts.Static
	}
	r.Use(gin.CustomRecoveryWithWriter(io.Discard, h.recovered), h.accessLog, h.boundWrites, h.newCORS(opts.CORS, demoFiles))
	r.Use(opts.Middleware...)
	if h.wrapped {
		r.Use(h.liftWriteBound)
	}
	r.Use(h.checkQuery)
	r.NoRoute(h.notFound)
	r.NoMethod(h.methodNotAllowed)

	r.GET("/healthz", h.healthz)
	r.GET("/readyz", h.readyz)
	// HEAD wherever GET answers with a document (RFC 9110: some load
	// balancers' checks, curl -I); not on a stream's routes, whose head
	// would promise a stream.
	r.HEAD("/healthz", h.healthz)
	r.HEAD("/readyz", h.readyz)
	r.GET("/metrics", gin.WrapH(h.metrics.handler))
	r.HEAD("/metrics", gin.WrapH(h.metrics.handler))
	if opts.Hub.Broker != nil {
		h.hubRoutes(r)
	}
	if opts.Demo.Enabled {
		r.GET("/stream", h.discardBody, h.tickerStream)
		r.POST("/stream", h.tokenStream)
		r.NoRoute(h.staticFiles(opts.Static), h.notFound)
	}
	return h
}

// trustProxies sets whose forwarding headers Gin's ClientIP, and so the
// access line, believes. Gin trusts every peer until told otherwise; nil
// and an empty list both mean none. An entry Gin cannot parse (config
// validation lets none through) leaves no proxy trusted: a typo must not
// let clients name their own address.
func (h *Handler) trustProxies(proxies []string) {
	if err := h.engine.SetTrustedProxies(proxies); err != nil {
		h.log.Error("trusted proxies ignored: forwarding headers are not believed", "err", err)
		_ = h.engine.SetTrustedProxies(nil)
	}
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Stream.HeartbeatInterval <= 0 {
		o.Stream.HeartbeatInterval = 15 * time.Second
	}
	if o.Stream.Retry < 0 {
		o.Stream.Retry = 0
	}
	if o.Stream.WriteTimeout <= 0 {
		o.Stream.WriteTimeout = 10 * time.Second
	}
	if o.Stream.MaxStreams <= 0 {
		o.Stream.MaxStreams = 20000
	}
	o.Hub.setDefaults()
	if o.Demo.TickerCount <= 0 {
		o.Demo.TickerCount = 10
	}
	if o.Demo.TickerInterval < 0 {
		o.Demo.TickerInterval = time.Second
	}
	if o.Demo.MaxDuration <= 0 {
		o.Demo.MaxDuration = 10 * time.Minute
	}
	if o.Demo.MaxTokens <= 0 {
		o.Demo.MaxTokens = 2000
	}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.RawPath != "" {
		r = routedPath(r)
	}
	h.engine.ServeHTTP(w, r)
}

// routedPath returns r with the raw path the router matches (Gin's
// UseRawPath): each segment of the path as sent decoded, then encoded
// again only where it must be, so that an encoded slash stays within its
// segment while "%68ealthz" is still /healthz and "orders%2Eeu" is
// orders.eu. r itself is left as it is (a shallow copy, as
// http.StripPrefix makes).
func routedPath(r *http.Request) *http.Request {
	segs := strings.Split(r.URL.RawPath, "/")
	for i, seg := range segs {
		if dec, err := url.PathUnescape(seg); err == nil {
			segs[i] = url.PathEscape(dec)
		}
	}
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.RawPath = strings.Join(segs, "/")
	r2.URL = &u
	return r2
}

// Close ends every open stream at once and makes /readyz fail. Register
// it with http.Server.RegisterOnShutdown: streams never go idle, so
// Shutdown alone would wait out its timeout. Safe to call more than once.
func (h *Handler) Close() {
	h.closeOnce.Do(func() {
		if h.detached != nil {
			h.detached.Close()
		}
		h.mu.Lock()
		h.closed = true
		subs := h.subs
		h.subs = nil
		h.mu.Unlock()
		close(h.done)
		h.endCtx()
		h.slots.drain.Stop()
		h.slots.close()
		for sub, wait := range subs {
			sub.Close()
			wait.interrupt()
		}
		h.refusals.close()
	})
}

// Wait blocks, after Close, until every stream has ended, its end counted
// and logged ("stream ended"), or ctx is done. Call it after
// http.Server.Shutdown, which waits for the other requests but not for
// connections taken over from it (detached streams), nor, once
// http.Server.Close has closed the connections still open, for the
// streams that still held them.
func (h *Handler) Wait(ctx context.Context) error {
	if h.detached != nil {
		if err := h.detached.Wait(ctx); err != nil {
			return err
		}
	}
	return h.slots.wait(ctx)
}

// Cutting says that the server is about to close the connections of the
// streams still open, as http.Server.Close does once
// server.shutdown_timeout has passed: the streams whose writes then fail,
// or whose requests end, end as shutting down, not as failed writes or
// gone clients. Call it before http.Server.Close.
func (h *Handler) Cutting() {
	h.cut.Store(true)
}

// CloseDetached closes the connection of every detached stream still
// going and returns how many there were: for after Wait gave up, when a
// stream may be blocked writing to a client that stopped reading. Those
// streams then end at once, as shutting down (Cutting).
func (h *Handler) CloseDetached() int {
	if h.detached == nil {
		return 0
	}
	h.Cutting()
	return h.detached.CloseConns()
}

// releaseMemory returns the memory of a crowd of streams that left to the
// operating system (streamSlots.drain), and says so.
func (h *Handler) releaseMemory() {
	start := time.Now()
	gcpace.ReleaseMemory()
	h.log.Info("a crowd of streams left: returned the freed memory to the system",
		"open_streams", h.slots.open.Load(), "took", time.Since(start).Round(time.Millisecond))
}

func (h *Handler) closing() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}
