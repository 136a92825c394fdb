package handler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/detached"
	"github.com/ssehub/ssehub/internal/stream"
)

// heartbeat is the comment frame sent while a stream is idle. Clients
// ignore it; proxies and load balancers see traffic and keep the
// connection.
var heartbeat = []byte(": heartbeat\n\n")

// Why a stream ended, for the log line and the metrics.
var (
	errClientGone = errors.New("client gone")
	errCompleted  = errors.New("completed")
	errPanicked   = errors.New("panicked")
	errExpired    = errors.New("token expired")
	// errStoppedReading ends a stream whose connection the system ended
	// because its client stopped reading (StreamOptions.StoppedReading).
	errStoppedReading = errors.New("the client read nothing for stream.write_timeout: the system ended its connection")
	errDropped        = errors.New("dropped") // by the broker: sub.Err says why
	// errCut ends a stream whose connection the server closed (Cutting).
	errCut = fmt.Errorf("%w: the connection was closed when server.shutdown_timeout passed", errShuttingDown)
)

// endReason names why a stream ended (its end) for the metrics: a few
// fixed words, whatever the error says.
func endReason(end error) string {
	switch {
	case end == nil, errors.Is(end, errCompleted):
		return "completed"
	case errors.Is(end, errStoppedReading): // as if a write had timed out
		return "write_failed"
	case errors.Is(end, errClientGone):
		return "client_gone"
	case errors.Is(end, errShuttingDown):
		return "shutting_down"
	case errors.Is(end, errDropped):
		return "dropped"
	case errors.Is(end, errExpired):
		return "token_expired"
	case errors.Is(end, errPanicked):
		return "panicked"
	default: // the transport's write or flush failed, or timed out
		return "write_failed"
	}
}

// deadliner bounds a stream's writes: ginWriter, or a detached.Conn.
type deadliner interface {
	SetWriteDeadline(t time.Time) error
}

// lastWriter is a step writer that can end the response with the last
// step's bytes in the same system call: ginWriter and detached.Conn.
type lastWriter interface {
	WriteLast(p []byte) (int, error)
}

// sseStream writes one event-stream response. A stream is a step function
// that the transport calls until it returns false, flushing after each
// step: Gin's c.Stream on the request's goroutine (the default), or a
// detached.Conn on a goroutine of its own once the handler has returned
// (stream.transport: detached, HTTP/1.x only). A step waits for what comes
// next, queues the frames due in buf and writes them with one write to
// the writer the transport hands in. One goroutine owns the stream.
type sseStream struct {
	h *Handler
	// c is the request; nil once the stream is detached, because Gin
	// reuses it when the handler returns.
	c *gin.Context
	// Exactly one of these is set: the transport.
	gw   *ginWriter
	conn *detached.Conn
	// bound is the bound of plain answers, off while the stream runs
	// with Gin (unboundWrites); nil when there is none.
	bound *boundedWriter
	// deadline sets the write deadline of the transport.
	deadline deadliner
	// ctx is done once the client has gone away; gone is ctx.Done().
	ctx  context.Context
	gone <-chan struct{}
	// buf holds the frames of one step, in lent, a buffer borrowed from
	// h.stepBufs for the step; both are nil between steps.
	buf    []byte
	lent   *[]byte
	access accessInfo

	started time.Time
	// lastWrite is when bytes last went out: the heartbeat is due
	// HeartbeatInterval after it.
	lastWrite time.Time
	// deadlineAt is the write deadline last set; it is moved only when
	// less than half of the write timeout is left, not on every write
	// (each move updates a runtime timer).
	deadlineAt time.Time
	// expires is when the token that allowed the stream stops being
	// accepted, the zero time for never; expiredFrame is the stream's
	// last event then.
	expires      time.Time
	expiredFrame []byte
	running      bool // run was called: its close gives the slot back
	opened       bool // the first step went out
	last         bool // the next send is the stream's last
	events       int  // sent so far
	counted      int  // events added to the shared counter so far
	queued       int  // events in buf
	bytes        int  // payload sent
	// The events and bytes of the last step written, not counted as sent
	// until its flush is known not to have failed (settle): with Gin, a
	// write goes to a buffer, and the flush after the step fails instead.
	unsettledEvents, unsettledBytes int
	// resetQueued: buf holds the stream's reset (reset), counted once
	// written.
	resetQueued bool
	end         error
}

