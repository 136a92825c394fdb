package handler

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
)

// Why detach: net/http keeps about 29 KiB per open response for as long as
// the handler runs: the serve goroutine's stack (which the first flush of
// a stream grows to 16 KiB under Gin), 4 KiB of read buffer, 6 KiB of
// write buffers and the parsed request. An event stream lives for hours
// and needs none of it. So an HTTP/1.x stream takes the connection over
// (Hijack), the handler returns, and two small goroutines remain: one
// writes the steps, already framed as chunks, straight to the socket; the
// other reads, to notice at once that the client went away. See
// docs/BENCHMARKS.md for what it saves.

// finishTimeout bounds the write of a detached stream's last chunk.
const finishTimeout = time.Second

// lastChunk ends a chunked body.
const lastChunk = "0\r\n\r\n"

// detachedKey marks a request whose stream was detached, for the access
// log middleware.
const detachedKey = "ssehub.detached"

// detach takes the connection of c over for s when it can: an HTTP/1.x
// request whose writer can be hijacked, while the handler is open. It
// reports whether it did; if not, s stays on the ResponseWriter.
func (h *Handler) detach(s *sseStream, c *gin.Context) bool {
	if c.Request.ProtoMajor != 1 || !canHijack(c.Writer) || !h.detachedStarted() {
		return false
	}
	head := responseHead(c.Request, c.Writer.Header())
	conn, rw, err := c.Writer.Hijack()
	if err != nil {
		h.detachedEnded()
		h.log.Warn("stream stays attached: hijack failed", "err", err)
		return false
	}
	c.Set(detachedKey, true)
	s.w = &connWriter{conn: conn, raw: newRawWriter(conn), buffered: rw.Reader, head: head, chunked: c.Request.ProtoAtLeast(1, 1)}
	s.detached = true
	if h.log.Enabled(context.Background(), accessLevel(http.StatusOK)) {
		s.access.remote = c.ClientIP() // only the access line needs it
	}
	s.c = nil
	return true
}

// canHijack reports whether the writer under Gin's can be hijacked: Gin's
// own Hijack panics when it cannot (an HTTP/2 or a test writer).
func canHijack(w gin.ResponseWriter) bool {
	u, ok := w.(interface{ Unwrap() http.ResponseWriter })
	if !ok {
		return false
	}
	_, ok = u.Unwrap().(http.Hijacker)
	return ok
}

// responseHead is the status line and headers of a stream's response. The
// connection is not reused after a detached stream, and the head says so
// (Connection: close), so no client sends its next request on a connection
// that is about to close. HTTP/1.1 streams are chunked, so a client can
// tell a complete stream from a cut one; HTTP/1.0 streams end when the
// connection closes. hdr is not changed.
func responseHead(r *http.Request, hdr http.Header) []byte {
	proto, framing := "HTTP/1.0", ""
	if r.ProtoAtLeast(1, 1) {
		proto, framing = "HTTP/1.1", "Transfer-Encoding: chunked\r\n"
	}
	head := append(make([]byte, 0, 512), proto+" 200 OK\r\n"...)
	_ = hdr.WriteSubset(appendWriter{&head}, headSetHere) // writes to memory: cannot fail
	head = append(head, "Connection: close\r\n"...)
	head = append(head, framing...)
	head = append(head, "Date: "...)
	head = time.Now().UTC().AppendFormat(head, http.TimeFormat)
	return append(head, "\r\n\r\n"...)
}

// headSetHere are the headers responseHead writes itself.
var headSetHere = map[string]bool{"Connection": true, "Date": true, "Transfer-Encoding": true}

// appendWriter is an io.Writer that appends to a byte slice.
type appendWriter struct{ b *[]byte }

func (w appendWriter) Write(p []byte) (int, error) {
	*w.b = append(*w.b, p...)
	return len(p), nil
}

