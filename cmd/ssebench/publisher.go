package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// publishTimeout bounds one publish request.
const publishTimeout = 10 * time.Second

// maxResponseBytes bounds a publish response body that ssebench reads.
const maxResponseBytes = 64 << 10

// publishConn is one keep-alive HTTP/1.1 connection that POSTs events,
// written by hand like the subscribers so that the client's own cost per
// request stays small next to the server's. It belongs to one goroutine.
type publishConn struct {
	t    *target
	conn net.Conn
	br   *bufio.Reader
	req  []byte
	resp []byte
}

// post sends body to path and returns the response status and body (valid
// until the next call). It dials again after the server closed the
// connection or a request failed. ctx bounds the dial and the exchange.
func (c *publishConn) post(ctx context.Context, path string, body []byte, token string) (int, []byte, error) {
	if err := c.open(ctx); err != nil {
		return 0, nil, err
	}
	c.req = c.t.appendRequest(c.req[:0], http.MethodPost, path, body,
		header{"Authorization", bearer(token)}, header{"Content-Type", "application/json"})
	conn := c.conn
	_ = conn.SetDeadline(time.Now().Add(publishTimeout))
	cut := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	status, resp, keep, err := c.exchange()
	if !cut() {
		keep = false // ctx ended: the connection's deadline is spent
	}
	if err != nil || !keep {
		c.close()
	}
	return status, resp, err
}

// open dials the target unless the connection is open.
func (c *publishConn) open(ctx context.Context) error {
	if c.conn != nil {
		return nil
	}
	conn, err := c.t.dial(ctx)
	if err != nil {
		return err
	}
	c.conn, c.br = conn, bufio.NewReaderSize(conn, 4096)
	return nil
}

// exchange writes the request and reads the whole response.
func (c *publishConn) exchange() (status int, body []byte, keepAlive bool, err error) {
	if _, err := c.conn.Write(c.req); err != nil {
		return 0, nil, false, err
	}
	head, err := readResponseHead(c.br)
	if err != nil {
		return 0, nil, false, err
	}
	if !head.chunked && head.contentLength < 0 {
		head.close = true // the body runs to the end of the connection
	}
	c.resp = c.resp[:0]
	buf := bytesWriter{&c.resp}
	n, err := io.Copy(buf, io.LimitReader(head.body(c.br), maxResponseBytes))
	if err != nil {
		return head.status, nil, false, err
	}
	if n == maxResponseBytes {
		head.close = true
	}
	return head.status, c.resp, !head.close, nil
}

func (c *publishConn) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn, c.br = nil, nil
	}
}

// bytesWriter appends what is written to a byte slice.
type bytesWriter struct{ b *[]byte }

func (w bytesWriter) Write(p []byte) (int, error) {
	*w.b = append(*w.b, p...)
	return len(p), nil
}

// publisher publishes events to one topic from several connections and
// counts the outcome. Its methods are safe for concurrent use.
type publisher struct {
	t     *target
	path  string
	token string
	event string
	size  int

	// from and limit bound the sequence numbers published: from,
	// from+1, ... below limit (0: no bound but the duration). With a
	// rate, from is 0.
	from, limit int64
	// handed, if set, is raised above each sequence number before the
	// event is handed to a connection: no event of the run is above it.
	handed *atomic.Int64

	latency  Histogram // request round trip
	accepted seqSet    // the sequence numbers of the events accepted
	sent     atomic.Int64
	ok       atomic.Int64
	errs     errorCounts
	elapsed  time.Duration
}

func newPublisher(t *target, topic, token, event string, size int) *publisher {
	return &publisher{
		t:     t,
		path:  "/api/v1/topics/" + url.PathEscape(topic) + "/events",
		token: token,
		event: event,
		size:  size,
	}
}

// job is one event to publish: its sequence number and, with a rate, the
// time it was due.
type job struct {
	seq int64
	due time.Time // zero at rate 0: due when a connection is free
}

// run publishes from workers connections until d has passed or ctx is
// done: the end of d stops new requests, ctx also cuts off those in
// flight. The connections are opened first, and d counts from then. With
// rate > 0 event k is due at k/rate seconds after that (events that fall
// behind are sent as soon as a connection is free, stamped with the time
// they were due, so the wait shows in their latency); with rate 0 every
// worker publishes as fast as the server answers.
func (p *publisher) run(ctx context.Context, rate float64, d time.Duration, workers int) {
	p.runFor(ctx, rate, workers, func(ctx context.Context) (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, d)
	})
}

// runFor is run with the publishing phase's context made by phase from
// the run's, once the connections are open: its end stops new requests.
func (p *publisher) runFor(ctx context.Context, rate float64, workers int, phase func(context.Context) (context.Context, context.CancelFunc)) {
	abort := ctx
	conns := make([]*publishConn, max(workers, 1))
	var dials sync.WaitGroup
	for i := range conns {
		c := &publishConn{t: p.t}
		conns[i] = c
		dials.Go(func() {
			ctx, cancel := context.WithTimeout(abort, publishTimeout)
			defer cancel()
			_ = c.open(ctx) // one that fails is dialled again, and counted, with its first event
		})
	}
	dials.Wait()
	ctx, cancel := phase(ctx)
	defer cancel()
	jobs := make(chan job, len(conns)*4)
	var wg sync.WaitGroup
	start := time.Now()
	for _, c := range conns {
		wg.Go(func() { p.work(ctx, abort, c, jobs) })
	}
	if rate > 0 {
		p.schedule(ctx, rate, jobs)
	} else {
		for k := p.from; p.limit == 0 || k < p.limit; k++ {
			p.handOut(k)
			select {
			case jobs <- job{seq: k}:
				continue
			case <-ctx.Done():
			}
			break
		}
	}
	close(jobs)
	wg.Wait()
	p.elapsed = time.Since(start)
}