// streamStart holds a stream's slot from the moment it is taken until its
// stream runs (sseStream.run), whose end gives it back: a handler takes
// it with startStream and defers end at once, so that the slot is given
// back however the handler leaves before the stream runs, a panic
// included (a broker's Subscribe, say).
type streamStart struct {
	h *Handler
	s *sseStream // once opened
	// undo lets go of what the handler took for the stream besides the
	// slot (a subscription), when the stream does not run.
	undo func()
}

// startStream takes a stream slot, or returns errTooManyStreams.
func (h *Handler) startStream() (*streamStart, error) {
	if err := h.slots.take(); err != nil {
		return nil, err
	}
	return &streamStart{h: h}, nil
}

// open opens the stream the slot is for (openStream).
func (st *streamStart) open(c *gin.Context) *sseStream {
	st.s = st.h.openStream(c)
	return st.s
}

// end, deferred by the handler that took the slot, does nothing once the
// stream runs. Before that, undo runs and the slot is given back; but a
// stream already opened (its connection taken over, when detached) is run
// instead, with undo as its cleanup and a first step that panics as the
// handler did: its transport answers 500 in JSON, or cuts a detached
// connection, and its end gives the slot back and counts it. The panic
// goes on to Gin's recovery, but for a detached stream's, which the
// stream logs; so too when the client was gone before that step, which
// then does not run.
func (st *streamStart) end() {
	if st.s != nil && st.s.running {
		return
	}
	p := withStack(recover())
	if s := st.s; s != nil {
		c := s.c // run lets go of it, when detached
		stepped := false
		if p != nil {
			s.stop(errPanicked)
		}
		s.run(func(io.Writer) bool {
			stepped = true
			if p != nil {
				panic(p)
			}
			return false
		}, func() {
			if p != nil && !stepped && s.conn != nil {
				value, stack := unstack(p, nil)
				s.h.log.Error("stream panicked", "path", s.access.path, "panic", value, "stack", stack, "answered_500", false)
			}
			if st.undo != nil {
				st.undo()
			}
		})
		// (Detached, the stream's steps are another goroutine's: stepped
		// is not read.)
		if s.conn == nil && p != nil && !stepped {
			panic(p) // on to Gin's recovery, which logs it
		}
		if s.conn != nil && p != nil {
			// The handler returns: the access line and its count say
			// 500 all the same, as for a panic that reaches Gin.
			c.Set(answeredPanicKey{}, true)
		}
		return
	}
	defer st.h.slots.release()
	if st.undo != nil {
		st.undo()
	}
	if p != nil {
		panic(p)
	}
}

// openStream prepares the event-stream headers, picks the transport, lifts
// the read deadline (server.read_timeout bounds the request, not the
// stream) and queues the retry field (none when the configured retry is
// 0). Nothing reaches the client until the first step. The caller has
// taken a stream slot (startStream); the stream's close gives it back.
func (h *Handler) openStream(c *gin.Context) *sseStream {
	bound := unboundWrites(c)
	hdr := c.Writer.Header()
	hdr.Set("Content-Type", "text/event-stream; charset=utf-8")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	if c.Request.ProtoMajor == 1 && c.Request.ProtoMinor >= 1 {
		// A detached stream says close instead: its connection is not
		// reused.
		hdr.Set("Connection", "keep-alive")
	}
	c.Status(http.StatusOK)
	now := time.Now()
	s := &sseStream{
		h: h, c: c, started: now, lastWrite: now,
		access: accessInfo{method: c.Request.Method, path: sentPath(c.Request.URL)},
	}
	// A head already sent (a middleware's WriteHeaderNow or Flush) is
	// not taken over: Gin's writer allows the hijack, net/http sends the
	// head first, and the detached one would follow it. Nor is a
	// response whose writer a middleware wrapped (h.wrappedWriter).
	if h.detached != nil && !c.Writer.Written() && !h.wrappedWriter(c, bound) {
		conn, err := h.detached.Take(c.Writer, c.Request)
		switch {
		case err == nil:
			s.conn, s.deadline, s.ctx = conn, conn, conn.Context()
		case c.Request.ProtoMajor == 1 && !errors.Is(err, detached.ErrClosed) && h.warnedOuter.CompareAndSwap(false, true):
			// A writer around the whole handler, outside Gin, cannot be
			// hijacked, or said Content-Encoding before the handler ran
			// (gorilla/handlers' CompressHandler): as under a
			// middleware's writer (wrappedWriter), its streams stay
			// with Gin, and the first is logged.
			h.log.Warn("stream.transport is detached, but a writer around the handler keeps its streams inside Gin's c.Stream",
				"path", sentPath(c.Request.URL), "reason", err)
		}
		// Otherwise (HTTP/2, a response encoded, or shutting down) the
		// stream stays with Gin.
	}
	if s.conn == nil {
		var own gin.ResponseWriter
		if bound != nil {
			own = bound.ResponseWriter
		}
		s.bound = bound
		s.gw = newGinWriter(c.Writer, own, c.Request)
		s.gw.liftReadDeadline()
		s.deadline, s.ctx = s.gw, c.Request.Context()
	}
	s.gone = s.ctx.Done()
	s.buf, _ = (&stream.Event{Retry: h.stream.Retry}).AppendTo(s.stepBuf())
	h.metrics.streamsActive.Inc()
	return s
}

