package detached

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"
)

// finishTimeout bounds the write of a response's last chunk, unless the
// group's (Group.SetFinishTimeout) or the write deadline last set
// (SetWriteDeadline) gives it longer: the deadline set for the last step
// may have passed long ago.
const finishTimeout = time.Second

// lastChunk ends a chunked body.
var lastChunk = []byte("0\r\n\r\n")

var crlf = []byte("\r\n")

// errEnded reports a write after WriteLast.
var errEnded = errors.New("detached: write after the end of the response")

// Conn is one response taken over by Take. Its methods are for the
// goroutine Serve starts (the step function), except Context, which any
// goroutine may call.
type Conn struct {
	group    *Group
	conn     net.Conn
	buffered *bufio.Reader // what net/http read past the request; watch drains it
	ctx      context.Context
	cancel   context.CancelFunc

	// out holds the bytes of the next write. Until the head has gone
	// out, it starts with the head (which the answer to a panic in the
	// first step takes its headers from); after that it is scratch,
	// reused from one write to the next, so that writing allocates
	// nothing.
	out      []byte
	headSent bool
	chunked  bool  // HTTP/1.1: each write is one chunk
	err      error // the write that failed: nothing more can be sent
	ended    bool  // WriteLast ended the body
	answered bool  // the group's answer to a panic went out (answerPanic)
	// inspected is what the group's InspectCuts said of the connection
	// of this response, cut short.
	inspected bool
	// deadline is the write deadline last set by SetWriteDeadline, in
	// Unix nanoseconds (0 for none): an int64, not a time.Time, keeps a
	// Conn in the 128-byte size class.
	deadline int64
}

// maxIdleOut is the largest scratch buffer a Conn keeps once its writes
// are small again (as for a stream's step buffer): a replay or a burst
// may grow it, an idle stream should not hold it.
const maxIdleOut = 16 << 10

// newConn starts watching conn. Its read deadline is cleared first: the
// server may have set one to bound reading the request, and it would end
// watch, and with it the response, in the middle of the stream. (Go's
// net/http clears both deadlines as it hands a connection over, the write
// deadline of http.Server.WriteTimeout too; a Hijacker of another making
// may not, and the stream sets its write deadlines itself.)
func newConn(g *Group, conn net.Conn, buffered *bufio.Reader, head []byte, chunked bool) *Conn {
	_ = conn.SetReadDeadline(time.Time{})
	c := &Conn{group: g, conn: conn, buffered: buffered, out: head, chunked: chunked}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.watch()
	return c
}

// Inspected reports what the group's InspectCuts said of the connection,
// once the response was cut short; false before, or without it. Call it
// from Serve's done.
func (c *Conn) Inspected() bool { return c.inspected }

// Context is done once the client has gone away or the connection was
// closed: the response cannot reach anyone any more.
func (c *Conn) Context() context.Context { return c.ctx }

// Write sends p at once, as one chunk of an HTTP/1.1 body (as it is for
// HTTP/1.0), in one write to the connection together with the response
// head if that has not gone out yet. An empty p sends nothing: an empty
// chunk would end the body.
func (c *Conn) Write(p []byte) (int, error) {
	return c.write(p, false)
}

// WriteLast is Write for the response's last bytes: the end of the body
// (the last chunk of HTTP/1.1) goes out in the same write, and nothing is
// written after it. It saves a system call per response.
func (c *Conn) WriteLast(p []byte) (int, error) {
	return c.write(p, true)
}

