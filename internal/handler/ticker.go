package handler

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/stream"
)

// Bounds of the ticker's query parameters.
const (
	maxTickerCount    = 10000
	maxTickerInterval = 60 * time.Second
)

// closeFrame ends the ticker: EventSource pages close on the named event.
var closeFrame = mustEncode(stream.Event{Type: "close", Data: "bye"})

// tickerStream serves GET /stream, the seed's ticker done right:
// `id: i` and `data: Streamed line {i}` for i = 0..count-1, interval apart,
// then `event: close`. Last-Event-ID n resumes at n+1; a reconnect after
// the final id gets 204 No Content, the one answer that stops EventSource.
func (h *Handler) tickerStream(c *gin.Context) {
	count, interval, err := h.tickerParams(c.Request.URL.Query())
	if err != nil {
		h.abortWithError(c, err)
		return
	}
	lastID, err := lastEventID(c.Request.Header)
	if err != nil {
		h.abortWithError(c, err)
		return
	}
	from, reset := tickerResume(lastID, count)
	if from == count {
		// Not cacheable, as the stream it stands for: a 204 is cacheable
		// by default, and a cache keys it by URL, not by Last-Event-ID.
		c.Header("Cache-Control", "no-cache")
		c.Status(http.StatusNoContent)
		return
	}
	st, err := h.startStream()
	if err != nil {
		h.abortWithError(c, err)
		return
	}
	defer st.end()
	s := st.open(c)
	if reset != "" {
		s.reset(reset, "")
	}
	s.runPaced(paced{
		from:        from,
		count:       count,
		interval:    interval,
		appendItems: h.ticker.append,
		final:       closeFrame,
	})
}

// tickerParams reads count and interval from the query, defaulting to the
// configured values.
func (h *Handler) tickerParams(q url.Values) (count int, interval time.Duration, err error) {
	count, interval = h.demo.TickerCount, h.demo.TickerInterval
	v, ok, err := queryParam(q, "count")
	if err != nil {
		return 0, 0, err
	}
	if ok {
		n, err := strconv.Atoi(v)
		// As it is written, no sign or leading zero: as limit is on
		// GET /api/v1/topics, and as an id is read (a resume).
		if err != nil || n < 1 || n > maxTickerCount || strconv.Itoa(n) != v {
			return 0, 0, badRequest("count %s: want a whole number from 1 to %d", stream.Quote(v), maxTickerCount)
		}
		count = n
	}
	if v, ok, err = queryParam(q, "interval"); err != nil {
		return 0, 0, err
	}
	if ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > maxTickerInterval {
			return 0, 0, badRequest("interval %s: want a duration from 0s to %s, such as 500ms", stream.Quote(v), maxTickerInterval)
		}
		interval = d
	}
	if err := h.checkDemoDuration("count", count, interval); err != nil {
		return 0, 0, err
	}
	return count, interval, nil
}

// checkDemoDuration refuses a demo stream of n items interval apart that
// would last longer than demo.max_duration; what names the items.
func (h *Handler) checkDemoDuration(what string, n int, interval time.Duration) error {
	if d := time.Duration(n) * interval; d > h.demo.MaxDuration {
		return badRequest("%s %d × interval %s = %s: demo streams last at most %s (demo.max_duration)",
			what, n, interval, d, h.demo.MaxDuration)
	}
	return nil
}

// tickerResume returns the first index to send after lastID. An id the
// ticker cannot resume from restarts at 0 with a reason to tell the client:
// a resume is never silently ignored. Only the ids it sends are its own:
// "04", "+4" or "-0" name no line, though they read as a number.
func tickerResume(lastID string, count int) (from int, reset string) {
	if lastID == "" {
		return 0, ""
	}
	n, err := strconv.Atoi(lastID)
	if err != nil || n < 0 || n >= count || strconv.Itoa(n) != lastID {
		return 0, fmt.Sprintf("Last-Event-ID %s is not an id of this stream (0 to %d); starting over", stream.Quote(lastID), count-1)
	}
	return n + 1, ""
}

// tickerFrames holds the ticker's frames, encoded once for every client:
// frame i is buf[ends[i-1]:ends[i]], so frames i..j-1 are one slice.
type tickerFrames struct {
	buf  []byte
	ends []int
}

func newTickerFrames(n int) *tickerFrames {
	t := &tickerFrames{ends: make([]int, n)}
	for i := range n {
		ev := stream.Event{ID: strconv.Itoa(i), Data: "Streamed line " + strconv.Itoa(i)}
		t.buf, _ = ev.AppendTo(t.buf)
		t.ends[i] = len(t.buf)
	}
	return t
}

// append appends frames [i, j) to dst.
func (t *tickerFrames) append(dst []byte, i, j int) []byte {
	start := 0
	if i > 0 {
		start = t.ends[i-1]
	}
	return append(dst, t.buf[start:t.ends[j-1]]...)
}

// mustEncode encodes an event known to be valid.
func mustEncode(ev stream.Event) []byte {
	b, err := ev.AppendTo(nil)
	if err != nil {
		panic(err)
	}
	return b
}
