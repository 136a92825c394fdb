package handler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/stream"
)

// maxStepBytes bounds what one step of a subscription writes before it
// flushes: replay and a backlog go out in pieces of about this size.
const maxStepBytes = 64 << 10

// subscribe serves GET /api/v1/events?topic=...: the retained events after
// Last-Event-ID (header, or last_event_id query for a page's first
// connect), then live events. An id the hub cannot resume from starts the
// stream with `event: reset` saying why.
func (h *Handler) subscribe(c *gin.Context) {
	// The query is parsed here, not by c.Query: Gin keeps what it parses
	// in its context, which lives as long as the stream (about 0.4 KB).
	query := c.Request.URL.Query()
	// The patterns come first: whether a token is needed depends on them.
	patterns, err := h.subscriptionTopics(query)
	if err != nil {
		h.abortWithError(c, err)
		return
	}
	claims, err := h.checkSubscriptionToken(c, patterns)
	if err != nil {
		h.abortWithError(c, err)
		return
	}
	lastID, err := lastEventID(c.Request.Header)
	if err != nil {
		h.abortWithError(c, err)
		return
	}
	queryID, _, err := queryParam(query, "last_event_id")
	if err != nil {
		h.abortWithError(c, err)
		return
	}
	if lastID == "" {
		lastID = queryID
	}
	// The slot first: a subscription refused for it is never registered.
	st, err := h.startStream()
	if err != nil {
		h.abortWithError(c, err)
		return
	}
	defer st.end()
	ctx, wait := h.brokerWait(c.Request.Context())
	var sub stream.Subscription
	st.undo = func() {
		wait.end()
		if sub != nil {
			sub.Close()
			h.untrackSubscription(sub)
		}
	}
	sub, err = h.subscribeBroker(ctx, wait, patterns, lastID)
	if err != nil {
		sub = nil
		switch {
		case c.Request.Context().Err() != nil && statusOf(err) == http.StatusServiceUnavailable && !errors.Is(err, stream.ErrTooManySubscribers):
			// The client went away while the broker waited (the NATS
			// broker, for a slot or an answer to read its stream): no
			// refusal to count, nor to log as the store busy or
			// unreachable. A full hub refused it, gone or not: that
			// refusal is counted.
			abortUnavailable(c, err)
		case h.closing() && statusOf(err) == http.StatusServiceUnavailable:
			// Close ended the wait: a shutdown's 503.
			h.abortWithError(c, errShuttingDown)
		default:
			h.abortWithError(c, err)
		}
		return
	}

	s := st.open(c)
	if s.conn != nil {
		wait.follow(s.ctx)
	}
	if claims != nil {
		s.expireAt(h.hub.JWT.ValidUntil(claims), claims.ExpiresAt.Time)
	}
	// The stream's position comes first, so a client that goes away
	// before its first event comes back after it and misses nothing: as
	// the reset's id, or in a position event when there is no last event
	// id. (With one, the client has it already.)
	switch {
	case sub.Reset() != "":
		s.reset(sub.Reset(), sub.Position())
	case lastID == "":
		s.position(sub.Position())
	}
	h.trackSubscription(sub, wait)
	// Without a last event id there is nothing to replay: Replay is not
	// asked (it would take the broker's lock once more per stream).
	l := &subscriptionLoop{s: s, sub: sub, replayed: lastID == "", timer: time.NewTimer(s.nextHeartbeat(s.lastWrite)), wait: wait}
	if lastID != "" { // a resume: only its replay can be overtaken (resubscribe)
		l.resume = func(old stream.Subscription) (stream.Subscription, error) {
			return h.hub.Broker.Resubscribe(ctx, old, patterns, lastID)
		}
	}
	// Where the client stands: the id its first event comes after. (A
	// broker's id that is not a number leaves it 0: Idle's ids are.)
	l.at, _ = strconv.ParseUint(sub.Position(), 10, 64)
	s.run(l.step, l.cleanup)
}