// wrappedWriter reports whether a middleware of Options.Middleware put a
// writer of its own over Gin's in c.Writer, bound being the bound of plain
// answers, under it (unboundWrites): a stream is then not detached. A
// detached stream writes to the connection, past that writer: a
// compressor's that sets Content-Encoding only at its first write, as
// some do, was bypassed, and its stream went out uncompressed; what
// another writer does (counts the bytes, say) would be skipped as well.
// The first HTTP/1.x stream that stays with Gin so is logged, once, with
// a warning: stream.transport says detached, and its savings are gone.
// Without a bound (a test's writer) the writer is taken as Gin's.
func (h *Handler) wrappedWriter(c *gin.Context, bound *boundedWriter) bool {
	if bound == nil || c.Writer == bound.ResponseWriter {
		return false
	}
	if c.Request.ProtoMajor == 1 && h.warnedWrapped.CompareAndSwap(false, true) {
		h.log.Warn("stream.transport is detached, but a middleware wraps the response writer: its streams run inside Gin's c.Stream",
			"path", sentPath(c.Request.URL))
	}
	return true
}

// run hands step to the transport, then runs cleanup and ends the stream.
// With Gin, run returns when the stream has ended; a panic in step runs
// cleanup and goes on to Gin's recovery. A detached stream runs on its own
// goroutine and run returns at once: the handler must not touch c after
// that. A panic in it is the transport's to recover: it answers 500 when
// nothing was written (as Gin's recovery does), else cuts the connection;
// the stream logs it. A panic in cleanup ends the stream all the same
// (finish), and goes on to Gin's recovery, or, detached, is logged.
func (s *sseStream) run(step func(w io.Writer) bool, cleanup func()) {
	s.running = true
	if s.conn != nil {
		s.c = nil
		s.conn.Serve(func(w io.Writer) bool {
			return step(w) || s.farewell(w)
		}, func(panicked any, stack []byte) {
			if panicked != nil {
				value, stack := unstack(panicked, stack)
				s.h.log.Error("stream panicked", "path", s.access.path, "panic", value, "stack", stack,
					"answered_500", s.conn.AnsweredPanic())
				s.stop(errPanicked)
			}
			s.finish(cleanup)
		})
		return
	}
	c := s.c
	w := c.Writer
	c.Writer = s.gw
	defer func() {
		// After a failed flush s.gw stays, for the access line: its Size
		// leaves out what the flush did not send.
		if s.gw.err == nil {
			c.Writer = w
			if s.bound != nil && !s.bound.off && w == s.bound.ResponseWriter {
				// Gin's writer, which unboundWrites took from under
				// the bound: what middleware writes after the stream
				// goes through the bound again, as the stream turned
				// it on (below).
				c.Writer = s.bound
			}
		}
		p := withStack(recover())
		if p != nil {
			s.stop(errPanicked)
		}
		if q := s.finish(cleanup); p == nil {
			p = q
		}
		if p != nil {
			// Gin's recovery answers 500 when nothing was written: a
			// plain answer, which the bound of plain answers, off for
			// the stream, no longer bounds.
			s.gw.boundAnswer(s.h.stream.WriteTimeout)
			panic(p) // on to Gin's recovery
		}
	}()
	// c.Stream's own check for a gone client is off (ginWriter.CloseNotify):
	// the request's context says it, before each step as c.Stream would.
	c.Stream(func(w io.Writer) bool {
		if s.gw.err != nil { // the last step's flush failed
			return s.stop(s.gw.err)
		}
		select {
		case <-s.gone:
			return s.stop(errClientGone)
		default:
		}
		return step(w) || s.farewell(w)
	})
	if s.gw.err != nil {
		s.stop(s.gw.err)
	}
	select {
	case <-s.gone:
		if !s.last {
			// The client went away, or only closed its side of the
			// connection, which reads the same, and may read on: the
			// stream did not come to its end, and must not end as if it
			// had (net/http's last chunk), as a detached one does not.
			s.gw.cut()
			return
		}
	default:
	}
	// net/http ends the response once the handler returns: its last
	// chunk, after the last step if WriteLast held it, is a write too.
	// The deadline of a stream idle since its last write (one ended by
	// Close, say) may have passed long ago, and the end would be cut.
	s.extendDeadline(time.Now())
	if s.bound != nil && s.h.wrapped {
		// What middleware writes after the stream (a compressor's end of
		// its body), and net/http's end of the response then, are
		// bounded as a plain answer's are (boundWrites): over HTTP/2 no
		// step follows to set the stream's deadline, and a client that
		// gave no window for them held them, and net/http's goroutine,
		// for good. Without middleware the end is the last chunk, under
		// the deadline just set, or over HTTP/2 an empty frame, which
		// needs no window.
		s.bound.off = false
	}
}