// write frames p (and the end of the body when last) after what out
// holds, and sends it all with one write: one system call on TCP, one
// record on TLS, where a vectored write of the five pieces was five
// writes. docs/BENCHMARKS.md measures it against that vectored write.
func (c *Conn) write(p []byte, last bool) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.ended {
		return 0, errEnded
	}
	if len(p) == 0 && !last {
		return 0, nil
	}
	out := c.pending()
	switch {
	case len(p) == 0:
	case c.chunked:
		out = strconv.AppendInt(out, int64(len(p)), 16)
		out = append(out, crlf...)
		out = append(out, p...)
		out = append(out, crlf...)
	default:
		out = append(out, p...)
	}
	if last && c.chunked {
		out = append(out, lastChunk...)
	}
	c.ended = last
	if err := c.send(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// pending is out with what must precede the next bytes: the head, if it
// has not gone out yet.
func (c *Conn) pending() []byte {
	if c.headSent {
		return c.out[:0]
	}
	return c.out
}

// Flush sends the response head if nothing has been written yet. Every
// Write goes out at once, so there is nothing else to flush.
func (c *Conn) Flush() error {
	if c.err != nil || c.headSent {
		return c.err
	}
	return c.send(c.out)
}

// send writes out, keeps it as the next write's scratch and records a
// failure. The buffer that carried the head (512 bytes) is let go, as is
// one that a burst grew past maxIdleOut once a write is small again: the
// scratch an idle stream keeps is about the size of its steps.
func (c *Conn) send(out []byte) error {
	var err error
	if len(out) > 0 {
		_, err = c.conn.Write(out)
	}
	switch {
	case !c.headSent, len(out) < maxIdleOut/4 && cap(out) > maxIdleOut:
		c.out = nil
	default:
		c.out = out[:0]
	}
	if err != nil {
		c.err = err
		return err
	}
	c.headSent = true
	return nil
}

// SetWriteDeadline bounds the writes from now on; see net.Conn.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.deadline = 0
	if !t.IsZero() {
		c.deadline = t.UnixNano()
	}
	return c.conn.SetWriteDeadline(t)
}

// Serve runs the response the way Gin's Context.Stream runs it on the
// handler's goroutine, but on a goroutine of its own, and returns at once:
// it calls step with the Conn until step returns false, a write fails or
// the client goes away, flushing after each step. Then it ends the
// response, closes the connection, waits for the reading goroutine to
// end, and calls done. A panic in step cuts the connection, or, before
// anything was written, answers with the group's panic answer
// (AnswerPanics); it is passed to done (nil when step did not panic),
// with the stack of where it was raised.
// Call Serve once.
//
// The first step runs there too, not on the caller's goroutine: net/http's,
// deep in a handler chain, whose stack the first write grew to 8 KiB, and
// a crowd that connects at once holds thousands of those: about 1 KB more
// per stream in docs/BENCHMARKS.md's fan-out.
func (c *Conn) Serve(step func(w io.Writer) bool, done func(panicked any, stack []byte)) {
	go func() {
		panicked, stack := c.run(step)
		c.end(panicked, stack, done)
	}()
}

// end ends the response after its last step, closes the connection and
// calls done. A response whose client went away before its end is not
// ended but cut: a client that only closed its side of the connection
// (which reads as gone) and reads on must not take it for complete.
func (c *Conn) end(panicked any, stack []byte, done func(panicked any, stack []byte)) {
	defer c.group.done(c)
	gone := c.ctx.Err() != nil && !c.ended
	switch {
	case panicked == nil && !gone:
		c.finish()
	case panicked == nil:
	case !c.headSent && c.err == nil && c.group.panicBody != nil:
		c.answerPanic()
	}
	if panicked != nil && !c.ended || c.err != nil || gone {
		if panicked == nil && c.group.inspect != nil {
			c.inspected = c.group.inspect(c.conn)
		}
		c.cut()
	}
	c.close()
	<-c.ctx.Done() // the reader ends with the connection
	done(panicked, stack)
}

// run calls step until the response is over and returns what step
// panicked with, if it did, and the stack of where it was raised.
func (c *Conn) run(step func(w io.Writer) bool) (panicked any, stack []byte) {
	defer func() {
		if panicked = recover(); panicked != nil {
			stack = debug.Stack()
		}
	}()
	gone := c.ctx.Done()
	for {
		select {
		case <-gone:
			return nil, nil
		default:
		}
		more := step(c)
		if err := c.Flush(); err != nil || !more {
			return nil, nil
		}
	}
}