// subscriptionLoop is the stream loop of one subscription: first the
// answer, then the replay and then live events, each in pieces of about
// maxStepBytes, and heartbeats while idle.
type subscriptionLoop struct {
	s   *sseStream
	sub stream.Subscription
	// pending is what is still to be sent of what Replay or Take returned
	// last (a reslice of taken).
	pending []*stream.Message
	// taken is the slice that Replay and Take append to, in lent,
	// borrowed from h.takenBufs until pending is sent and the replay is
	// done; both are nil in between. It holds one piece of the replay at
	// a time: the rest stays the broker's, which frees what its history
	// evicts.
	taken []*stream.Message
	lent  *[]*stream.Message
	timer *time.Timer // the heartbeat's
	// at is the client's last event id as far as the stream has sent it:
	// the subscription's position, then the id of each event queued and
	// of each refreshed position (refresh).
	at       uint64
	answered bool
	replayed bool         // Replay is done
	wait     *waitContext // the broker's waits for the subscription (brokerWait)
	// resume subscribes again with the stream's last event id, in place
	// of the overtaken subscription, at most maxResubscribes times: see
	// resubscribe. Nil once used up.
	resume       func(old stream.Subscription) (stream.Subscription, error)
	resubscribed int
}

// maxResubscribes is how often a stream subscribes again (resubscribe):
// once for each history that may overtake its resume before the replay
// hands out an event, the local one and then the NATS stream, whose
// replay the second answer reads. Once the stream has overtaken it, the
// answer is a reset, which nothing overtakes.
const maxResubscribes = 2

func (l *subscriptionLoop) step(w io.Writer) bool {
	s := l.s
	if !l.answered {
		// Answer at once, so the client knows it is subscribed before
		// the first event.
		l.answered = true
		return s.sendAndReset(w, l.timer)
	}
	if s.expired(w, time.Now()) {
		return false
	}
	if (len(l.pending) > 0 || !l.replayed) && (s.h.closing() || l.sub.Err() != nil) {
		// A replay or a backlog is still being sent, but the hub is
		// shutting down or the broker dropped the subscription (too slow,
		// or its history ended): stop now rather than when the client has
		// read the rest, which may take minutes. The client resumes from
		// the last id it got. A dropped subscription no longer counts
		// against hub.max_subscribers: its stream must not go on either.
		return s.stop(s.subscriptionEnd(l.sub))
	}
	if len(l.pending) == 0 && !l.replayed {
		// The next piece of the replay. When the broker no longer
		// retains it, Replay ends the subscription (too slow) and is
		// done: Take below then finds it ended.
		l.borrow()
		l.taken, l.replayed = l.sub.Replay(l.taken[:0], maxStepBytes)
		if l.replayed && len(l.taken) == 0 && l.resume != nil && errors.Is(l.sub.Err(), stream.ErrResumeOvertaken) {
			l.release()
			return l.resubscribe(w)
		}
		l.pending = l.taken
		if len(l.pending) == 0 {
			l.release() // done: no slice is held while waiting below
		}
		if len(l.pending) == 0 && !l.replayed {
			// The broker read a stretch with nothing for this
			// subscription (the NATS broker reads a page a call): ask
			// again at the next step, minding the client and the
			// heartbeat meanwhile.
			select {
			case <-s.gone:
				return s.stop(errClientGone)
			case <-l.timer.C:
				return s.sendAndReset(w, l.timer)
			default:
				return true
			}
		}
	}
	if len(l.pending) == 0 {
		// Close (h.done) ends the subscription, which closes its Ready:
		// the shared channel is not waited on. The client's going away is
		// watched here, not by a context.AfterFunc that closes the
		// subscription: that holds a registration in the request's context
		// for the whole stream, and starts a goroutine per stream when
		// clients leave (about 4 KiB of stack each, all at once when a
		// fan-out's subscribers leave together).
		select {
		case <-l.sub.Ready():
		case <-l.timer.C:
			// The timer serves the token's expiry too (nextHeartbeat).
			now := time.Now()
			if s.expired(w, now) {
				return false
			}
			l.refresh(now)
			return s.sendAndReset(w, l.timer)
		case <-s.gone:
			return s.stop(errClientGone)
		}
		if !l.take() {
			return s.stop(s.subscriptionEnd(l.sub))
		}
	}
	rest := s.queueMessages(l.pending)
	if n := len(l.pending) - len(rest); n > 0 {
		l.at = l.pending[n-1].ID
	}
	l.pending = rest
	if len(l.pending) == 0 {
		// The frames are copied: the Messages are let go before the
		// write, which may block for as long as the client does not read.
		// A replay keeps its slice until it is done.
		if l.replayed {
			l.release()
		} else {
			clear(l.taken)
		}
	}
	// The timer is left as it is: when it fires, send sees whether a
	// heartbeat is due yet. Resetting it here would cost a runtime timer
	// update per step.
	return s.send(w, time.Now())
}