// maxShutdownRetrySpread bounds the spread of the retry field a shutdown
// ends a stream with (farewell), past stream.retry: the clients of an
// instance that stops come back over as long as stream.retry, 5 s at
// most, as its 503s' Retry-After spreads those it refuses, not all
// together stream.retry later.
const maxShutdownRetrySpread = 5 * time.Second

// farewell ends a stream that a shutdown (Close) ended, before its
// transport ends the response, with a retry field of stream.retry plus up
// to as much again (maxShutdownRetrySpread at most), chosen at random for
// each stream: an EventSource waits that long before it reconnects. None
// is sent with stream.retry 0s, nor when the stream ended otherwise, or
// its connection was closed (Cutting). The stream's end stays a
// shutdown's, even when the write fails. It returns false: the stream
// ends.
func (s *sseStream) farewell(w io.Writer) bool {
	if s.h.stream.Retry <= 0 || !errors.Is(s.end, errShuttingDown) || errors.Is(s.end, errCut) || s.last || !s.opened {
		return false
	}
	end := s.end
	retry := s.h.stream.Retry + rand.N(min(s.h.stream.Retry, maxShutdownRetrySpread)+time.Millisecond)
	s.queue(mustEncode(stream.Event{Retry: retry}), 0)
	s.last = true
	s.send(w, time.Now())
	s.end = end
	return false
}

// finish runs cleanup, then closes the stream even if cleanup panicked,
// and returns what it panicked with: the stream's slot is given back
// whatever happens (Handler.Wait, and with it a shutdown, waits for every
// slot). A detached stream logs the panic: nothing above its goroutine
// recovers it, and the process would end.
func (s *sseStream) finish(cleanup func()) (panicked any) {
	if s.end == nil && s.conn != nil && s.conn.Inspected() {
		// A detached Conn saw the client gone between two steps, and
		// ended the stream without a step to say so: as a client gone,
		// which stoppedReading takes for what the connection's end saw.
		s.stop(errClientGone)
	}
	s.stoppedReading()
	defer func() {
		if panicked = withStack(recover()); panicked != nil {
			s.stop(errPanicked)
			if s.conn != nil {
				value, stack := unstack(panicked, nil)
				s.h.log.Error("stream panicked", "path", s.access.path, "panic", value, "stack", stack)
			}
		}
		s.close()
	}()
	cleanup()
	return nil
}

// netConnKey is the context key of a connection (ConnContext).
type netConnKey struct{}

// ConnContext is the http.Server's ConnContext that
// StreamOptions.StoppedReading needs: it puts each connection in its
// context.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, netConnKey{}, c)
}