// finish sends the last chunk (and the head, if nothing went out), unless
// a write failed. It has finishTimeout or the group's finish timeout,
// whichever is longer, or until the write deadline last set if that is
// later: a client that reads slowly gets the end of its response as it
// got the rest.
func (c *Conn) finish() {
	if c.err != nil || c.ended {
		return
	}
	if at := time.Now().Add(max(finishTimeout, c.group.finish)); c.deadline < at.UnixNano() {
		_ = c.conn.SetWriteDeadline(at)
	}
	out := c.pending()
	if c.chunked {
		out = append(out, lastChunk...)
	}
	_ = c.send(out)
}

// answerPanic sends the group's answer to a panic in place of the
// response, which has not started: its status, and the headers of the
// response's head, still in out, with the answer's in their place, less
// those it has no values for. They are the headers as Take found them:
// the map they came from may be changed since, by the goroutine that
// called Take.
func (c *Conn) answerPanic() {
	hdr := c.group.panicHeader
	out := appendStatusLine(make([]byte, 0, len(c.out)+len(c.group.panicBody)), c.chunked, http.StatusInternalServerError)
	out = appendFields(out, c.out, hdr)
	_ = hdr.WriteSubset(appendWriter{&out}, setHere) // writes to memory: cannot fail
	out = appendFraming(out, c.chunked, len(c.group.panicBody))
	_ = c.conn.SetWriteDeadline(time.Now().Add(finishTimeout))
	c.ended = true
	c.answered = c.send(append(out, c.group.panicBody...)) == nil
}

// AnsweredPanic reports whether the response was the group's answer to a
// panic in its first step (AnswerPanics), sent whole. For the function
// Serve calls when the response ends.
func (c *Conn) AnsweredPanic() bool {
	return c.answered
}

// cut closes the connection under TLS, if any, for a response that
// cannot end cleanly: a write failed, or step panicked. tls.Conn.Close
// would first send a close_notify alert, and wait up to 5 seconds for a
// client that reads nothing to take it, holding the response (a stream's
// slot, a server's shutdown) that long. The TLS connection's own Close
// then fails at once.
func (c *Conn) cut() {
	if tc, ok := c.conn.(interface{ NetConn() net.Conn }); ok {
		_ = tc.NetConn().Close()
	}
}

// closeNotifyTimeout bounds the close_notify alert that crypto/tls sends
// when a TLS connection closes (close): it would wait up to 5 seconds for
// a client that reads nothing to take it, though the response has ended.
const closeNotifyTimeout = finishTimeout

// close closes the connection. Over TLS, the close_notify alert that the
// TLS connection's Close sends first gets closeNotifyTimeout; then the
// connection is cut: a client that read the response to its end and then
// stopped reading, its socket buffers full, held the response (a stream's
// slot and its access line, a server's shutdown) 5 seconds more.
func (c *Conn) close() {
	if tc, ok := c.conn.(interface{ NetConn() net.Conn }); ok {
		cut := time.AfterFunc(closeNotifyTimeout, func() { _ = tc.NetConn().Close() })
		defer cut.Stop()
	}
	_ = c.conn.Close()
}

// maxDiscard is how much a client may send after its request before its
// stream ends: a request it pipelined before it read "Connection: close"
// fits, and reading more would let one client keep a core busy.
const maxDiscard = 64 << 10

// watch reads from the connection until it fails, then cancels the
// Context: the client went away, or Serve closed the connection. What the
// client sends after its request is discarded, up to maxDiscard; past
// that the stream ends as if the client had gone.
func (c *Conn) watch() {
	defer c.cancel()
	buffered := c.buffered
	c.buffered = nil // the 4 KiB buffer is garbage once drained
	discarded, err := buffered.Discard(buffered.Buffered())
	if err != nil {
		return
	}
	var b [64]byte
	for discarded <= maxDiscard {
		n, err := c.conn.Read(b[:])
		if err != nil {
			return
		}
		discarded += n
	}
}