// resubscribe answers a resume whose position the broker's history let go
// of before its replay handed out an event (stream.ErrResumeOvertaken,
// most often a resume from the oldest id held while events are
// published): the client was sent nothing of it, so the stream subscribes
// again with the same last event id, as the client would on reconnecting,
// and goes on with that answer: an `event: reset` and live events, or
// with the NATS broker a replay read from its stream. Dropped instead,
// the client came back to that same answer after its retry delay. The
// second subscription takes over the first one's place among
// hub.max_subscribers (Broker.Resubscribe): on a full hub, freed first,
// it went to another client, and the stream ended with nothing sent. It
// is done at most maxResubscribes times: with the NATS broker, the
// stream may overtake the second subscription's replay as the local
// history did the first one's, when its first page matched nothing (it
// was done once, and the stream ended as dropped with nothing sent).
func (l *subscriptionLoop) resubscribe(w io.Writer) bool {
	s, resume := l.s, l.resume
	if l.resubscribed++; l.resubscribed == maxResubscribes {
		l.resume = nil
	}
	sub, err := resume(l.sub)
	if err != nil {
		// A client gone, or a shutdown, while the broker waited (the NATS
		// broker, for a slot to read its stream) is why it failed.
		if end := s.subscriptionEnd(l.sub); !errors.Is(end, errDropped) {
			return s.stop(end)
		}
		return s.stop(fmt.Errorf("%w: %w; subscribing again: %w", errDropped, l.sub.Err(), err))
	}
	l.sub.Close()
	s.h.untrackSubscription(l.sub)
	l.sub = sub
	s.h.trackSubscription(sub, l.wait)
	// The stream began with no reset: a subscription with a Reset is
	// never overtaken (stream.Subscription's Reset), so the client is
	// told of one here for the first time.
	if sub.Reset() != "" {
		s.reset(sub.Reset(), sub.Position())
	}
	l.at, _ = strconv.ParseUint(sub.Position(), 10, 64)
	l.replayed = false
	return s.send(w, time.Now())
}

// refresh queues the subscription's position in place of a heartbeat that
// is due, when the broker has gone past the client's last event id with
// nothing for this subscription: the client then comes back from there. A
// client on quiet topics of a busy hub would otherwise come back with an
// id the history let go of meanwhile, and be reset although it missed
// nothing. Only while idle, at most once a heartbeat interval.
func (l *subscriptionLoop) refresh(now time.Time) {
	s := l.s
	if len(s.buf) > 0 || now.Sub(s.lastWrite) < s.h.stream.HeartbeatInterval {
		return
	}
	if id, ok := l.sub.Idle(); ok && id > l.at {
		l.at = id
		s.position(strconv.FormatUint(id, 10))
	}
}

// take moves into pending the oldest events the subscription queued, a
// step's worth (maxStepBytes): the rest stays queued, where it counts
// against hub.subscriber_buffer, so a subscriber that reads slowly is
// dropped once that many wait behind the step it is being written, not
// twice that. A subscription that has ended (dropped) hands out the rest
// at once (Subscription.Take), and so is it taken while the hub shuts
// down, so that the stream stops after this piece (step), as with a
// backlog it holds, rather than send the queue piece by piece for as long
// as the client reads. It reports false when the subscription has ended
// and nothing is left.
func (l *subscriptionLoop) take() bool {
	l.borrow()
	var open bool
	l.taken, open = l.sub.Take(l.taken[:0], maxStepBytes)
	if len(l.taken) > 0 && l.s.h.closing() {
		l.taken, _ = l.sub.Take(l.taken, 0)
	}
	l.pending = l.taken
	return open
}

// borrow makes taken a slice lent by h.takenBufs, if it is not one yet.
func (l *subscriptionLoop) borrow() {
	if l.lent == nil {
		l.lent = l.s.h.takenBufs.get()
		l.taken = *l.lent
	}
}