// stoppedReading makes the stream's end errStoppedReading when its client
// went away, or a write failed, because the system ended the connection
// of a client that stopped reading (StreamOptions.StoppedReading): it
// learnt that as a client gone, or as the write's error, not as a write
// timed out, and was not counted as a slow subscriber. It is called while
// the connection is open: with Gin before the handler returns, detached
// from what the connection's end saw (detached.Conn.Inspected).
func (s *sseStream) stoppedReading() {
	if s.h.stream.StoppedReading == nil || errors.Is(s.end, os.ErrDeadlineExceeded) {
		return
	}
	if reason := endReason(s.end); reason != "client_gone" && reason != "write_failed" {
		return
	}
	if errors.Is(s.end, syscall.ECONNRESET) {
		// The client reset its connection: it went away. Its stream may
		// learn so only at its next write (net/http no longer reads a
		// connection whose client sent a byte past its request), long
		// after the window closed, when the connection reads as ended
		// by the system.
		return
	}
	stopped := s.conn != nil && s.conn.Inspected()
	if s.c != nil {
		conn, ok := s.c.Request.Context().Value(netConnKey{}).(net.Conn)
		stopped = ok && s.h.stream.StoppedReading(conn)
	}
	if stopped {
		s.end = fmt.Errorf("%w (%w)", errStoppedReading, s.end)
	}
}

// reset queues the event: reset a stream begins with when it cannot
// resume from its Last-Event-ID, saying why, with id, when not empty, as
// its id: where the stream goes on from. It is counted once written
// (send): a stream whose client left before its first step did not begin
// with it.
func (s *sseStream) reset(why, id string) {
	s.queue(mustEncode(stream.Event{ID: id, Type: "reset", Data: why}), 1)
	s.resetQueued = true
}

// position queues `event: position` with id as its id and empty data: an
// EventSource takes the id as its last event id, so a client that goes
// away before its first event sends it when it comes back. (A frame of an
// id alone, which the spec says sets it without an event, does not in
// Firefox or Safari: they drop a frame without data, id and all.) A page
// listening to message events sees nothing of it.
func (s *sseStream) position(id string) {
	s.queue(mustEncode(stream.Event{ID: id, Type: "position"}), 0)
}

// queue adds an encoded frame to this step's buffer.
func (s *sseStream) queue(frame []byte, events int) {
	s.buf = append(s.stepBuf(), frame...)
	s.queued += events
}

// stepBuf returns the step's buffer, borrowing one if the step has none.
func (s *sseStream) stepBuf() []byte {
	if s.lent == nil {
		s.lent = s.h.stepBufs.get()
		s.buf = *s.lent
	}
	return s.buf
}

// returnBuf gives the step's buffer back, once it is written.
func (s *sseStream) returnBuf() {
	if s.lent != nil {
		*s.lent = s.buf
		s.h.stepBufs.put(s.lent)
		s.lent, s.buf = nil, nil
	}
}

// send writes what the step queued to w, or a heartbeat when nothing is
// queued and one is due. The first send always writes, if only to start
// the response. The transport flushes after the step. send reports
// whether the stream may go on.
func (s *sseStream) send(w io.Writer, now time.Time) bool {
	if len(s.buf) == 0 && s.opened {
		if now.Sub(s.lastWrite) < s.h.stream.HeartbeatInterval {
			return true
		}
		s.buf = append(s.stepBuf(), heartbeat...)
	}
	s.settle() // the stream goes on: the last step's flush went well
	s.extendDeadline(now)
	n := len(s.buf)
	var err error
	if lw, ok := w.(lastWriter); ok && s.last && (s.opened || s.conn != nil) {
		// A stream that already started ends with its last step. With
		// Gin a one-step stream is simply written; a detached one ends
		// with it too, or a client gone (or that half-closed) after it
		// would see it cut (detached.Conn's end).
		_, err = lw.WriteLast(s.buf)
	} else {
		_, err = w.Write(s.buf)
	}
	s.returnBuf() // the transport is done with the bytes
	s.opened = true
	s.lastWrite = now
	events, reset := s.queued, s.resetQueued
	s.queued, s.resetQueued = 0, false
	if err != nil {
		s.end = err
		return false
	}
	if reset {
		s.h.metrics.resets.Inc()
	}
	s.unsettledEvents, s.unsettledBytes = events, n
	return true
}

// settle counts the last step written as sent: its flush has not failed.
func (s *sseStream) settle() {
	s.events += s.unsettledEvents
	s.bytes += s.unsettledBytes
	s.unsettledEvents, s.unsettledBytes = 0, 0
	if s.events-s.counted >= countEvery {
		s.count()
	}
}

