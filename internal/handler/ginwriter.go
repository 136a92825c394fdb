package handler

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// ginWriter is Gin's ResponseWriter while a stream runs inside c.Stream,
// which flushes it after every step. Gin's own Flush drops the flush's
// error; ginWriter keeps the first one, so the stream can tell a write
// that timed out from a client that went away. Everything else is Gin's.
type ginWriter struct {
	gin.ResponseWriter
	// rc is over net/http's writer, under Gin's own: only that one
	// reports flush errors (Gin's Flush drops them), and it takes the
	// deadlines. It is found from Gin's writer, not from the stream's,
	// which may be a middleware's that does not unwrap
	// (Options.Middleware), or unwraps past its own Flush.
	rc  *http.ResponseController
	err error
	// wrapped: the stream writes through a middleware's writer, over
	// Gin's: each flush goes through it first, then asks rc.
	wrapped bool

	// perStep: on HTTP/2 a write deadline ends the whole stream when it
	// passes, whether a write is under way or not, so an idle stream would
	// be reset. There the deadline is set when a step starts writing and
	// lifted after its flush.
	perStep  bool
	deadline time.Time
	armed    bool // the deadline is set for this step

	held bool // the last step is written: net/http flushes it at the end
	// unflushed is what was written since the last flush: not sent, for
	// Size, once a flush failed.
	unflushed int
}

// newGinWriter makes the writer of a stream that writes to w, whose
// deadlines and flush errors are those of the writer under own: Gin's own
// writer, under w when middleware wrapped it (unboundWrites); w when own
// is nil.
func newGinWriter(w, own gin.ResponseWriter, r *http.Request) *ginWriter {
	if own == nil {
		own = w
	}
	var under http.ResponseWriter = own
	if u, ok := own.(interface{ Unwrap() http.ResponseWriter }); ok {
		under = u.Unwrap()
	}
	return &ginWriter{ResponseWriter: w, rc: http.NewResponseController(under), wrapped: own != w, perStep: r.ProtoMajor >= 2}
}

// Write adds p to the response, under the write deadline.
func (w *ginWriter) Write(p []byte) (int, error) {
	if w.perStep && !w.armed && !w.deadline.IsZero() {
		w.armed = true
		_ = w.rc.SetWriteDeadline(w.deadline)
	}
	n, err := w.ResponseWriter.Write(p)
	w.unflushed += n
	return n, err
}

// Size is Gin's count of the body's bytes, less those a failed flush did
// not send: the access line says what the client was sent.
func (w *ginWriter) Size() int {
	if w.err != nil {
		return w.ResponseWriter.Size() - w.unflushed
	}
	return w.ResponseWriter.Size()
}

// WriteLast is Write for the stream's last step. On HTTP/1.x the step is
// not flushed: net/http sends it together with the end of the body when
// the handler returns, one system call instead of two.
func (w *ginWriter) WriteLast(p []byte) (int, error) {
	w.held = !w.perStep
	return w.Write(p)
}

// Flush sends what the step wrote.
func (w *ginWriter) Flush() {
	if w.held {
		return
	}
	w.WriteHeaderNow() // Gin records that the head went out
	if w.wrapped {
		// The middleware's Flush sends what its writer holds (a
		// compressor's), down to Gin's, which drops the error: net/http's
		// writer, with nothing left to send, still has it to give.
		w.ResponseWriter.Flush()
	}
	err := w.rc.Flush()
	if w.armed {
		w.armed = false
		_ = w.rc.SetWriteDeadline(time.Time{})
	}
	switch {
	case errors.Is(err, http.ErrNotSupported) && !w.wrapped: // a writer of tests: Gin's flush will do
		w.ResponseWriter.Flush()
	case err != nil && w.err == nil:
		w.err = err
		return // what the step wrote stays unflushed
	}
	if w.err == nil {
		w.unflushed = 0
	}
}

// CloseNotify returns nil, a channel that never fires, to Gin's c.Stream:
// net/http would allocate a channel per stream for it, and the stream
// watches its request's context instead (sseStream.run and every step).
func (w *ginWriter) CloseNotify() <-chan bool {
	return nil
}

// cut makes net/http close the connection of an HTTP/1.x response under
// way without the end of its body, which it would write once the handler
// returns: with the write deadline in the past, that write fails, and a
// connection whose write failed is closed, not kept alive. What the steps
// wrote and net/http still buffers is dropped with it. (Hijacking the
// connection to close it would cost a 4 KiB buffer per stream that ends
// so, as a crowd leaves.) On HTTP/2 there is no connection of the
// response's own to close: nothing happens.
func (w *ginWriter) cut() {
	if !w.perStep {
		_ = w.rc.SetWriteDeadline(time.Unix(1, 0))
	}
}

// boundAnswer bounds by timeout from now what is still written of the
// response: the answer Gin's recovery writes instead of a stream that
// panicked before its first step, and net/http's end of it. Over HTTP/2
// the deadline is set at once, not at the next step's write: no step
// follows.
func (w *ginWriter) boundAnswer(timeout time.Duration) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(timeout))
}

// liftReadDeadline clears the connection's read deadline, set by
// server.read_timeout to bound reading the request: a stream is not cut by
// it. (net/http clears it too when it starts reading in the background,
// once the body is read; a stream does not depend on that.) A writer
// without deadlines, as in tests, has nothing to clear.
func (w *ginWriter) liftReadDeadline() {
	_ = w.rc.SetReadDeadline(time.Time{})
}

// SetWriteDeadline bounds the writes from now on, through
// http.ResponseController.
func (w *ginWriter) SetWriteDeadline(t time.Time) error {
	if w.perStep {
		w.deadline = t
		return nil
	}
	return w.rc.SetWriteDeadline(t)
}