// release gives taken back, with the sent Messages dropped from it.
func (l *subscriptionLoop) release() {
	if l.lent != nil {
		*l.lent = l.taken
		l.s.h.takenBufs.put(l.lent)
		l.lent, l.taken = nil, nil
	}
}

func (l *subscriptionLoop) cleanup() {
	l.timer.Stop()
	l.pending = nil
	l.release()
	// A subscriber the broker dropped (too slow, or its NATS stream
	// replaced) was dropped for that, and a slow one is counted there;
	// its write may time out after that, and must not count as a slow
	// subscriber. One overtaken before its replay (resubscribe) fell
	// behind nothing: its stream ended for another reason, a client gone
	// or a shutdown while it subscribed again, or says itself that it
	// was dropped.
	err := l.sub.Err()
	dropped := err != nil && !errors.Is(err, stream.ErrClosed) && !errors.Is(err, stream.ErrResumeOvertaken)
	if (errors.Is(l.s.end, os.ErrDeadlineExceeded) || errors.Is(l.s.end, errStoppedReading)) && !dropped {
		l.s.h.metrics.writeTimeouts.Add(1)
	}
	if dropped {
		l.s.dropped(err)
	}
	l.sub.Close()
	l.wait.end()
	l.s.h.untrackSubscription(l.sub)
}

// subscriptionTopics reads and checks the topic parameters.
func (h *Handler) subscriptionTopics(query url.Values) ([]string, error) {
	patterns := query["topic"]
	if len(patterns) == 0 {
		return nil, badRequest("topic is required: /api/v1/events?topic=news.sports")
	}
	if len(patterns) > h.hub.MaxTopicsPerSubscription {
		return nil, badRequest("%d topics: at most %d per subscription", len(patterns), h.hub.MaxTopicsPerSubscription)
	}
	for _, p := range patterns {
		if err := stream.ValidatePattern(p); err != nil {
			return nil, err
		}
	}
	return patterns, nil
}

// queueMessages queues messages until the step holds maxStepBytes and
// returns the rest.
func (s *sseStream) queueMessages(msgs []*stream.Message) []*stream.Message {
	for len(msgs) > 0 && len(s.buf) < maxStepBytes {
		s.queue(msgs[0].Frame, 1)
		msgs = msgs[1:]
	}
	return msgs
}

// sendAndReset sends the step and restarts the heartbeat timer: the next
// heartbeat is due a full interval after this write.
func (s *sseStream) sendAndReset(w io.Writer, timer *time.Timer) bool {
	now := time.Now()
	if !s.send(w, now) {
		return false
	}
	timer.Reset(s.nextHeartbeat(now))
	return true
}

// subscriptionEnd names why a subscription ended.
func (s *sseStream) subscriptionEnd(sub stream.Subscription) error {
	select {
	case <-s.gone:
		return errClientGone
	default:
	}
	err := sub.Err()
	switch {
	case s.h.closing(), err == nil, errors.Is(err, stream.ErrClosed):
		return errShuttingDown
	default:
		return fmt.Errorf("%w: %w", errDropped, err)
	}
}

// dropped makes the stream's end errDropped, wrapping why (the
// subscription's Err), when the broker dropped its subscription: whatever
// ended the stream then, most often its blocked write timing out, is how
// the stream learnt it, not why it ended. A panic keeps its own reason.
func (s *sseStream) dropped(why error) {
	switch {
	case errors.Is(s.end, errDropped), errors.Is(s.end, errPanicked):
	case s.end == nil:
		s.end = fmt.Errorf("%w: %w", errDropped, why)
	default:
		s.end = fmt.Errorf("%w: %w; then %w", errDropped, why, s.end)
	}
}

// trackSubscription records an open subscription, and the context the
// broker's waits for it end with, for Close to end both. One that opens
// after Close ends at once.
func (h *Handler) trackSubscription(sub stream.Subscription, wait *waitContext) {
	h.mu.Lock()
	closed := h.closed
	if !closed {
		h.subs[sub] = wait
		h.subsPeak = max(h.subsPeak, len(h.subs))
	}
	h.mu.Unlock()
	if closed {
		sub.Close()
		wait.interrupt()
	}
}