// extendDeadline gives the writes from now on at least half of the write
// timeout: it moves the write deadline to a full timeout from now when
// less than half is left.
func (s *sseStream) extendDeadline(now time.Time) {
	if timeout := s.h.stream.WriteTimeout; s.deadlineAt.Sub(now) < timeout/2 {
		s.deadlineAt = now.Add(timeout)
		// A deadline error only means the writer cannot take one (a
		// test writer without it); the write still happens.
		_ = s.deadline.SetWriteDeadline(s.deadlineAt)
	}
}

// countEvery is how many events a stream sends before it adds them to the
// shared counter, which every stream's goroutine writes to.
const countEvery = 32

// count adds the events sent since the last count to the metrics.
func (s *sseStream) count() {
	s.h.metrics.eventsSent.Add(float64(s.events - s.counted))
	s.counted = s.events
}

// nextHeartbeat is how long until a heartbeat is due, on the grid (see
// grid.go), or the token expires if that comes first: one timer wakes the
// stream for both. The expiry is not rounded up to the grid: an event
// published between the token's end and the next grid step would be sent
// past it. It comes once in a stream's life.
func (s *sseStream) nextHeartbeat(now time.Time) time.Duration {
	d := onGrid(now, s.lastWrite.Add(s.h.stream.HeartbeatInterval).Sub(now), s.h.heartbeatGrain)
	if !s.expires.IsZero() {
		d = min(d, s.expires.Sub(now))
	}
	return d
}

// expireAt makes the stream end at end, when the token that allowed it
// stops being accepted, with `event: expired` whose data is exp, the
// token's expiry, in RFC 3339.
func (s *sseStream) expireAt(end, exp time.Time) {
	s.expires = end
	s.expiredFrame = mustEncode(stream.Event{Type: "expired", Data: exp.UTC().Format(time.RFC3339)})
}

// expired ends the stream with its expired event when its token has
// expired at now, and reports whether it did. The events still waiting
// are not sent: the client resumes with Last-Event-ID and a fresh token.
func (s *sseStream) expired(w io.Writer, now time.Time) bool {
	if s.expires.IsZero() || now.Before(s.expires) {
		return false
	}
	s.queue(s.expiredFrame, 1)
	s.last = true
	s.send(w, now)
	s.stop(errExpired)
	return true
}

// stop records why the stream ends, unless a reason is already known.
func (s *sseStream) stop(reason error) bool {
	if s.end == nil {
		s.end = reason
	}
	return false
}

// wait blocks until timer fires, the client goes away or the handler
// closes. It reports whether the stream may go on.
func (s *sseStream) wait(timer *time.Timer) bool {
	select {
	case <-timer.C:
		return true
	case <-s.gone:
		return s.stop(errClientGone)
	case <-s.h.done:
		return s.stop(errShuttingDown)
	}
}

// close logs the end of the stream and settles the metrics. The transport
// ends the response.
func (s *sseStream) close() {
	select {
	case <-s.gone:
		s.stop(errClientGone)
		if s.gw != nil && s.gw.perStep && endReason(s.end) == "write_failed" && !errors.Is(s.end, os.ErrDeadlineExceeded) && !errors.Is(s.end, errStoppedReading) {
			// On HTTP/2 a write fails when its stream ends under it: the
			// client reset the stream (an EventSource closed) or closed
			// the connection, which is what the request's end says. Only
			// the write deadline is the server's own reset.
			s.end = fmt.Errorf("%w: %w", errClientGone, s.end)
		}
	default:
	}
	if s.h.cut.Load() {
		// The write failed, or the request ended, because the server
		// closed the connection.
		if reason := endReason(s.end); reason == "client_gone" || reason == "write_failed" {
			s.end = errCut
		}
	}
	s.returnBuf() // frames queued but never sent
	if s.gw == nil || s.gw.err == nil {
		s.settle()
	}
	s.count()
	s.h.metrics.streamsEnded.WithLabelValues(endReason(s.end)).Inc()
	if s.h.log.Enabled(context.Background(), slog.LevelInfo) { // spare the arguments' allocations
		s.h.log.Info("stream ended",
			"path", s.access.path,
			"events", s.events,
			"bytes", s.bytes,
			"duration", time.Since(s.started).Round(time.Millisecond),
			"reason", s.end)
	}
	s.h.slots.release() // after the line: Wait returns once every slot is free
	// After the slot: a client that reads fewer streams open than
	// stream.max_streams may open one more.
	s.h.metrics.streamsActive.Dec()
	if s.h.streamEnded != nil {
		s.h.streamEnded(s.access.path)
	}
}
