package handler

import (
	"errors"
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

// sseStream writes one event-stream response. It buffers the frames of one
// step and writes them with a single deadline-bounded Write; c.Stream then
// flushes once. It belongs to the request's goroutine.
type sseStream struct {
	h       *Handler
	c       *gin.Context
	rc      *http.ResponseController
	buf     []byte
	started time.Time
	// lastWrite is when bytes last went out: the heartbeat is due
	// HeartbeatInterval after it.
	lastWrite time.Time
	events    int // sent so far
	queued    int // events in buf
	end       error
}

// openStream sends the event-stream headers and queues the retry field
// (none when the configured retry is 0).
// Nothing reaches the client until the first send.
func (h *Handler) openStream(c *gin.Context) *sseStream {
	hdr := c.Writer.Header()
	hdr.Set("Content-Type", "text/event-stream; charset=utf-8")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	if c.Request.ProtoMajor == 1 {
		hdr.Set("Connection", "keep-alive")
	}
	c.Status(http.StatusOK)
	now := time.Now()
	s := &sseStream{h: h, c: c, rc: http.NewResponseController(c.Writer), started: now, lastWrite: now}
	s.buf, _ = (&stream.Event{Retry: h.stream.Retry}).AppendTo(s.buf)
	h.metrics.streamsActive.Inc()
	return s
}

// queue adds an encoded frame to this step's buffer.
func (s *sseStream) queue(frame []byte, events int) {
	s.buf = append(s.buf, frame...)
	s.queued += events
}

// send writes what the step queued, or a heartbeat when nothing is queued
// and one is due. It reports whether the stream may go on.
func (s *sseStream) send(now time.Time) bool {
	if len(s.buf) == 0 {
		if now.Sub(s.lastWrite) < s.h.stream.HeartbeatInterval {
			return true
		}
		s.buf = append(s.buf, heartbeat...)
	}
	// A deadline error only means the writer cannot take one (an
	// HTTP/2 or test writer without it); the write still happens.
	_ = s.rc.SetWriteDeadline(now.Add(s.h.stream.WriteTimeout))
	_, err := s.c.Writer.Write(s.buf)
	s.buf = s.buf[:0]
	s.lastWrite = now
	s.events += s.queued
	s.h.metrics.eventsSent.Add(float64(s.queued))
	s.queued = 0
	if err != nil {
		s.end = err
		return false
	}
	return true
}

// nextHeartbeat is how long until a heartbeat is due.
func (s *sseStream) nextHeartbeat(now time.Time) time.Duration {
	return s.lastWrite.Add(s.h.stream.HeartbeatInterval).Sub(now)
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
	case <-s.c.Request.Context().Done():
		return s.stop(errClientGone)
	case <-s.h.done:
		return s.stop(errShuttingDown)
	}
}

// close logs the end of the stream and settles the metrics.
func (s *sseStream) close() {
	if s.c.Request.Context().Err() != nil && s.end == nil {
		s.end = errClientGone
	}
	s.h.metrics.streamsActive.Dec()
	s.h.log.Info("stream ended",
		"path", s.c.Request.URL.Path,
		"events", s.events,
		"duration", time.Since(s.started).Round(time.Millisecond),
		"reason", s.end)
}