// minShrinkPeak is the fewest subscriptions h.subs must have held for
// untrackSubscription to make it again: below it, it keeps a few KiB.
const minShrinkPeak = 64

// untrackSubscription forgets sub, and makes the record of subscriptions
// again, smaller, once it holds half of its peak or fewer: a Go map keeps
// the memory of the most entries it held (some 870 KB after 20,000
// subscriptions left), and the copying costs one copy per deleted entry
// at most, on average.
func (h *Handler) untrackSubscription(sub stream.Subscription) {
	h.mu.Lock()
	delete(h.subs, sub)
	if !h.closed && h.subsPeak >= minShrinkPeak && len(h.subs) <= h.subsPeak/2 {
		subs := make(map[stream.Subscription]*waitContext, len(h.subs))
		maps.Copy(subs, h.subs)
		h.subs, h.subsPeak = subs, len(subs)
	}
	h.mu.Unlock()
}

// contextSubscriber is a Broker whose Subscribe may wait, and stops
// waiting once the client's request ends (the NATS broker, reading its
// stream for a resume).
type contextSubscriber interface {
	SubscribeContext(ctx context.Context, patterns []string, lastEventID string) (stream.Subscription, error)
}

// waitContext ends the context a broker's waits for one subscription end
// with (brokerWait): with the stream, and at Close (interrupt). Its
// methods do nothing on a nil one.
type waitContext struct {
	cancel context.CancelFunc
	stop   func() bool // stops what ends the context with another one
}

// brokerWait returns the context a broker that may wait (the NATS broker,
// reading its stream a page at a time for a resume) waits within for a
// subscription, or the request's with a nil waitContext for a broker that
// does not. It ends with the stream, and when Close ends the subscription
// (trackSubscription): a stream waiting for the broker then (a resume
// subscribing again, or a page read, waiting for a read slot) ended only
// once the broker gave up, its publish timeout later (5 s), and held the
// shutdown that long. With Gin it is the request's child. A detached
// stream runs on after its handler returned, which ends the request's
// context; a page read that had to wait for a read slot then failed at
// once, and the stream ended (TestDeepResumeOverTheDetachedTransport in
// natsbroker). Its context ends with the request's until follow hands it
// to the detached stream's, and at the latest when end is called.
func (h *Handler) brokerWait(req context.Context) (context.Context, *waitContext) {
	if _, ok := h.hub.Broker.(contextSubscriber); !ok {
		return req, nil
	}
	if h.detached == nil {
		ctx, cancel := context.WithCancel(req)
		return ctx, &waitContext{cancel: cancel, stop: untied}
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(req))
	return ctx, &waitContext{cancel: cancel, stop: context.AfterFunc(req, cancel)}
}

// untied is the stop of a context that nothing else ends.
func untied() bool { return false }

// follow makes the context end with detached, the detached stream's, and
// no longer with the request's: a client gone while its stream waits for
// a page no longer has one read for it.
func (w *waitContext) follow(detached context.Context) {
	if w != nil && w.stop() {
		w.stop = context.AfterFunc(detached, w.cancel)
	}
}

// end ends the context, and what tied it to another: the stream ended,
// or never started. Stopped first, the tie runs no goroutine.
func (w *waitContext) end() {
	if w != nil {
		w.stop()
		w.cancel()
	}
}

// interrupt ends the context, for Close: the broker's waits end with the
// hub, as its streams do. Unlike end, it may be called from any
// goroutine; the stream's end still unties the context.
func (w *waitContext) interrupt() {
	if w != nil {
		w.cancel()
	}
}

// subscribeBroker subscribes through the broker, for as long as ctx lasts
// where the broker can be told (brokerWait, wait), and no longer than the
// Handler is open: the subscription is not tracked yet, for Close to end
// its wait (trackSubscription).
func (h *Handler) subscribeBroker(ctx context.Context, wait *waitContext, patterns []string, lastID string) (stream.Subscription, error) {
	if b, ok := h.hub.Broker.(contextSubscriber); ok {
		stop := context.AfterFunc(h.closedCtx, wait.interrupt)
		defer stop()
		return b.SubscribeContext(ctx, patterns, lastID)
	}
	return h.hub.Broker.Subscribe(patterns, lastID)
}
