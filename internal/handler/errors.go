package handler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/stream"
)

// Errors a request can end in. Each maps to one status in statusOf; their
// text, with the context wrapped around them, is what clients see.
var (
	errBadRequest       = errors.New("bad request")
	errNotFound         = errors.New("not found")
	errMethodNotAllowed = errors.New("method not allowed")
	errOriginNotAllowed = errors.New("origin not allowed")
	errShuttingDown     = errors.New("shutting down")
	errTooManyStreams   = errors.New("too many streams")
	errTooManyTokens    = errors.New("too many words")

	errNoToken              = errors.New("a bearer token is required")
	errBadToken             = errors.New("the bearer token is not valid")
	errNotGranted           = errors.New("not granted by the token")
	errPublishingOff        = errors.New("publishing is off: neither auth.publish_tokens nor an auth.jwt key is configured")
	errUnsupportedMediaType = errors.New("unsupported media type")
	errRequestTimeout       = errors.New("request timeout")
	errReservedEventType    = errors.New(`events "position", "reset" and "expired" are reserved: the hub sends them to give a stream's position, when it cannot resume, and when a token expires`)
)

// retryAfterSeconds are the Retry-After values sent with 503s (a full
// hub, too many streams, shutting down, the event store busy, full or
// unreachable): one of them at random for each answer, so that the
// clients refused together do not all come back together, in waves every
// 5 s as they did when it was always 5.
var retryAfterSeconds = [...]string{"3", "4", "5", "6", "7", "8"}

// retryAfter is one of retryAfterSeconds, at random.
func retryAfter() string {
	return retryAfterSeconds[rand.IntN(len(retryAfterSeconds))]
}

// statusOf maps an error to its HTTP status: the one place that does.
func statusOf(err error) int {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge), errors.Is(err, errTooManyTokens), errors.Is(err, stream.ErrEventTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, errBadRequest),
		errors.Is(err, errReservedEventType),
		errors.Is(err, stream.ErrInvalidTopic),
		errors.Is(err, stream.ErrInvalidPattern),
		errors.Is(err, stream.ErrInvalidEventType),
		errors.Is(err, stream.ErrInvalidIdempotencyKey):
		return http.StatusBadRequest
	case errors.Is(err, stream.ErrKeyReused):
		return http.StatusUnprocessableEntity
	case errors.Is(err, errNoToken), errors.Is(err, errBadToken):
		return http.StatusUnauthorized
	case errors.Is(err, errPublishingOff), errors.Is(err, errNotGranted):
		return http.StatusForbidden
	case errors.Is(err, errUnsupportedMediaType):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, errRequestTimeout):
		return http.StatusRequestTimeout
	case errors.Is(err, errNotFound):
		return http.StatusNotFound
	case errors.Is(err, errMethodNotAllowed):
		return http.StatusMethodNotAllowed
	case errors.Is(err, errOriginNotAllowed):
		return http.StatusForbidden
	case errors.Is(err, errShuttingDown),
		errors.Is(err, errTooManyStreams),
		errors.Is(err, stream.ErrTooManySubscribers),
		errors.Is(err, stream.ErrUnavailable),
		errors.Is(err, stream.ErrBusy),
		errors.Is(err, stream.ErrStoreFull),
		errors.Is(err, stream.ErrClosed):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// abortWithError answers {"error": "..."} with the status err maps to.
// Internal errors are logged and answered with a generic message; 503s
// for capacity and for the broker's store (busy, full, unreachable) are
// counted in the metrics and into the refusal log's lines, at most one of
// each a second (capacity.go), not logged one by one.
func (h *Handler) abortWithError(c *gin.Context, err error) {
	if errors.Is(err, errBodyConnFailed) && h.cut.Load() {
		// The server closed the connection, not the client: the answer
		// reaches no one, but its access line and count are the
		// shutdown's, not a client's 400.
		err = fmt.Errorf("%w: the shutdown timeout passed while the body was read", errShuttingDown)
	}
	status := statusOf(err)
	msg := err.Error()
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		msg = fmt.Sprintf("request body too large: limit is %d bytes", tooLarge.Limit)
	case errors.Is(err, errNotGranted):
		// A valid token that does not allow this (RFC 6750 §3.1).
		c.Header("WWW-Authenticate", `Bearer realm="ssehub", error="insufficient_scope"`)
	case errors.As(err, new(invalidRequest)):
		c.Header("WWW-Authenticate", `Bearer realm="ssehub", error="invalid_request"`)
	case status == http.StatusUnauthorized:
		challenge := `Bearer realm="ssehub"`
		if errors.Is(err, errBadToken) {
			challenge += `, error="invalid_token"`
		}
		c.Header("WWW-Authenticate", challenge)
	case status == http.StatusServiceUnavailable:
		if reason := refusalReason(err); reason != "" {
			h.metrics.refused.WithLabelValues(reason).Inc()
			h.refusals.add(err)
		}
		abortUnavailable(c, err)
		return
	case status >= http.StatusInternalServerError:
		h.log.Error("request failed", "method", clip(c.Request.Method, maxLoggedMethod), "path", clip(sentPath(c.Request.URL), maxLoggedPath), "err", err)
		msg = http.StatusText(status)
	}
	abortJSON(c, status, msg)
}

