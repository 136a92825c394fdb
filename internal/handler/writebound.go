package handler

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// boundWrites bounds the writes of every answer that is not a stream (a
// document, a demo file, the metrics, an error) by stream.write_timeout,
// as a stream's are: a write blocked longer fails, and the client is
// dropped. net/http bounds none (the server has no WriteTimeout, which
// would cut every stream): over HTTP/2 a client that reads its connection
// but gives one stream no flow-control window held that answer's handler,
// its goroutine and its body until it left, and a client may open hundreds
// of such streams on each connection. A stream takes its writes over from
// here (openStream, unboundWrites), and bounds them itself.
//
// A middleware of Options.Middleware may wrap the writer in one that does
// not unwrap (many do not), which hides this one from the stream: then it
// is also kept in the request's Keys, where the stream finds it. Without
// such middleware the stream finds it as the request's writer, and no map
// is made for the request.
func (h *Handler) boundWrites(c *gin.Context) {
	w := &boundedWriter{ResponseWriter: c.Writer, timeout: h.stream.WriteTimeout}
	c.Writer = w
	if h.wrapped {
		c.Set(boundedWriterKey{}, w)
	}
	c.Next()
	if !w.off {
		// net/http writes what the handler left buffered, and the end of
		// the body, once the handler returns: a write too.
		w.renew()
	}
}

// boundedWriterKey is the key of a request's boundedWriter in its Keys,
// when middleware may have wrapped it (boundWrites).
type boundedWriterKey struct{}

// boundedWriter sets the write deadline before each write: a full
// stream.write_timeout from now once less than half of it is left, so a
// long answer to a client that reads it goes on, and one that does not
// fails within ½ to 1× the timeout. It is set only once the answer starts
// writing: over HTTP/2 a deadline that passes resets the request's stream
// whether a write is under way or not, and a publish waiting for its
// store must not be reset for it.
type boundedWriter struct {
	gin.ResponseWriter
	rc       *http.ResponseController // made at the first write
	timeout  time.Duration
	deadline time.Time
	// off: the answer is a stream, which bounds its writes itself.
	off bool
	// perCall: over HTTP/2, once the route's handler has returned
	// (liftWriteBound), each write or flush of middleware is bounded by
	// its own deadline, lifted when it returns: a deadline left set
	// would reset the answer once it passed while the middleware
	// idles between its writes, or after the last one.
	perCall bool
}

func (w *boundedWriter) renew() {
	now := time.Now()
	if w.deadline.Sub(now) >= w.timeout/2 {
		return
	}
	if w.rc == nil {
		var under http.ResponseWriter = w.ResponseWriter
		if u, ok := under.(interface{ Unwrap() http.ResponseWriter }); ok {
			under = u.Unwrap()
		}
		w.rc = http.NewResponseController(under)
	}
	w.deadline = now.Add(w.timeout)
	// An error only means the writer takes no deadline (a test's).
	_ = w.rc.SetWriteDeadline(w.deadline)
}

// boundedChunk is the most one write under one deadline carries: a larger
// write is made in pieces of it, the deadline renewed before each. The
// deadline bounds a write call, not its bytes, and an answer written in
// one piece (Gin's JSON, a list of every topic of several megabytes) to a
// client that reads it slowly but steadily was cut once the timeout
// passed. As the demo files are copied (io.Copy, 32 KiB at a time), a
// client must read this much each half timeout.
const boundedChunk = 32 << 10

func (w *boundedWriter) Write(p []byte) (int, error) {
	if w.off {
		return w.ResponseWriter.Write(p)
	}
	n := 0
	for {
		w.renew()
		chunk := p[n:min(len(p), n+boundedChunk)]
		m, err := w.ResponseWriter.Write(chunk)
		n += m
		if err != nil || n == len(p) {
			w.callDone()
			return n, err
		}
	}
}

func (w *boundedWriter) WriteString(s string) (int, error) {
	if w.off {
		return w.ResponseWriter.WriteString(s)
	}
	n := 0
	for {
		w.renew()
		m, err := w.ResponseWriter.WriteString(s[n:min(len(s), n+boundedChunk)])
		n += m
		if err != nil || n == len(s) {
			w.callDone()
			return n, err
		}
	}
}

// Flush sends what was written, under the bound once the answer has
// started writing: a middleware's flush may come long after the last
// write, its deadline passed, and would fail at once. Once the handler
// has returned over HTTP/2 (perCall) every flush is bounded: it may send
// the head.
func (w *boundedWriter) Flush() {
	if !w.off && (w.rc != nil || w.perCall) {
		w.renew()
		defer w.callDone()
	}
	w.ResponseWriter.Flush()
}

// callDone lifts, in perCall mode, the deadline a write or flush set: the
// middleware may idle after it for as long as it likes.
func (w *boundedWriter) callDone() {
	if w.perCall && !w.deadline.IsZero() {
		w.deadline = time.Time{}
		_ = w.rc.SetWriteDeadline(time.Time{})
	}
}

// liftWriteBound lifts, over HTTP/2, the write deadline of an answer that
// is not a stream once the route's handler has returned to the
// middleware of Options.Middleware (registered after it): there a
// deadline that passes resets the answer, written or not, and a
// middleware may take longer than stream.write_timeout after the handler
// (a span exported on the request's goroutine). What is still written is
// bounded again: a middleware's write or flush, and net/http's end of the
// answer (boundWrites). A middleware's write or flush is bounded on its
// own (perCall): its deadline is lifted when it returns, so that the
// middleware may idle after it, or write its own answer slowly, without
// the answer being reset. Over HTTP/1.x a deadline that passes while
// nothing is written does nothing. Without such middleware nothing runs
// between the handler and boundWrites, and this is not registered.
func (h *Handler) liftWriteBound(c *gin.Context) {
	c.Next()
	if c.Request.ProtoMajor < 2 {
		return
	}
	v, _ := c.Get(boundedWriterKey{})
	if w, ok := v.(*boundedWriter); ok && !w.off {
		w.perCall = true
		w.callDone()
	}
}

// Unwrap is the writer under it, for http.ResponseController and what
// else looks for the writers under a wrapper (maxBytesReader, Hijack,
// unboundWrites): Gin's interface has no Unwrap of its own to promote.
func (w *boundedWriter) Unwrap() http.ResponseWriter {
	return w.ResponseWriter
}

// unboundWrites gives a stream's writes back to Gin's writer: the stream
// sets its own deadlines (sseStream, ginWriter), which boundedWriter must
// not move. It returns the bound, turned off, whose ResponseWriter is
// Gin's writer, under the writers of middleware (Options.Middleware): the
// one whose deadlines are the stream's, whether those unwrap or not; nil
// when there is none (a test's writer). The request's writer stays the
// middleware's, if any: the stream writes through it. A stream that ends
// turns the bound on again (sseStream.run) for what middleware writes
// after it.
func unboundWrites(c *gin.Context) *boundedWriter {
	w, ok := c.Writer.(*boundedWriter)
	if ok {
		c.Writer = w.ResponseWriter
	} else if v, found := c.Get(boundedWriterKey{}); found {
		w = v.(*boundedWriter)
	} else {
		return nil
	}
	w.off = true
	return w
}