// WriteString spares http.Header.Write a copy of every string.
func (w appendWriter) WriteString(s string) (int, error) {
	*w.b = append(*w.b, s...)
	return len(s), nil
}

// watch reads from the connection until it fails, then closes gone and
// calls onGone, when set: the client went away, or the stream closed the
// connection. Anything the client sends after its request is discarded.
func (w *connWriter) watch(gone chan<- struct{}, onGone func()) {
	defer func() {
		close(gone)
		if onGone != nil {
			onGone()
		}
	}()
	conn, buffered := w.conn, w.buffered
	w.buffered = nil // the 4 KiB buffer is garbage once drained
	if n := buffered.Buffered(); n > 0 {
		if _, err := buffered.Discard(n); err != nil {
			return
		}
	}
	var b [64]byte
	for {
		if _, err := conn.Read(b[:]); err != nil {
			return
		}
	}
}

// connWriter writes the steps of a detached stream to its connection: the
// response head with the first step, then each step as one chunk (HTTP/1.1)
// or as it is (HTTP/1.0).
type connWriter struct {
	conn     net.Conn
	raw      *rawWriter    // nil: write through conn (rawwrite_linux.go)
	buffered *bufio.Reader // what net/http read past the request; watch drains it
	head     []byte
	chunked  bool
	failed   bool // a write failed: nothing more can be sent
	ended    bool // the response is complete
}

func (w *connWriter) writeStep(buf *[]byte, last bool) error {
	start := headroom
	if n := len(*buf) - headroom; w.chunked && n > 0 { // an empty chunk would end the body
		var size [16]byte
		hex := strconv.AppendInt(size[:0], int64(n), 16)
		start -= len(hex) + 2
		copy((*buf)[start:], hex)
		copy((*buf)[start+len(hex):], "\r\n")
		*buf = append(*buf, "\r\n"...)
	}
	if last && w.chunked {
		// The last chunk goes in the same write: one syscall less.
		*buf = append(*buf, lastChunk...)
	}
	out := (*buf)[start:]
	var err error
	if w.head != nil {
		// One writev for the head and the step, without copying either.
		bufs := net.Buffers{w.head, out}
		_, err = bufs.WriteTo(w.conn)
		w.head = nil
	} else if w.raw != nil {
		err = w.raw.Write(out)
	} else {
		_, err = w.conn.Write(out)
	}
	if err != nil {
		w.failed = true
		return err
	}
	w.ended = last
	return nil
}

func (w *connWriter) setWriteDeadline(t time.Time) error {
	return w.conn.SetWriteDeadline(t)
}

// finish sends the last chunk and closes the connection, which also ends
// the goroutine in watch.
func (w *connWriter) finish() {
	if !w.failed && !w.ended {
		// The last write gets a deadline of its own: the one set for
		// the last step may have passed long ago.
		_ = w.conn.SetWriteDeadline(time.Now().Add(finishTimeout))
		end := w.head // nil once a step went out
		if w.chunked {
			end = append(end, lastChunk...)
		}
		if len(end) > 0 {
			_, _ = w.conn.Write(end)
		}
	}
	_ = w.conn.Close()
}

// detachedStarted counts a detached stream in, unless the handler is
// closed.
func (h *Handler) detachedStarted() bool {
	h.detachedMu.Lock()
	defer h.detachedMu.Unlock()
	if h.closed {
		return false
	}
	h.detachedN++
	return true
}

// detachedEnded counts a detached stream out.
func (h *Handler) detachedEnded() {
	h.detachedMu.Lock()
	defer h.detachedMu.Unlock()
	h.detachedN--
	if h.detachedN == 0 && h.closed {
		close(h.drained)
	}
}

// Wait blocks until every detached stream has ended after Close, or ctx is
// done. Call it after http.Server.Shutdown, which does not wait for
// hijacked connections.
func (h *Handler) Wait(ctx context.Context) error {
	select {
	case <-h.drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
