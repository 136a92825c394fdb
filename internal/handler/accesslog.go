package handler

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/stream"
)

// accessLog writes one line per request once its handler returns, and
// counts it in the metrics; for a stream that is when the stream ends, or,
// for a detached stream, when it is handed over (its "stream ended" line
// says when it ended). A handler that panicked gets a 500 in both.
func (h *Handler) accessLog(c *gin.Context) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			// On to Gin's recovery, outside this: it logs the panic
			// and answers 500, or cuts a stream already under way.
			bytes := len(internalErrorBody)
			if c.Writer.Written() {
				bytes = c.Writer.Size()
			}
			h.access(c, http.StatusInternalServerError, bytes, start)
			panic(withStack(p)) // raised again here: keep where it was raised
		}
	}()
	c.Next()
	status, bytes := c.Writer.Status(), c.Writer.Size()
	if c.Keys != nil {
		if _, ok := c.Keys[answeredPanicKey{}]; ok {
			status, bytes = http.StatusInternalServerError, len(internalErrorBody)
		}
	}
	h.access(c, status, bytes, start)
}

// answeredPanicKey, set in a request's Keys, says that its handler
// panicked and returned all the same, its detached stream answering the
// panic (streamStart.end): Gin's writer, whose connection was taken over,
// still says 200 and nothing written.
type answeredPanicKey struct{}

// access counts the request in the metrics and writes its access line.
// bytes is the size of the body written: none is sent for HEAD, whatever
// the handler wrote (net/http drops it), and Gin says -1 when nothing was.
func (h *Handler) access(c *gin.Context, status, bytes int, start time.Time) {
	h.metrics.countRequest(c.FullPath(), c.Request.Method, status)
	if bytes < 0 || c.Request.Method == http.MethodHead {
		bytes = 0
	}
	if !h.log.Enabled(context.Background(), accessLevel(status)) {
		return // spare ClientIP and the rest when the line is not written
	}
	h.logAccess(accessInfo{method: c.Request.Method, path: sentPath(c.Request.URL), remote: c.ClientIP()},
		status, bytes, time.Since(start))
}

// accessLevel is the level of the access line of a status: error for a
// server error, info otherwise. A 503 is a refusal the server chose (full,
// or shutting down), not a failure: at info, so a storm of them does not
// flood the error log; refusals for capacity are summed up in one warn
// line a second (capacity.go).
func accessLevel(status int) slog.Level {
	if status >= 500 && status != http.StatusServiceUnavailable {
		return slog.LevelError
	}
	return slog.LevelInfo
}

// accessInfo is what the access line says of a request.
type accessInfo struct {
	method, path, remote string
}

// logAccess writes one access line.
func (h *Handler) logAccess(a accessInfo, status, bytes int, d time.Duration) {
	h.log.LogAttrs(context.Background(), accessLevel(status), "request",
		slog.String("method", clip(a.method, maxLoggedMethod)),
		slog.String("path", clip(a.path, maxLoggedPath)),
		slog.Int("status", status),
		slog.Int("bytes", bytes),
		slog.Duration("duration", d),
		slog.String("remote", a.remote),
	)
}

// What a log line keeps of a request's method and path: a client chooses
// their length, up to net/http's header limit, and a line a megabyte long
// is no use to anyone reading the log.
const (
	maxLoggedMethod = 32
	maxLoggedPath   = 1024
)

// clip returns s cut to at most n bytes, at the start of a UTF-8
// sequence, with what was cut said; s itself when it is that short.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return stream.Prefix(s, n) + "…(" + strconv.Itoa(len(s)) + " bytes)"
}