// abortJSON answers status with {"error": msg}, msg as written: c.JSON
// escapes <, > and & for HTML, and the hub's wildcard ">", in the patterns
// errors name, read "\u003e" to a client reading the answer. msg may quote
// the request (its path, a topic), so the answer says nosniff: no browser
// takes it for HTML.
func abortJSON(c *gin.Context, status int, msg string) {
	c.Writer.Header()["X-Content-Type-Options"] = nosniff
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(struct {
		Error string `json:"error"`
	}{msg})
	c.Abort()
	writeJSON(c, status, bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}

// nosniff is the X-Content-Type-Options of every error's answer.
var nosniff = []string{"nosniff"}

// abortUnavailable answers 503 for err with Retry-After and a fixed text:
// a broker's error may carry internal detail. It counts no refusal:
// /readyz answers through it directly, a probe's answer, not a client
// turned away, which load balancers' probes would swell.
func abortUnavailable(c *gin.Context, err error) {
	c.Header("Retry-After", retryAfter())
	msg := "shutting down: try again in a moment"
	switch {
	case errors.Is(err, errTooManyStreams):
		msg = "too many streams: try again later"
	case errors.Is(err, stream.ErrTooManySubscribers):
		msg = "too many subscribers: try again later"
	case errors.Is(err, stream.ErrBusy):
		msg = "the event store is busy: try again in a moment"
	case errors.Is(err, stream.ErrStoreFull):
		msg = "the event store is full: nothing was stored; try again later"
	case errors.Is(err, stream.ErrMaybeStored) && errors.Is(err, stream.ErrClosed):
		msg = "shutting down: the event may have been stored; a retry with the same Idempotency-Key stores it once"
	case errors.Is(err, stream.ErrMaybeStored):
		msg = "the event store did not answer in time: the event may have been stored; a retry with the same Idempotency-Key stores it once"
	case errors.Is(err, stream.ErrUnavailable):
		msg = "the event store is unreachable: try again in a moment"
	}
	if (errors.Is(err, errTooManyStreams) || errors.Is(err, stream.ErrTooManySubscribers)) && c.Request.ProtoMajor == 1 {
		// A refused client comes back later, on a new connection:
		// kept alive meanwhile, its connection would hold one of the
		// descriptors the cap keeps free (capStreams in cmd/ssehub).
		c.Header("Connection", "close")
	}
	abortJSON(c, http.StatusServiceUnavailable, msg)
}

// invalidRequest marks a 400 for the way a token was sent (a header or
// parameter given twice): its answer carries the challenge RFC 6750 §3.1
// gives a malformed request, error="invalid_request", as a 401 carries
// one. Its text is that of the error it wraps.
type invalidRequest struct{ error }

func (e invalidRequest) Unwrap() error { return e.error }

// badRequest wraps errBadRequest with what was wrong.
func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

func (h *Handler) notFound(c *gin.Context) {
	h.abortWithError(c, fmt.Errorf("%w: %s", errNotFound, stream.Quote(sentPath(c.Request.URL))))
}

// sentPath is the path the answers (404, 405) and the log lines name: as
// the router matched it, encoded, its encoded slashes and percent signs
// kept ("/api%2Fv1/topics" is no /api/v1/topics, "/api/v1/topics/a%2Fb/events"
// no /api/v1/topics/a/b/events, and "/x%252Fy" no "/x%2Fy"). A path
// with nothing to encode is Path itself.
func sentPath(u *url.URL) string {
	return u.EscapedPath()
}

// methodNotAllowed answers a method the path does not take: 405 with the
// Allow that Gin (or staticFiles) set, OPTIONS added, as every path
// answers it. A plain OPTIONS (a preflight from an allowed origin never
// gets here: the CORS middleware answers it) asks what the path takes
// (RFC 9110 §9.3.7): 204 with that Allow.
func (h *Handler) methodNotAllowed(c *gin.Context) {
	allowOptions(c)
	if c.Request.Method == http.MethodOptions {
		c.AbortWithStatus(http.StatusNoContent)
		return
	}
	h.abortWithError(c, fmt.Errorf("%w: %s %s", errMethodNotAllowed, stream.Quote(c.Request.Method), stream.Quote(sentPath(c.Request.URL))))
}

// allowOptions adds OPTIONS to the Allow that Gin (or staticFiles) set
// for a method the path does not take, unless it is there already: every
// path answers OPTIONS, a plain one (methodNotAllowed) as a preflight.
func allowOptions(c *gin.Context) {
	if allow := c.Writer.Header().Get("Allow"); allow != "" && !strings.Contains(allow, http.MethodOptions) {
		c.Header("Allow", allow+", "+http.MethodOptions)
	}
}

// streamHeaders are the headers openStream sets, which the answer to a
// panic before the stream started does not keep, whatever the transport.
var streamHeaders = []string{"Content-Type", "Cache-Control", "X-Accel-Buffering", "Connection"}

// recovered answers a handler panic with a 500; the panic is logged, not
// sent. A response already under way (a stream) cannot change its status:
// its connection is cut instead, so the client sees it fail rather than
// end cleanly.
func (h *Handler) recovered(c *gin.Context, err any) {
	value, stack := unstack(err, debug.Stack())
	h.log.Error("handler panicked", "method", clip(c.Request.Method, maxLoggedMethod), "path", clip(sentPath(c.Request.URL), maxLoggedPath),
		"panic", value, "stack", stack)
	c.Abort()
	if c.Writer.Written() {
		panic(http.ErrAbortHandler) // net/http closes the connection without a word
	}
	hdr := c.Writer.Header()
	for _, k := range streamHeaders {
		hdr.Del(k) // a stream's, set before the panic
	}
	hdr["X-Content-Type-Options"] = nosniff
	c.Data(http.StatusInternalServerError, "application/json; charset=utf-8", internalErrorBody)
}

// checkQuery refuses a query string that does not parse: Gin's and
// net/url's Query drop what they cannot parse (a bad escape, a semicolon,
// more than net/url's limit of parameters), so a mistyped last event id
// or count would otherwise be silently ignored. On a path whose method is
// answered 405 (or a plain OPTIONS), Gin has set Allow already: the
// refusal lists OPTIONS in it too, as the 405 would. On a route that
// reads a token from the query (readsQueryToken), one that holds the
// access_token parameter is a token sent malformed: the refusal is
// invalid_request (RFC 6750 §3.1), as a token's other 400s are.
func (h *Handler) checkQuery(c *gin.Context) {
	if c.Request.URL.RawQuery == "" {
		return
	}
	if _, err := url.ParseQuery(c.Request.URL.RawQuery); err != nil {
		allowOptions(c)
		err = badRequest("malformed query string: %s", stream.Quote(err.Error()))
		if readsQueryToken(c) && namesAccessToken(c.Request.URL.RawQuery) {
			err = invalidRequest{err}
		}
		h.abortWithError(c, err)
	}
}

// readsQueryToken reports whether c's route reads a subscriber's token
// from the access_token query parameter: a subscription, the topic list.
func readsQueryToken(c *gin.Context) bool {
	m := c.Request.Method
	return (m == http.MethodGet || m == http.MethodHead) && (c.FullPath() == "/api/v1/events" || c.FullPath() == "/api/v1/topics")
}

// namesAccessToken reports whether the raw query, which may not parse,
// has a parameter named access_token, its name decoded where it decodes
// (%61ccess_token is one).
func namesAccessToken(raw string) bool {
	for _, part := range strings.FieldsFunc(raw, func(r rune) bool { return r == '&' || r == ';' }) {
		name, _, _ := strings.Cut(part, "=")
		if decoded, err := url.QueryUnescape(name); err == nil {
			name = decoded
		}
		if name == "access_token" {
			return true
		}
	}
	return false
}
