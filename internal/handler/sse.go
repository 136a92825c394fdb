package handler

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
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
)

// headroom is kept free at the start of every step buffer, so a detached
// stream can put the chunk size in front of the frames without a copy:
// 16 hex digits and CRLF.
const headroom = 18

// maxIdleBuf is the largest step buffer a stream keeps once its steps are
// small again; a larger one (grown by a replay or a burst) is let go then,
// so an idle stream holds little memory.
const maxIdleBuf = 16 << 10

// stepWriter takes one step of a stream to the client. buf holds headroom
// spare bytes and then the step's frames; the writer may use the spare
// bytes and append to buf. There are two: one over Gin's ResponseWriter
// (attachedWriter) and one over a hijacked connection (connWriter).
type stepWriter interface {
	// last says no step follows: the writer may end the response in the
	// same write.
	writeStep(buf *[]byte, last bool) error
	setWriteDeadline(t time.Time) error
	// finish ends the response after the last step.
	finish()
}

// sseStream writes one event-stream response. It buffers the frames of one
// step and writes them with a single deadline-bounded write. An attached
// stream runs on the request's goroutine inside c.Stream; a detached one
// (see detach.go) runs on a goroutine of its own once the handler has
// returned. Either way one goroutine owns it.
type sseStream struct {
	h   *Handler
	w   stepWriter
	buf []byte
	// gone is closed when the client has gone away; onGone, when set
	// before run, is called then too.
	gone   chan struct{}
	onGone func()
	// c is the request; nil once the stream is detached, because Gin
	// reuses it when the handler returns.
	c        *gin.Context
	detached bool
	access   accessInfo

	started time.Time
	// lastWrite is when bytes last went out: the heartbeat is due
	// HeartbeatInterval after it.
	lastWrite time.Time
	// deadline is the write deadline last set; it is moved only when
	// less than half of the write timeout is left, not on every write
	// (each move updates a runtime timer).
	deadline time.Time
	opened   bool // the response head went out
	last     bool // the next send is the last
	events   int  // sent so far
	counted  int  // events added to the shared counter so far
	queued   int  // events in buf
	bytes    int  // payload written, for the access line
	end      error
}

// openStream prepares the event-stream headers and queues the retry field
// (none when the configured retry is 0). HTTP/1.x streams are detached
// from net/http (see detach.go); others stay on the ResponseWriter.
// Nothing reaches the client until the first send.
func (h *Handler) openStream(c *gin.Context) *sseStream {
	hdr := c.Writer.Header()
	hdr.Set("Content-Type", "text/event-stream; charset=utf-8")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	if c.Request.ProtoMajor == 1 {
		// A detached stream says close instead (responseHead).
		hdr.Set("Connection", "keep-alive")
	}
	c.Status(http.StatusOK)
	now := time.Now()
	s := &sseStream{
		h: h, c: c, started: now, lastWrite: now,
		buf:    make([]byte, headroom, 256),
		gone:   make(chan struct{}),
		access: accessInfo{method: c.Request.Method, path: c.Request.URL.Path},
	}
	if !h.detach(s, c) {
		s.w = &attachedWriter{c: c, rc: http.NewResponseController(c.Writer)}
	}
	s.buf, _ = (&stream.Event{Retry: h.stream.Retry}).AppendTo(s.buf)
	h.metrics.streamsActive.Inc()
	return s
}

// run calls step until it returns false, then cleanup, then ends the
// stream. A detached stream runs on its own goroutine and run returns at
// once; the handler must not touch c after that.
func (s *sseStream) run(step func() bool, cleanup func()) {
	if !s.detached {
		stop := context.AfterFunc(s.c.Request.Context(), func() {
			close(s.gone)
			if s.onGone != nil {
				s.onGone()
			}
		})
		s.c.Stream(func(_ io.Writer) bool { return step() })
		stop()
		cleanup()
		s.close()
		return
	}
	w := s.w.(*connWriter)
	go w.watch(s.gone, s.onGone)
	go func() {
		defer s.h.detachedEnded()
		cleaned := false
		defer s.recovered(w, func() {
			if !cleaned {
				cleanup()
			}
		})
		for step() {
		}
		cleaned = true
		cleanup()
		s.close()
	}()
}

// recovered stops a panic in a detached stream from taking the process
// down, as Gin's recovery does for handlers: the panic is logged, the
// connection cut, and cleanup run unless it ran already (a subscription
// is let go of).
func (s *sseStream) recovered(w *connWriter, cleanup func()) {
	r := recover()
	if r == nil {
		return
	}
	s.h.log.Error("stream panicked", "path", s.access.path, "panic", r)
	_ = w.conn.Close()
	<-s.gone
	s.h.metrics.streamsActive.Dec()
	defer func() {
		if r := recover(); r != nil {
			s.h.log.Error("stream cleanup panicked", "path", s.access.path, "panic", r)
		}
	}()
	cleanup()
}

// queue adds an encoded frame to this step's buffer.
func (s *sseStream) queue(frame []byte, events int) {
	s.buf = append(s.buf, frame...)
	s.queued += events
}

// pending is how many bytes of frames this step holds.
func (s *sseStream) pending() int { return len(s.buf) - headroom }

// send writes what the step queued, or a heartbeat when nothing is queued
// and one is due. The first send always writes, if only the response head.
// It reports whether the stream may go on.
func (s *sseStream) send(now time.Time) bool {
	if s.pending() == 0 && s.opened {
		if now.Sub(s.lastWrite) < s.h.stream.HeartbeatInterval {
			return true
		}
		s.buf = append(s.buf, heartbeat...)
	}
	if timeout := s.h.stream.WriteTimeout; s.deadline.Sub(now) < timeout/2 {
		s.deadline = now.Add(timeout)
		// A deadline error only means the writer cannot take one (an
		// HTTP/2 or test writer without it); the write still happens.
		_ = s.w.setWriteDeadline(s.deadline)
	}
	s.bytes += s.pending()
	small := s.pending() < maxIdleBuf/4
	err := s.w.writeStep(&s.buf, s.last)
	if small && cap(s.buf) > maxIdleBuf {
		// The burst that grew the buffer is over.
		s.buf = make([]byte, headroom, 256)
	}
	s.buf = s.buf[:headroom]
	s.opened = true
	s.lastWrite = now
	s.events += s.queued
	s.queued = 0
	if s.events-s.counted >= countEvery {
		s.count()
	}
	if err != nil {
		s.end = err
		return false
	}
	return true
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
// grid.go).
func (s *sseStream) nextHeartbeat(now time.Time) time.Duration {
	return onGrid(now, s.lastWrite.Add(s.h.stream.HeartbeatInterval).Sub(now), s.h.heartbeatGrain)
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

// close ends the response, logs the end of the stream and settles the
// metrics.
func (s *sseStream) close() {
	select {
	case <-s.gone:
		s.stop(errClientGone)
	default:
	}
	s.count()
	s.w.finish()
	if s.detached {
		<-s.gone // finish closed the connection: the reader ends
	}
	s.h.metrics.streamsActive.Dec()
	if s.h.log.Enabled(context.Background(), slog.LevelInfo) { // spare the arguments' allocations
		s.h.log.Info("stream ended",
			"path", s.access.path,
			"events", s.events,
			"duration", time.Since(s.started).Round(time.Millisecond),
			"reason", s.end)
	}
	if s.detached {
		// The access middleware skipped this request: its handler
		// returned when the stream was handed over.
		s.h.logAccess(s.access, http.StatusOK, s.bytes, time.Since(s.started))
	}
	if s.h.streamEnded != nil {
		s.h.streamEnded(s.access.path)
	}
}