// schedule hands out sequence numbers at rate per second, each with the
// time it was due.
func (p *publisher) schedule(ctx context.Context, rate float64, jobs chan<- job) {
	start := time.Now()
	dueAt := func(k int64) time.Time { return start.Add(time.Duration(float64(k) / rate * float64(time.Second))) }
	timer := time.NewTimer(0)
	defer timer.Stop()
	var next int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		due := int64(time.Since(start).Seconds()*rate) + 1
		if p.limit > 0 {
			due = min(due, p.limit)
		}
		for ; next < due; next++ {
			p.handOut(next)
			select {
			case jobs <- job{seq: next, due: dueAt(next)}:
			case <-ctx.Done():
				return
			}
		}
		if p.limit > 0 && next >= p.limit {
			return
		}
		timer.Reset(time.Until(dueAt(next)))
	}
}

// handOut records that event seq is about to be handed to a connection.
func (p *publisher) handOut(seq int64) {
	if p.handed != nil {
		p.handed.Store(seq + 1)
	}
}

// work publishes each event from jobs on c until ctx is done; abort cuts
// off a request in flight.
func (p *publisher) work(ctx, abort context.Context, c *publishConn, jobs <-chan job) {
	defer c.close()
	var body []byte
	for j := range jobs {
		if ctx.Err() != nil {
			continue // drain
		}
		// A connection the server closed is dialled again first: the
		// request's time starts once it is open. The event's send time
		// is the time it was due, if it had one: a wait for the
		// connection, or for the requests before it, is part of its
		// latency.
		err := c.open(ctx)
		cutOff := err != nil && ctx.Err() != nil // the end of -duration stopped the dial
		t0 := time.Now()
		sent := j.due
		if sent.IsZero() {
			sent = t0
		}
		body = p.appendBody(body[:0], j.seq, sent.UnixNano())
		p.sent.Add(1)
		var status int
		var resp []byte
		if err == nil {
			// A request under way runs to its end after -duration: only
			// the end of the whole run (abort) cuts it off.
			status, resp, err = c.post(abort, p.path, body, p.token)
			cutOff = err != nil && abort.Err() != nil
		}
		switch {
		case cutOff:
			p.sent.Add(-1) // cut off by the end of the run, not the server's fault
		case err != nil:
			p.errs.add(err)
		case status != http.StatusCreated:
			p.errs.add(fmt.Errorf("status %d %.120s: %w", status, resp, ErrStatus))
		default:
			p.ok.Add(1)
			p.accepted.add(j.seq)
			p.latency.Record(time.Since(t0))
		}
	}
}

// publishFirst publishes sequence number 0 alone and returns the id the
// server gave it, for the subscribers to resume after.
func (p *publisher) publishFirst(ctx context.Context) (string, error) {
	c := &publishConn{t: p.t}
	defer c.close()
	err := c.open(ctx)
	t0 := time.Now()
	p.sent.Add(1)
	var status int
	var resp []byte
	if err == nil {
		status, resp, err = c.post(ctx, p.path, p.appendBody(nil, 0, t0.UnixNano()), p.token)
	}
	if err == nil && status != http.StatusCreated {
		err = fmt.Errorf("status %d %.120s: %w", status, resp, ErrStatus)
	}
	var answer struct{ ID string }
	if err == nil {
		err = json.Unmarshal(resp, &answer)
	}
	if err != nil {
		p.errs.add(err)
		return "", err
	}
	p.ok.Add(1)
	// Not in accepted: the subscribers resume after it, and are not owed it.
	p.latency.Record(time.Since(t0))
	return answer.ID, nil
}

// appendBody appends the JSON publish body of event seq to dst.
func (p *publisher) appendBody(dst []byte, seq, ts int64) []byte {
	dst = append(dst, '{')
	if p.event != "" {
		dst = append(dst, `"event":`...)
		dst = appendJSONString(dst, p.event)
		dst = append(dst, ',')
	}
	dst = append(dst, `"data":`...)
	dst = appendPayload(dst, seq, ts, p.size)
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string. Event names are short
// ASCII in practice; other bytes are escaped as \u00XX.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := range len(s) {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// Report returns the publishing figures.
func (p *publisher) Report() *PublishReport {
	r := &PublishReport{
		Sent:    p.sent.Load(),
		OK:      p.ok.Load(),
		Failed:  p.errs.total(),
		Errors:  p.errs.top(5),
		Latency: p.latency.Summary(),
		Elapsed: Duration(p.elapsed),
	}
	if p.elapsed > 0 {
		r.PerSecond = float64(r.OK) / p.elapsed.Seconds()
	}
	return r
}
