package handler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/natsbroker"
	"github.com/ssehub/ssehub/internal/stream"
	"github.com/ssehub/ssehub/internal/testlog"
)

const testToken = "s3cret-token"

// hubOptions are test Options with a hub on a fresh broker of this pass
// (newTestBroker), with the settings of mem that it has.
func hubOptions(t testing.TB, mem stream.MemoryOptions) (Options, testBroker) {
	t.Helper()
	broker := newTestBroker(t, mem)
	opts := testOptions()
	opts.Hub = HubOptions{Broker: broker, PublishTokens: []string{"other", testToken}, MaxEventBytes: 1024, MaxTopicsPerSubscription: 3}
	return opts, broker
}

func newHubServer(t *testing.T) *testServer {
	opts, _ := hubOptions(t, stream.MemoryOptions{FirstID: 1})
	return newTestServer(t, opts)
}

// publish posts an event and returns the answer's id; it fails the test
// unless the hub answers 201.
func (ts *testServer) publish(t *testing.T, topic, body string) string {
	t.Helper()
	resp := ts.do(t, "POST", "/api/v1/topics/"+topic+"/events", strings.NewReader(body), map[string]string{
		"Authorization": "Bearer " + testToken, "Content-Type": "application/json",
	})
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("publish to %s: %d %s", topic, resp.StatusCode, b)
	}
	var out struct{ ID, Topic string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.ID == "" || out.Topic != topic {
		t.Fatalf("publish answer %+v, %v", out, err)
	}
	return out.ID
}

// subscribe opens a subscription and returns its parser.
func (ts *testServer) subscribe(t *testing.T, query string, header map[string]string) *stream.Parser {
	t.Helper()
	resp := ts.do(t, "GET", "/api/v1/events?"+query, nil, header)
	wantStreamHeaders(t, resp)
	return stream.NewParser(resp.Body)
}

// next returns the next event, the position a live-only stream starts
// with left out (nextEvent).
func next(t *testing.T, p *stream.Parser) stream.Event {
	t.Helper()
	ev, err := nextEvent(p)
	if err != nil {
		t.Fatal(err)
	}
	ev.Retry, ev.Comment = 0, ""
	return ev
}

// nextEvent is p.Next without the position event a live-only stream
// starts with (TestHubLiveOnlyStreamStartsWithItsPosition).
func nextEvent(p *stream.Parser) (stream.Event, error) {
	for {
		ev, err := p.Next()
		if err != nil || ev.Type != "position" {
			return ev, err
		}
	}
}

func TestHubDeliversMatchingEventsLive(t *testing.T) {
	ts := newHubServer(t)
	p := ts.subscribe(t, "topic=news.*&topic=alerts", nil)
	id1 := ts.publish(t, "news.sports", `{"event": "score", "data": "2:1\nfinal"}`)
	ts.publish(t, "weather", `{"data": "not subscribed"}`)
	ts.publish(t, "news.sports.extra", `{"data": "too deep for *"}`)
	id2 := ts.publish(t, "alerts", `{"data": {"level": 3, "text": "a b"}}`)
	id3 := ts.publish(t, "news.tech", `{"data": [1, 2,  3]}`)
	want := []stream.Event{
		{ID: id1, Type: "score", Data: "2:1\nfinal"},
		{ID: id2, Data: `{"level":3,"text":"a b"}`},
		{ID: id3, Data: `[1,2,3]`},
	}
	for i, w := range want {
		if got := next(t, p); got != w {
			t.Errorf("event %d: %+v, want %+v", i, got, w)
		}
	}
}

func TestHubIDsIncreaseAcrossTopics(t *testing.T) {
	ts := newHubServer(t)
	var last int
	for i := range 10 {
		id, err := strconv.Atoi(ts.publish(t, fmt.Sprintf("t%d", i%3), `{"data": 1}`))
		if err != nil || id <= last {
			t.Fatalf("id %d after %d (%v)", id, last, err)
		}
		last = id
	}
}

func TestHubResumesWithLastEventID(t *testing.T) {
	for _, how := range []string{"header", "query"} {
		t.Run(how, func(t *testing.T) {
			ts := newHubServer(t)
			first := ts.publish(t, "a", `{"data": "1"}`)
			ts.publish(t, "b", `{"data": "other topic"}`)
			second := ts.publish(t, "a", `{"data": "2"}`)
			query, header := "topic=a", map[string]string{}
			if how == "header" {
				header["Last-Event-ID"] = first
			} else {
				query += "&last_event_id=" + first
			}
			p := ts.subscribe(t, query, header)
			if got := next(t, p); got.ID != second || got.Data != "2" {
				t.Fatalf("replayed %+v, want id %s", got, second)
			}
			third := ts.publish(t, "a", `{"data": "3"}`)
			if got := next(t, p); got.ID != third {
				t.Fatalf("live %+v, want id %s", got, third)
			}
		})
	}
}

// A last event id the hub cannot resume from: the stream starts with a
// reset saying why, then live events. The reset's id is where the stream
// goes on from: a client that goes away before the next event and comes
// back with it gets what was published meanwhile. (Without an id, it came
// back with the same id, was reset again, and missed those events.)
// Ids are strings: one the hub never sent, though it reads as the number
// of one ("0" before an id, "+" before it), is not that one's.
func TestHubResetWhenItCannotResume(t *testing.T) {
	for _, id := range []string{"garbage", "99999999999999999", "0{before}", "00{before}", "+{before}"} {
		t.Run(id, func(t *testing.T) {
			ts := newHubServer(t)
			before := ts.publish(t, "a", `{"data": "before"}`)
			id := strings.ReplaceAll(id, "{before}", before)
			p := ts.subscribe(t, "topic=a", map[string]string{"Last-Event-ID": id})
			// Published now, so that a stream that resumed instead of
			// resetting has an event to show it by.
			live := ts.publish(t, "a", `{"data": "after"}`)
			reset := next(t, p)
			if reset.Type != "reset" || reset.Data == "" || reset.ID == "" {
				t.Fatalf("first event %+v, want a reset saying why, with an id", reset)
			}
			if got := next(t, p); got.ID != live || got.Data != "after" {
				t.Fatalf("after reset %+v, want live id %s", got, live)
			}
			again := ts.subscribe(t, "topic=a", map[string]string{"Last-Event-ID": reset.ID})
			if got := next(t, again); got.ID != live || got.Data != "after" {
				t.Fatalf("back with the reset's id %s: %+v, want id %s", reset.ID, got, live)
			}
		})
	}
}

// evictingBroker is a broker that publishes evict events to topic "other"
// right after its first resuming subscription is made: what a busy hub
// may publish between a stream's subscribing and its first read of the
// replay (the answer's write, which may wait for the client, comes
// between them). A NATS broker's publish returns once its event is in the
// local history.
type evictingBroker struct {
	testBroker
	evict int
	done  atomic.Bool
}

func (b *evictingBroker) Subscribe(patterns []string, lastEventID string) (stream.Subscription, error) {
	return b.evictAfter(lastEventID)(b.testBroker.Subscribe(patterns, lastEventID))
}

// evictAfter returns what publishes the events after a subscription with
// lastEventID is made, once.
func (b *evictingBroker) evictAfter(lastEventID string) func(stream.Subscription, error) (stream.Subscription, error) {
	return func(sub stream.Subscription, err error) (stream.Subscription, error) {
		if err != nil || lastEventID == "" || b.done.Swap(true) {
			return sub, err
		}
		for range b.evict {
			if _, _, err := b.Publish(stream.Publication{Topic: "other", Data: "{}"}); err != nil {
				sub.Close()
				return nil, err
			}
		}
		return sub, nil
	}
}

// evictingContextBroker is evictingBroker for a broker whose Subscribe
// may wait (the NATS broker: contextSubscriber).
type evictingContextBroker struct{ *evictingBroker }

func (b evictingContextBroker) SubscribeContext(ctx context.Context, patterns []string, lastEventID string) (stream.Subscription, error) {
	return b.evictAfter(lastEventID)(b.testBroker.(contextSubscriber).SubscribeContext(ctx, patterns, lastEventID))
}

// A resume from the oldest id the history holds, whose replay's start the
// history lets go of before the stream reads it, is answered as a resume
// from that id is now, on the same stream: on the memory broker an `event:
// reset` (an event of its topic was let go of), then live events; on the
// NATS broker, whose stream still holds the events, the replay read from
// the stream, with no reset. It was dropped as too slow, sent nothing, and
// the client came back with the same id to that answer.
func TestHubResumeOvertakenBeforeItsReplayIsAnsweredAtOnce(t *testing.T) {
	// About 110 bytes an event here, 125 on NATS (longer ids), much less
	// in the NATS stream: the local history holds the 5 events published
	// first, the last 4 on NATS, and the NATS stream all of them.
	opts, tb := hubOptions(t, stream.MemoryOptions{HistorySize: 100, HistoryMaxBytes: 600, FirstID: 1})
	broker := &evictingBroker{testBroker: tb, evict: 2}
	opts.Hub.Broker = broker
	if _, ok := tb.(contextSubscriber); ok {
		opts.Hub.Broker = evictingContextBroker{broker}
	}
	ts := newTestServer(t, opts)
	oldest := ts.publish(t, "other", `{"data": "before"}`)
	missed := ts.publish(t, "a", `{"data": "let go of"}`)
	for range 3 {
		ts.publish(t, "other", `{"data": "before"}`)
	}
	p := ts.subscribe(t, "topic=a", map[string]string{"Last-Event-ID": oldest})
	first, err := nextEvent(p)
	if err != nil {
		t.Fatalf("first event: %v, want an answer to the resume", err)
	}
	if testNATS == nil {
		if first.Type != "reset" || !strings.Contains(first.Data, "older than the retained history") || first.ID != "7" {
			t.Fatalf("first event %+v, want a reset with id 7, the newest", first)
		}
	} else if first.ID != missed || first.Data != "let go of" {
		t.Fatalf("first event %+v, want %s read from the stream", first, missed)
	}
	live := ts.publish(t, "a", `{"data": "after"}`)
	if got := next(t, p); got.ID != live || got.Data != "after" {
		t.Fatalf("after %+v: %+v, want live id %s", first, got, live)
	}
	if st := tb.Stats(); st.Dropped != 0 {
		t.Errorf("%d subscribers dropped, want none", st.Dropped)
	}
}

// A resume from before a restart starts with `event: reset` and replays
// every retained event; when the history lets go of the oldest of them
// before the stream reads its replay, the replay starts where the history
// then does: the client was told events may have been missed. One reset
// (one stream in ssehub_stream_resets_total, one onReset in
// hub-client.js), then live events. The stream subscribed again, to a
// replay of every retained event again, which a busy hub overtook again
// before the stream read it: the stream ended, counted as dropped.
func TestHubResumeFromBeforeARestartOvertakenResetsOnce(t *testing.T) {
	skipOnNATS(t, "the memory broker replays every retained event to a resume from before its restart")
	opts, tb := hubOptions(t, stream.MemoryOptions{HistorySize: 5, FirstID: 100})
	opts.Hub.Broker = &evictingEachBroker{testBroker: tb, resumes: 2, evict: 2}
	ts := newTestServer(t, opts)
	for range 5 {
		ts.publish(t, "other", `{"data": "before"}`) // ids 100..104
	}
	p := ts.subscribe(t, "topic=a", map[string]string{"Last-Event-ID": "5"})
	if ev, err := p.Next(); err != nil || ev.Type != "reset" || !strings.Contains(ev.Data, "before the hub restarted") || ev.ID != "99" {
		t.Fatalf("first event %+v, %v; want a reset with id 99", ev, err)
	}
	live := ts.publish(t, "a", `{"data": "after"}`)
	if got, err := nextEvent(p); err != nil || got.ID != live || got.Data != "after" {
		t.Fatalf("then %+v, %v; want live id %s", got, err, live)
	}
	waitMetrics(t, ts, []string{`ssehub_stream_resets_total 1`, `ssehub_streams_ended_total{reason="dropped"} 0`})
}

// evictingEachBroker is a broker that publishes evict events to topic
// "other" right after each of its first resumes resuming subscriptions is
// made: a busy hub, whatever the stream subscribes, and however
// (Subscribe, or Resubscribe in place of an overtaken one).
type evictingEachBroker struct {
	testBroker
	resumes, evict int32
	made           atomic.Int32
}

func (b *evictingEachBroker) Subscribe(patterns []string, lastEventID string) (stream.Subscription, error) {
	return b.evictAfter(lastEventID)(b.testBroker.Subscribe(patterns, lastEventID))
}

func (b *evictingEachBroker) Resubscribe(ctx context.Context, old stream.Subscription, patterns []string, lastEventID string) (stream.Subscription, error) {
	return b.evictAfter(lastEventID)(b.testBroker.Resubscribe(ctx, old, patterns, lastEventID))
}

// evictAfter publishes the events after a subscription with lastEventID
// is made, while it is one of the first resumes.
func (b *evictingEachBroker) evictAfter(lastEventID string) func(stream.Subscription, error) (stream.Subscription, error) {
	return func(sub stream.Subscription, err error) (stream.Subscription, error) {
		if err != nil || lastEventID == "" || b.made.Add(1) > b.resumes {
			return sub, err
		}
		for range b.evict {
			if _, _, err := b.Publish(stream.Publication{Topic: "other", Data: "{}"}); err != nil {
				sub.Close()
				return nil, err
			}
		}
		return sub, nil
	}
}

// resubscribeSignal is evictingContextBroker that closes again when a
// stream subscribes a second time with a last event id: the resubscribe
// of a resume overtaken before its replay.
type resubscribeSignal struct {
	evictingContextBroker
	calls atomic.Int32
	again chan struct{}
}

func (b *resubscribeSignal) SubscribeContext(ctx context.Context, patterns []string, lastEventID string) (stream.Subscription, error) {
	b.count(lastEventID)
	return b.evictingContextBroker.SubscribeContext(ctx, patterns, lastEventID)
}

func (b *resubscribeSignal) Resubscribe(ctx context.Context, old stream.Subscription, patterns []string, lastEventID string) (stream.Subscription, error) {
	b.count(lastEventID)
	return b.evictingContextBroker.Resubscribe(ctx, old, patterns, lastEventID)
}

func (b *resubscribeSignal) count(lastEventID string) {
	if lastEventID != "" && b.calls.Add(1) == 2 {
		close(b.again)
	}
}

// A client gone while its stream subscribes again, after its resume was
// overtaken before its replay, ends as client_gone: the NATS broker's
// read of the replay from its stream, waiting for a slot to hold its page
// (all taken by other deep resumes), ends with the client. It ended as
// dropped, as if the broker had dropped it.
func TestHubClientGoneWhileItsResumeSubscribesAgain(t *testing.T) {
	if testNATS == nil {
		t.Skip("on the NATS broker only: its resubscribe may wait, for a slot to read its stream")
	}
	opts, tb := hubOptions(t, stream.MemoryOptions{HistorySize: 100, HistoryMaxBytes: 600})
	broker := &resubscribeSignal{evictingContextBroker: evictingContextBroker{&evictingBroker{testBroker: tb, evict: 2}}, again: make(chan struct{})}
	opts.Hub.Broker = broker
	ts := newTestServer(t, opts)
	deep := ts.publish(t, "other", `{"data": "before"}`)
	oldest := ts.publish(t, "other", `{"data": "before"}`)
	ts.publish(t, "a", `{"data": "let go of"}`)
	for range 3 {
		ts.publish(t, "other", `{"data": "before"}`)
	}
	holdEveryPageSlot(t, tb, deep)
	resp := ts.do(t, "GET", "/api/v1/events?topic=a", nil, map[string]string{"Last-Event-ID": oldest})
	wantStreamHeaders(t, resp)
	<-broker.again
	resp.Body.Close()
	ts.waitReturned(t, "/api/v1/events")
	waitMetrics(t, ts, []string{
		`ssehub_streams_active 0`,
		`ssehub_streams_ended_total{reason="client_gone"} 1`,
		`ssehub_streams_ended_total{reason="dropped"} 0`,
	})
}

// A shutdown ends at once a stream whose resume, overtaken before its
// replay, subscribes again and waits for the NATS stream (for a slot to
// read it, all of them held): the hub's Close ends the wait, as it ends
// the stream. The wait went on until the broker gave up on it
// (PublishTimeout, here a minute), and held the shutdown that long.
func TestHubShutdownEndsAResubscribeWaitingForTheStore(t *testing.T) {
	if testNATS == nil {
		t.Skip("on the NATS broker only: its resubscribe may wait, for a slot to read its stream")
	}
	tb := testNATS.newBroker(t, stream.MemoryOptions{HistorySize: 100, HistoryMaxBytes: 600}, func(o *natsbroker.Options) {
		o.PublishTimeout = time.Minute
	})
	opts := testOptions()
	var logs testlog.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	broker := &resubscribeSignal{evictingContextBroker: evictingContextBroker{&evictingBroker{testBroker: tb, evict: 2}}, again: make(chan struct{})}
	opts.Hub = HubOptions{Broker: broker, PublishTokens: []string{"other", testToken}, MaxEventBytes: 1024, MaxTopicsPerSubscription: 3}
	ts := newTestServer(t, opts)
	deep := ts.publish(t, "other", `{"data": "before"}`)
	oldest := ts.publish(t, "other", `{"data": "before"}`)
	ts.publish(t, "a", `{"data": "let go of"}`)
	for range 3 {
		ts.publish(t, "other", `{"data": "before"}`)
	}
	holdEveryPageSlot(t, tb, deep)
	resp := ts.do(t, "GET", "/api/v1/events?topic=a", nil, map[string]string{"Last-Event-ID": oldest})
	defer resp.Body.Close()
	wantStreamHeaders(t, resp)
	<-broker.again
	ts.h.Close()
	ts.waitReturned(t, "/api/v1/events") // its end logged
	waitMetrics(t, ts, []string{
		`ssehub_streams_active 0`,
		`ssehub_streams_ended_total{reason="shutting_down"} 1`,
		`ssehub_subscribers 64`,
	})
	// Its subscription fell behind nothing: the stream was not dropped.
	if n := logs.Count(`msg="stream ended"`); n != 1 || logs.Count(`reason="shutting down"`) != 1 {
		t.Errorf("%d stream ended lines, want 1 saying shutting down:\n%s", n, logs.String())
	}
}

// holdEveryPageSlot holds every slot for reading a page of the NATS
// stream (64 with these tests' history bytes) with resumes from deep, on
// topic a, that do not read: a resume that must read the stream waits.
func holdEveryPageSlot(t *testing.T, b Broker, deep string) {
	t.Helper()
	for range 64 {
		sub, err := b.Subscribe([]string{"a"}, deep)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sub.Close)
	}
}

// subscribeSignal is a broker whose Subscribe may wait that closes
// subscribing when a resume asks to subscribe.
type subscribeSignal struct {
	testBroker
	subscribing chan struct{}
	once        sync.Once
}

func (b *subscribeSignal) SubscribeContext(ctx context.Context, patterns []string, lastEventID string) (stream.Subscription, error) {
	if lastEventID != "" {
		b.once.Do(func() { close(b.subscribing) })
	}
	return b.testBroker.(contextSubscriber).SubscribeContext(ctx, patterns, lastEventID)
}

// A shutdown answers at once a resume whose request waits for the NATS
// stream (for a slot to read it, all of them held) when it comes: 503
// shutting down, which counts no refusal. It waited until the broker gave
// up (PublishTimeout, here a minute), held the shutdown that long, and
// was counted as refused for the store.
func TestHubShutdownAnswersAResumeWaitingForTheStore(t *testing.T) {
	if testNATS == nil {
		t.Skip("on the NATS broker only: its subscribe may wait, for a slot to read its stream")
	}
	tb := testNATS.newBroker(t, stream.MemoryOptions{HistorySize: 100, HistoryMaxBytes: 600}, func(o *natsbroker.Options) {
		o.PublishTimeout = time.Minute
	})
	opts := testOptions()
	broker := &subscribeSignal{testBroker: tb, subscribing: make(chan struct{})}
	opts.Hub = HubOptions{Broker: broker, PublishTokens: []string{"other", testToken}, MaxEventBytes: 1024, MaxTopicsPerSubscription: 3}
	ts := newTestServer(t, opts)
	deep := ts.publish(t, "other", `{"data": "before"}`)
	ts.publish(t, "a", `{"data": "after"}`)
	for range 4 {
		ts.publish(t, "other", `{"data": "after"}`)
	}
	holdEveryPageSlot(t, tb, deep)
	answer := make(chan *http.Response, 1)
	go func() {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", ts.URL+"/api/v1/events?topic=a", nil)
		req.Header.Set("Last-Event-ID", deep)
		resp, err := ts.Client().Do(req)
		if err != nil {
			resp = nil
		}
		answer <- resp
	}()
	<-broker.subscribing
	ts.h.Close()
	ts.waitReturned(t, "/api/v1/events")
	resp := <-answer
	if resp == nil {
		t.Fatal("no answer")
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "shutting down") {
		t.Errorf("answer %d %s, want 503 shutting down", resp.StatusCode, body)
	}
	waitMetrics(t, ts, []string{
		`ssehub_requests_refused_total{reason="store_busy"} 0`,
		`ssehub_requests_refused_total{reason="store_full"} 0`,
		`ssehub_requests_refused_total{reason="store_unreachable"} 0`,
		`ssehub_subscribers 64`,
	})
}

// slotTaker is evictingBroker whose stream's second subscription with a
// last event id, the resubscribe of a resume overtaken before its
// replay, comes after another client's request to subscribe (take): on a
// full broker, the other client asks for the place the overtaken
// subscription holds.
type slotTaker struct {
	*evictingBroker
	take    func()
	resumes atomic.Int32
}

func (b *slotTaker) before(lastEventID string) {
	if lastEventID != "" && b.resumes.Add(1) == 2 {
		b.take()
	}
}

func (b *slotTaker) Subscribe(patterns []string, lastEventID string) (stream.Subscription, error) {
	b.before(lastEventID)
	return b.evictingBroker.Subscribe(patterns, lastEventID)
}

func (b *slotTaker) Resubscribe(ctx context.Context, old stream.Subscription, patterns []string, lastEventID string) (stream.Subscription, error) {
	b.before(lastEventID)
	return b.evictingBroker.Resubscribe(ctx, old, patterns, lastEventID)
}

// slotTakerContext is slotTaker for a broker whose Subscribe may wait
// (the NATS broker: contextSubscriber).
type slotTakerContext struct{ *slotTaker }

func (b slotTakerContext) SubscribeContext(ctx context.Context, patterns []string, lastEventID string) (stream.Subscription, error) {
	b.before(lastEventID)
	return evictingContextBroker{b.evictingBroker}.SubscribeContext(ctx, patterns, lastEventID)
}

// A resume overtaken before its replay keeps its place among
// hub.max_subscribers while its stream subscribes again: on a full hub,
// another client asking for a subscription meanwhile is refused (503,
// counted as max_subscribers), and the stream goes on with the answer to
// its resume. The overtaken subscription's place was freed first, the
// other client took it, and the stream's second subscribe was refused:
// its client got no answer, only the end of the stream, counted as
// dropped, and no refusal was counted.
func TestHubResumeOvertakenKeepsItsPlaceOnAFullHub(t *testing.T) {
	opts, tb := hubOptions(t, stream.MemoryOptions{HistorySize: 100, HistoryMaxBytes: 600, FirstID: 1, MaxSubscribers: 1})
	broker := &slotTaker{evictingBroker: &evictingBroker{testBroker: tb, evict: 2}}
	opts.Hub.Broker = broker
	if _, ok := tb.(contextSubscriber); ok {
		opts.Hub.Broker = slotTakerContext{broker}
	}
	ts := newTestServer(t, opts)
	other := make(chan int, 1)
	broker.take = func() {
		// Another client, on a connection of its own, while the stream's
		// handler waits for its answer.
		resp, err := ts.Client().Get(ts.URL + "/api/v1/events?topic=b")
		if err != nil {
			other <- 0
			return
		}
		// A stream it got is ended when the test ends.
		t.Cleanup(func() { resp.Body.Close() })
		other <- resp.StatusCode
	}
	oldest := ts.publish(t, "other", `{"data": "before"}`)
	missed := ts.publish(t, "a", `{"data": "let go of"}`)
	for range 3 {
		ts.publish(t, "other", `{"data": "before"}`)
	}
	p := ts.subscribe(t, "topic=a", map[string]string{"Last-Event-ID": oldest})
	first, err := nextEvent(p)
	if err != nil {
		t.Fatalf("first event: %v, want an answer to the resume", err)
	}
	if testNATS == nil {
		if first.Type != "reset" || first.ID != "7" {
			t.Fatalf("first event %+v, want a reset with id 7, the newest", first)
		}
	} else if first.ID != missed || first.Data != "let go of" {
		t.Fatalf("first event %+v, want %s read from the stream", first, missed)
	}
	if got := <-other; got != http.StatusServiceUnavailable {
		t.Fatalf("the other client's subscribe: %d, want 503: the hub is full", got)
	}
	live := ts.publish(t, "a", `{"data": "after"}`)
	if got := next(t, p); got.ID != live || got.Data != "after" {
		t.Fatalf("after %+v: %+v, want live id %s", first, got, live)
	}
	waitMetrics(t, ts, []string{
		`ssehub_requests_refused_total{reason="max_subscribers"} 1`,
		`ssehub_streams_ended_total{reason="dropped"} 0`,
		`ssehub_subscribers 1`,
	})
}

// A live-only subscription starts with its position: after the retry
// field, `event: position` with the newest id and no data, which a page
// listening to message events does not see, and whose id EventSource
// takes as its last event id. A client that goes away before its first
// event comes back with it and gets what was published meanwhile; without
// it the client came back live-only and missed those events for good.
func TestHubLiveOnlyStreamStartsWithItsPosition(t *testing.T) {
	ts := newHubServer(t)
	before := ts.publish(t, "other", `{"data": "a history before"}`)
	resp := ts.do(t, "GET", "/api/v1/events?topic=a", nil, nil)
	wantStreamHeaders(t, resp)
	first := firstEvent(t, resp.Body)
	if first.Type != "position" || first.ID != before || first.Data != "" {
		t.Fatalf("first event %+v, want a position event with id %s and no data", first, before)
	}
	missed := ts.publish(t, "a", `{"data": "published while the client was away"}`)
	p := ts.subscribe(t, "topic=a", map[string]string{"Last-Event-ID": first.ID})
	if got := next(t, p); got.ID != missed {
		t.Fatalf("back with its position %s: %+v, want id %s", first.ID, got, missed)
	}
}

// A client on a quiet topic of a busy hub keeps its place: while its
// stream is idle, the heartbeat that is due carries the hub's newest id as
// a position event instead of a comment. The client comes back from it and
// misses nothing, with no reset, although the history let go meanwhile of
// every event since it subscribed; from the position it started with, it
// would be reset.
func TestHubIdleStreamKeepsItsPositionUpToDate(t *testing.T) {
	opts, _ := hubOptions(t, stream.MemoryOptions{FirstID: 1, HistorySize: 2})
	opts.Stream.HeartbeatInterval = 100 * time.Millisecond
	ts := newTestServer(t, opts)
	resp := ts.do(t, "GET", "/api/v1/events?topic=quiet", nil, nil)
	wantStreamHeaders(t, resp)
	// Without a position the stream sends comments only: a read then
	// fails here instead of waiting for the test's timeout.
	bound := time.AfterFunc(10*time.Second, func() { resp.Body.Close() })
	defer bound.Stop()
	p := stream.NewParser(resp.Body)
	start, err := p.Next() // next would skip it
	if err != nil || start.Type != "position" {
		t.Fatalf("first event %+v (%v), want its position", start, err)
	}
	var newest string
	for range 3 {
		newest = ts.publish(t, "busy", `{"data": "for others"}`)
	}
	// A heartbeat due while the publishes ran may carry an earlier id.
	var got stream.Event
	for got.ID != newest {
		if got, err = p.Next(); err != nil || got.Type != "position" || got.Data != "" {
			t.Fatalf("next event %+v (%v), want positions up to the newest id %s", got, err, newest)
		}
	}
	if got.ID == start.ID {
		t.Fatalf("the position did not move from %s", start.ID)
	}
	resp.Body.Close()

	back := ts.subscribe(t, "topic=quiet", map[string]string{"Last-Event-ID": got.ID})
	missed := ts.publish(t, "quiet", `{"data": "published while away"}`)
	if ev := next(t, back); ev.ID != missed || ev.Type != "" {
		t.Fatalf("back from %s: %+v, want the event %s and no reset", got.ID, ev, missed)
	}
	if testNATS == nil {
		// The memory broker's history of 2 holds neither the start's id
		// nor the one after it.
		stale := ts.subscribe(t, "topic=quiet", map[string]string{"Last-Event-ID": start.ID})
		if ev := next(t, stale); ev.Type != "reset" {
			t.Fatalf("back from the first position %s: %+v, want a reset", start.ID, ev)
		}
	}
}

// firstEvent returns the first event the stream sends, or fails the test
// after 10 s.
func firstEvent(t *testing.T, body io.Reader) stream.Event {
	t.Helper()
	found := make(chan stream.Event, 1)
	go func() {
		defer close(found)
		if ev, err := stream.NewParser(body).Next(); err == nil {
			found <- ev
		}
	}()
	select {
	case ev, ok := <-found:
		if !ok {
			t.Fatal("the stream ended before its first event")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
		return stream.Event{}
	}
}

// An id from before the hub restarted (below its first id): a reset,
// whose id is the position before the oldest retained event, then every
// retained event, all published after that id, then live events. A
// client reconnecting across a restart gets what was published since;
// before, it got live events only.
func TestHubResumeAcrossARestartReplaysTheNewHistory(t *testing.T) {
	skipOnNATS(t, "the NATS broker's ids from another stream are a reset with live events only")
	opts, _ := hubOptions(t, stream.MemoryOptions{FirstID: 1000})
	ts := newTestServer(t, opts)
	since := ts.publish(t, "a", `{"data": "since the restart"}`)
	p := ts.subscribe(t, "topic=a", map[string]string{"Last-Event-ID": "5"})
	reset := next(t, p)
	if reset.Type != "reset" || !strings.Contains(reset.Data, "restarted") || reset.ID != "999" {
		t.Fatalf("first event %+v, want a reset from before the restart, id 999", reset)
	}
	if got := next(t, p); got.ID != since {
		t.Fatalf("after the reset %+v, want the event published since the restart, id %s", got, since)
	}
	live := ts.publish(t, "a", `{"data": "live"}`)
	if got := next(t, p); got.ID != live {
		t.Fatalf("then %+v, want live id %s", got, live)
	}
}

// TestHubResetAfterByteEviction publishes events of about 400 bytes each
// into a history of 1000 bytes, room for two: resuming from the first id
// gets a reset and then live events; resuming from the third replays the
// fourth.
func TestHubResetAfterByteEviction(t *testing.T) {
	opts, _ := hubOptions(t, stream.MemoryOptions{FirstID: 1, HistoryMaxBytes: 1000})
	ts := newTestServer(t, opts)
	body := `{"data": "` + strings.Repeat("x", 300) + `"}`
	var published []string
	for range 4 {
		published = append(published, ts.publish(t, "a", body))
	}

	p := ts.subscribe(t, "topic=a", map[string]string{"Last-Event-ID": published[0]})
	if reset := next(t, p); reset.Type != "reset" || !strings.Contains(reset.Data, "older than the retained history") {
		t.Fatalf("resume from evicted id %s: first event %+v, want a reset", published[0], reset)
	}
	live := ts.publish(t, "a", `{"data": "live"}`)
	if got := next(t, p); got.ID != live || got.Data != "live" {
		t.Fatalf("after the reset %+v, want live id %s", got, live)
	}

	p = ts.subscribe(t, "topic=a", map[string]string{"Last-Event-ID": published[2]})
	if got := next(t, p); got.ID != published[3] || got.Type != "" {
		t.Fatalf("resume from retained id %s: %+v, want id %s replayed", published[2], got, published[3])
	}
}

// TestHubResumeUnderConcurrentPublish drops and resumes a subscription
// again and again while events are being published: the ids it sees must
// be every id published, in order, each once.
func TestHubResumeUnderConcurrentPublish(t *testing.T) {
	ts := newHubServer(t)
	const total = 400
	connect := func(lastID string) (*stream.Parser, context.CancelFunc) {
		ctx, cancel := context.WithCancel(t.Context())
		req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/v1/events?topic=load.*", nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		wantStreamHeaders(t, resp)
		return stream.NewParser(resp.Body), func() { cancel(); resp.Body.Close() }
	}
	p, drop := connect("")

	published := make([]string, 0, total)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range total {
			req, _ := http.NewRequest("POST", ts.URL+"/api/v1/topics/load."+strconv.Itoa(i%4)+"/events", strings.NewReader(fmt.Sprintf(`{"data": %d}`, i)))
			req.Header.Set("Authorization", "Bearer "+testToken)
			req.Header.Set("Content-Type", "application/json")
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			var out struct{ ID string }
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if err != nil || out.ID == "" {
				t.Errorf("publish %d: %s, id %q, %v", i, resp.Status, out.ID, err)
				return
			}
			published = append(published, out.ID)
		}
	}()

	var seen []string
	for len(seen) < total {
		ev, err := nextEvent(p)
		if err == nil && ev.Type == "" {
			seen = append(seen, ev.ID)
		}
		// Drop the connection every 37 events, and resume whenever the
		// hub ended the stream.
		if err != nil || len(seen)%37 == 0 {
			if err != nil && !errors.Is(err, io.EOF) {
				t.Fatalf("after %d events: %v", len(seen), err)
			}
			drop()
			last := ""
			if len(seen) > 0 {
				last = seen[len(seen)-1]
			}
			p, drop = connect(last)
		}
		if err == nil && ev.Type == "reset" {
			t.Fatalf("reset after %d events: %s", len(seen), ev.Data)
		}
	}
	drop()
	<-done
	if strings.Join(seen, ",") != strings.Join(published, ",") {
		t.Errorf("seen ids differ from published ids:\nseen      %v\npublished %v", seen, published)
	}
}

func TestHubRejectsBadPublishes(t *testing.T) {
	long := strings.Repeat("x", 65)
	tests := []struct {
		name, topic, body, contentType, auth string
		status                               int
		mentions                             string
	}{
		{"no token", "a", `{"data":1}`, "application/json", "", 401, "token"},
		{"wrong token", "a", `{"data":1}`, "application/json", "Bearer nope", 401, "token"},
		{"not bearer", "a", `{"data":1}`, "application/json", "Basic " + testToken, 401, "token"},
		{"not JSON", "a", `data=1`, "application/x-www-form-urlencoded", "Bearer " + testToken, 415, "application/json"},
		{"no content type", "a", `{"data":1}`, "", "Bearer " + testToken, 415, "Content-Type"},
		{"bad JSON", "a", `{"data":`, "application/json", "Bearer " + testToken, 400, "body"},
		{"empty body", "a", ``, "application/json", "Bearer " + testToken, 400, "body"},
		{"no data", "a", `{"event":"x"}`, "application/json", "Bearer " + testToken, 400, "data"},
		{"null data", "a", `{"data":null}`, "application/json", "Bearer " + testToken, 400, "data"},
		{"null event", "a", `{"event":null,"data":1}`, "application/json", "Bearer " + testToken, 400, `"event" must not be null`},
		{"unknown field", "a", `{"data":1,"topic":"b"}`, "application/json", "Bearer " + testToken, 400, "topic"},
		{"two objects", "a", `{"data":1}{"data":2}`, "application/json", "Bearer " + testToken, 400, "one JSON object"},
		{"bad topic", "a..b", `{"data":1}`, "application/json", "Bearer " + testToken, 400, "a..b"},
		{"wildcard topic", "a.*", `{"data":1}`, "application/json", "Bearer " + testToken, 400, "a.*"},
		{"event with newline", "a", `{"event":"x\ny","data":1}`, "application/json", "Bearer " + testToken, 400, "event"},
		{"event with NUL", "a", `{"event":"x\u0000","data":1}`, "application/json", "Bearer " + testToken, 400, "event"},
		{"event too long", "a", `{"event":"` + long + `","data":1}`, "application/json", "Bearer " + testToken, 400, "event"},
		{"reserved event", "a", `{"event":"reset","data":1}`, "application/json", "Bearer " + testToken, 400, "reset"},
		{"too large", "a", `{"data":"` + strings.Repeat("x", 2000) + `"}`, "application/json", "Bearer " + testToken, 413, "1024"},
		{"too large after the object", "a", `{"data":1}` + strings.Repeat(" ", 2000), "application/json", "Bearer " + testToken, 413, "1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newHubServer(t)
			header := map[string]string{"Content-Type": tt.contentType}
			if tt.auth != "" {
				header["Authorization"] = tt.auth
			}
			resp := ts.do(t, "POST", "/api/v1/topics/"+tt.topic+"/events", strings.NewReader(tt.body), header)
			msg := wantJSONError(t, resp, tt.status)
			if !strings.Contains(msg, tt.mentions) {
				t.Errorf("error %q does not mention %q", msg, tt.mentions)
			}
			if tt.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %q", resp.Header.Get("WWW-Authenticate"))
			}
			if got := ts.h.hub.Broker.Stats().Published; got != 0 {
				t.Errorf("a refused publish changed the hub: %d published", got)
			}
		})
	}
}

func TestHubPublishingOffWithoutTokens(t *testing.T) {
	opts, _ := hubOptions(t, stream.MemoryOptions{})
	opts.Hub.PublishTokens = nil
	ts := newTestServer(t, opts)
	resp := ts.do(t, "POST", "/api/v1/topics/a/events", strings.NewReader(`{"data":1}`),
		map[string]string{"Content-Type": "application/json", "Authorization": "Bearer x"})
	if msg := wantJSONError(t, resp, http.StatusForbidden); !strings.Contains(msg, "auth.publish_tokens") || !strings.Contains(msg, "auth.jwt") {
		t.Errorf("error %q does not say both ways to turn publishing on", msg)
	}
}

func TestHubRejectsBadSubscriptions(t *testing.T) {
	for query, mentions := range map[string]string{
		"":                                "topic",
		"topic=":                          `""`,
		"topic=a..b":                      "a..b",
		"topic=a.>.b":                     "a.>.b",
		"topic=a%20b":                     "a b",
		"topic=a&topic=b&topic=c&topic=d": "at most 3",
	} {
		t.Run(query, func(t *testing.T) {
			ts := newHubServer(t)
			msg := wantJSONError(t, ts.do(t, "GET", "/api/v1/events?"+query, nil, nil), http.StatusBadRequest)
			if !strings.Contains(msg, mentions) {
				t.Errorf("error %q does not mention %q", msg, mentions)
			}
		})
	}
}

func TestHubSubscribeTokens(t *testing.T) {
	opts, _ := hubOptions(t, stream.MemoryOptions{})
	opts.Hub.SubscribeTokens = []string{"reader"}
	ts := newTestServer(t, opts)
	for _, path := range []string{"/api/v1/events?topic=a", "/api/v1/topics"} {
		resp := ts.do(t, "GET", path, nil, nil)
		wantJSONError(t, resp, http.StatusUnauthorized)
		resp = ts.do(t, "GET", path, nil, map[string]string{"Authorization": "Bearer wrong"})
		wantJSONError(t, resp, http.StatusUnauthorized)
		if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, "invalid_token") {
			t.Errorf("wrong token challenge %q", got)
		}
	}
	ts.subscribe(t, "topic=a", map[string]string{"Authorization": "Bearer reader"})
	ts.subscribe(t, "topic=a&access_token=reader", nil)
}

// TestHubTopicsNotStored: the list of topics, which needs a token when
// subscribe tokens are set, says Cache-Control: no-store, to GET and HEAD.
// A 200 is cacheable by default (RFC 9111), and a cookie is no part of a
// cache's key: a shared cache could answer a caller's list to one without
// a token.
func TestHubTopicsNotStored(t *testing.T) {
	opts, _ := hubOptions(t, stream.MemoryOptions{})
	opts.Hub.SubscribeTokens = []string{"reader"}
	ts := newTestServer(t, opts)
	for _, method := range []string{"GET", "HEAD"} {
		resp := ts.do(t, method, "/api/v1/topics", nil, map[string]string{"Cookie": "ssehub_token=reader"})
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d, want 200", method, resp.StatusCode)
		}
		if got := resp.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", method, got)
		}
	}
}

// TestHubTopicsPages reads the list of topics a page at a time over HTTP,
// following next until a page without it: every topic comes once, in
// order. A limit out of range, not a whole number, or given twice is a
// 400 naming it.
func TestHubTopicsPages(t *testing.T) {
	ts := newHubServer(t)
	var want []string
	for i := range 7 {
		topic := fmt.Sprintf("t%d", i)
		ts.publish(t, topic, `{"data":1}`)
		want = append(want, topic)
	}
	type page struct {
		Topics []struct {
			Topic string `json:"topic"`
		} `json:"topics"`
		Next *string `json:"next"`
	}
	get := func(query string) page {
		t.Helper()
		resp := ts.do(t, "GET", "/api/v1/topics"+query, nil, nil)
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/v1/topics%s: status %d", query, resp.StatusCode)
		}
		var p page
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if p := get(""); len(p.Topics) != len(want) || p.Next != nil {
		t.Errorf("without limit: %d topics, next %v; want all %d and no next", len(p.Topics), p.Next, len(want))
	}
	var got []string
	query := "?limit=3"
	for range len(want) {
		p := get(query)
		for _, topic := range p.Topics {
			got = append(got, topic.Topic)
		}
		if p.Next == nil {
			break
		}
		query = "?limit=3&after=" + url.QueryEscape(*p.Next)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pages of 3 list %v, want %v", got, want)
	}
	if p := get("?after=t4"); len(p.Topics) != 2 || p.Topics[0].Topic != "t5" || p.Next != nil {
		t.Errorf("after=t4: %+v, want t5 and t6 and no next", p)
	}

	for _, query := range []string{"limit=0", "limit=1001", "limit=x", "limit=03", "limit=+3", "limit=", "limit=1&limit=2", "after=a&after=b"} {
		resp := ts.do(t, "GET", "/api/v1/topics?"+query, nil, nil)
		msg := wantJSONError(t, resp, http.StatusBadRequest)
		if name := strings.SplitN(query, "=", 2)[0]; !strings.Contains(msg, name) {
			t.Errorf("?%s: error %q does not name %s", query, msg, name)
		}
	}
}

// TestHubTopicsAfterIsATopicName: GET /api/v1/topics' after is a topic
// name (a page's next), so one that is not (a NUL, 5000 bytes, an empty
// segment, a wildcard) is a 400 that names the parameter and says why.
// It was taken as it came and compared with every name. An empty after,
// as a client gives before the first page, is none: every topic.
func TestHubTopicsAfterIsATopicName(t *testing.T) {
	ts := newHubServer(t)
	for _, topic := range []string{"a", "b.c"} {
		ts.publish(t, topic, `{"data":1}`)
	}
	for _, after := range []string{"\x00", "a\x00", strings.Repeat("x", 5000), "a..b", ".a", "a.*", ">", "é"} {
		resp := ts.do(t, "GET", "/api/v1/topics?limit=1&after="+url.QueryEscape(after), nil, nil)
		msg := wantJSONError(t, resp, http.StatusBadRequest)
		if !strings.Contains(msg, "query parameter after") || !strings.Contains(msg, "invalid topic") {
			t.Errorf("after=%.20q: error %q does not name the parameter and say why", after, msg)
		}
	}
	for query, want := range map[string]int{"?after=": 2, "?after=a": 1, "?after=b.c": 0, "?after=a.b&limit=1": 1} {
		resp := ts.do(t, "GET", "/api/v1/topics"+query, nil, nil)
		var p struct {
			Topics []json.RawMessage `json:"topics"`
		}
		err := json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil || len(p.Topics) != want {
			t.Errorf("%s: status %d, %d topics (%v), want 200 and %d", query, resp.StatusCode, len(p.Topics), err, want)
		}
	}
}

func TestHubFullAnswers503WithRetryAfter(t *testing.T) {
	opts, _ := hubOptions(t, stream.MemoryOptions{MaxSubscribers: 1})
	ts := newTestServer(t, opts)
	ts.subscribe(t, "topic=a", nil)
	resp := ts.do(t, "GET", "/api/v1/events?topic=a", nil, nil)
	wantJSONError(t, resp, http.StatusServiceUnavailable)
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if resp.ProtoMajor == 1 && !resp.Close {
		t.Error("503 for capacity keeps its connection: want Connection: close, so it frees its descriptor")
	}
}

func TestHubTopicsAndMetrics(t *testing.T) {
	ts := newHubServer(t)
	p := ts.subscribe(t, "topic=a", nil)
	ts.publish(t, "a", `{"data":1}`)
	last := ts.publish(t, "a", `{"data":2}`)
	next(t, p)
	next(t, p)
	resp := ts.do(t, "GET", "/api/v1/topics", nil, nil)
	var body struct {
		Topics []struct {
			Topic       string `json:"topic"`
			Subscribers int    `json:"subscribers"`
			LastEventID string `json:"last_event_id"`
		} `json:"topics"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if len(body.Topics) != 1 || body.Topics[0].Topic != "a" || body.Topics[0].Subscribers != 1 || body.Topics[0].LastEventID != last {
		t.Errorf("topics %+v", body.Topics)
	}
	b, _ := io.ReadAll(ts.do(t, "GET", "/metrics", nil, nil).Body)
	for _, want := range []string{
		"ssehub_subscribers 1",
		"ssehub_events_published_total 2",
		"ssehub_events_delivered_total 2",
		"ssehub_slow_subscribers_dropped_total 0",
		"ssehub_replayed_events_total 0",
	} {
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if m := regexp.MustCompile(`(?m)^ssehub_history_bytes (\d+)$`).FindSubmatch(b); m == nil || string(m[1]) == "0" {
		t.Errorf("/metrics: ssehub_history_bytes %q, want the two events' bytes", m)
	}
}

func TestHubSubscriptionEndsWhenBrokerCloses(t *testing.T) {
	opts, broker := hubOptions(t, stream.MemoryOptions{})
	ts := newTestServer(t, opts)
	p := ts.subscribe(t, "topic=a", nil)
	broker.Close()
	if _, err := nextEvent(p); !errors.Is(err, io.EOF) {
		t.Fatalf("after broker Close: %v, want the end of the stream", err)
	}
	ts.waitReturned(t, "/api/v1/events")
}

// A subscriber that goes away while its stream waits ends the stream as
// "client gone", and its subscription with it: the stream watches the
// request's context itself (no context.AfterFunc, no CloseNotify). The
// handler no longer holds it (it tracks open ones for Close).
func TestHubSubscriberGoingAwayEndsItsSubscription(t *testing.T) {
	var logs testlog.Buffer
	opts, broker := hubOptions(t, stream.MemoryOptions{FirstID: 1})
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	ts := newTestServer(t, opts)
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/v1/events?topic=gone", nil)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	p := stream.NewParser(resp.Body)
	ts.publish(t, "gone", `{"data":"first"}`)
	if ev := next(t, p); ev.Data != "first" {
		t.Fatalf("first event %+v", ev)
	}
	cancel()
	resp.Body.Close()
	ts.waitReturned(t, "/api/v1/events")
	waitFor(t, func() bool { return broker.Stats().Subscribers == 0 })
	ts.h.mu.Lock()
	tracked := len(ts.h.subs)
	ts.h.mu.Unlock()
	if tracked != 0 {
		t.Errorf("the handler still tracks %d subscriptions after its stream ended", tracked)
	}
	if !strings.Contains(logs.String(), `reason="client gone"`) {
		t.Errorf("no stream end line says client gone:\n%s", logs.String())
	}
}

// TestMetricsCountRequestsRefusalsResetsAndEnds: every request is counted
// by route, method and status, with unknown paths and methods as "other"
// (a client cannot make up labels); a 503 for capacity by its reason; a
// stream that begins with a reset; and each stream's end by its reason.
func TestMetricsCountRequestsRefusalsResetsAndEnds(t *testing.T) {
	opts, _ := hubOptions(t, stream.MemoryOptions{FirstID: 1})
	opts.Stream.MaxStreams = 1
	ts := newTestServer(t, opts)

	readAll(t, ts.do(t, "GET", "/stream?count=2", nil, nil).Body)
	ts.waitReturned(t, "/stream") // its slot is free
	wantJSONError(t, ts.do(t, "GET", "/no/such/path", nil, nil), http.StatusNotFound)
	wantJSONError(t, ts.do(t, "BREW", "/healthz", nil, nil), http.StatusMethodNotAllowed)

	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/v1/events?topic=a", nil)
	first, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	wantStreamHeaders(t, first)
	wantJSONError(t, ts.do(t, "GET", "/api/v1/events?topic=a", nil, nil), http.StatusServiceUnavailable) // the one slot is taken
	cancel()
	first.Body.Close()
	ts.waitReturned(t, "/api/v1/events") // the 503's
	ts.waitReturned(t, "/api/v1/events") // the stream's: its slot is free

	p := ts.subscribe(t, "topic=a", map[string]string{"Last-Event-ID": "garbage"})
	if ev := next(t, p); ev.Type != "reset" {
		t.Fatalf("first event %+v, want a reset", ev)
	}
	ts.h.Close() // ends it as shutting down

	waitMetrics(t, ts, []string{
		`ssehub_http_requests_total{code="200",method="GET",route="/stream"} 1`,
		`ssehub_http_requests_total{code="404",method="GET",route="other"} 1`,
		`ssehub_http_requests_total{code="405",method="other",route="other"} 1`,
		`ssehub_http_requests_total{code="503",method="GET",route="/api/v1/events"} 1`,
		`ssehub_http_requests_total{code="200",method="GET",route="/api/v1/events"} 2`,
		`ssehub_requests_refused_total{reason="max_streams"} 1`,
		`ssehub_requests_refused_total{reason="max_subscribers"} 0`,
		`ssehub_requests_refused_total{reason="store_busy"} 0`,
		`ssehub_requests_refused_total{reason="store_full"} 0`,
		`ssehub_requests_refused_total{reason="store_unreachable"} 0`,
		`ssehub_stream_resets_total 1`,
		`ssehub_streams_ended_total{reason="completed"} 1`,
		`ssehub_streams_ended_total{reason="client_gone"} 1`,
		`ssehub_streams_ended_total{reason="shutting_down"} 1`,
	})
}

// waitMetrics waits until /metrics holds each of wants as a line: a
// request is counted once its handler has returned, just after the client
// has its answer.
func waitMetrics(t *testing.T, ts *testServer, wants []string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		b := scrape(t, ts)
		var missing []string
		for _, want := range wants {
			if !strings.Contains(string(b), want+"\n") {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks, after 5s:\n%s\nit has:\n%s", strings.Join(missing, "\n"), grepLines(string(b), "ssehub_"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// scrape is the handler's answer to GET /metrics, asked in the test's
// goroutine rather than over the test's server: there the answer is under
// the write bound of the test's stream.write_timeout, as short as 500 ms in
// some tests, and a loaded machine that paused the answer past it had it
// reset (over HTTP/2, INTERNAL_ERROR) and failed a test about something
// else.
func scrape(t *testing.T, ts *testServer) []byte {
	t.Helper()
	rec := httptest.NewRecorder()
	ts.h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), "GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.Bytes()
}

// TestResetCountedOnlyWhenSent: ssehub_stream_resets_total counts streams
// that began with event: reset. A stream whose client left before its
// first step never began: its reset, queued, was never sent, and is not
// counted. (Gin's transport only: a detached stream's goroutine notices
// the client gone while its first step may already be running.)
func TestResetCountedOnlyWhenSent(t *testing.T) {
	onlyIn(t, false)
	opts, _ := hubOptions(t, stream.MemoryOptions{FirstID: 1})
	// The client has left before the handler runs.
	opts.Middleware = []gin.HandlerFunc{func(c *gin.Context) {
		if c.GetHeader("X-Leave-First") != "" {
			<-c.Request.Context().Done()
		}
	}}
	ts := newTestServer(t, opts)
	for _, path := range []string{"/api/v1/events?topic=a", "/stream?count=3"} {
		conn, err := net.Dial("tcp", ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nLast-Event-ID: unknown\r\nX-Leave-First: 1\r\n\r\n", path)
		conn.Close()
		ts.waitReturned(t, strings.Split(path, "?")[0])
	}
	waitMetrics(t, ts, []string{
		`ssehub_streams_ended_total{reason="client_gone"} 2`,
		`ssehub_stream_resets_total 0`,
	})

	// A reset that goes out is counted.
	p := ts.subscribe(t, "topic=a", map[string]string{"Last-Event-ID": "unknown"})
	if ev := next(t, p); ev.Type != "reset" {
		t.Fatalf("first event %+v, want a reset", ev)
	}
	waitMetrics(t, ts, []string{`ssehub_stream_resets_total 1`})
}

// The handler's record of the open subscriptions, which Close ends, does
// not keep the memory it took for a crowd once the crowd has left: it is
// made again, smaller, as the broker's maps are.
func TestSubscriptionRecordShrinksWhenACrowdLeaves(t *testing.T) {
	skipOnNATS(t, "the heap is measured: a NATS server in the process would take and free memory meanwhile")
	const crowd = stream.DefaultMaxSubscribers
	broker := stream.NewMemory(stream.MemoryOptions{})
	defer broker.Close()
	h := New(Options{Logger: slog.New(slog.DiscardHandler), Hub: HubOptions{Broker: broker}})
	defer h.Close()
	subs := make([]stream.Subscription, crowd)
	for i := range subs {
		sub, err := broker.Subscribe([]string{"a"}, "")
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = sub
		h.trackSubscription(sub, nil)
	}
	for _, sub := range subs[1:] {
		sub.Close()
		h.untrackSubscription(sub)
	}
	var with, without runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&with)
	h.mu.Lock()
	if len(h.subs) != 1 {
		h.mu.Unlock()
		t.Fatalf("%d subscriptions recorded, want 1", len(h.subs))
	}
	fresh := make(map[stream.Subscription]*waitContext, 1)
	maps.Copy(fresh, h.subs)
	h.subs = fresh
	h.mu.Unlock()
	runtime.GC()
	runtime.ReadMemStats(&without)
	if got := int64(with.HeapAlloc) - int64(without.HeapAlloc); got > 64<<10 {
		t.Errorf("the record of one subscription takes %d bytes more than a new one, want at most 64 KiB", got)
	}
}

// A resume overtaken twice before its replay handed out an event, by the
// local history (which let go of an event of its replay) and then by the
// NATS stream (its first page, read when it subscribed again, matched
// nothing, and the stream let go of the next before it was read), is
// answered as a resume from that id is then: an
// `event: reset`, then live events. It subscribed again once only, and
// the stream ended as dropped with nothing sent: its client, which had
// done nothing wrong, came back after its retry delay to that reset.
func TestHubResumeOvertakenByTheLocalHistoryThenTheStreamIsReset(t *testing.T) {
	if testNATS == nil {
		t.Skip("on the NATS broker only: a resume the memory broker overtook is answered with a reset")
	}
	// The local history holds about 800 of these events (their frames
	// take about 125 bytes), the stream all 2000 it may (about 50 bytes
	// each in it).
	const size = 2000
	tb := testNATS.newBroker(t, stream.MemoryOptions{HistorySize: size, HistoryMaxBytes: 100_000})
	opts := testOptions()
	// After the first resume is made, the local history lets go of its
	// replay's start, its one match included; after the second, the
	// stream of all it held.
	broker := &evictingStepsBroker{testBroker: tb, evict: []int{1000, size}}
	opts.Hub = HubOptions{Broker: broker, PublishTokens: []string{"other", testToken}, MaxEventBytes: 1024, MaxTopicsPerSubscription: 3}
	ts := newTestServer(t, opts)
	oldest := ts.publish(t, "other", `{"data": "before"}`)
	for range 600 {
		if _, _, err := tb.Publish(stream.Publication{Topic: "other", Data: "{}"}); err != nil {
			t.Fatal(err)
		}
	}
	// Past the stream's first page: the local replay's one match.
	if _, _, err := tb.Publish(stream.Publication{Topic: "a.x", Data: "{}"}); err != nil {
		t.Fatal(err)
	}
	// Patterns that overlap: the stream is read through its whole
	// subject, a page of 512 events, here none matching.
	resp := ts.do(t, "GET", "/api/v1/events?topic=a.*&topic=*.x", nil, map[string]string{"Last-Event-ID": oldest})
	wantStreamHeaders(t, resp)
	p := stream.NewParser(resp.Body)
	first, err := nextEvent(p)
	if err != nil {
		t.Fatalf("first event: %v, want a reset (%d resumes made)", err, broker.made.Load())
	}
	if first.Type != "reset" || !strings.Contains(first.Data, "older than the retained history") {
		t.Fatalf("first event %+v, want a reset", first)
	}
	live := ts.publish(t, "a.x", `{"data": "after"}`)
	if got := next(t, p); got.ID != live || got.Data != "after" {
		t.Fatalf("after %+v: %+v, want live id %s", first, got, live)
	}
	if n := broker.made.Load(); n != 3 {
		t.Errorf("%d resumes made, want 3: the resume, then once in place of each overtaken one", n)
	}
	// Each took the place of the one it replaced: the stream holds one,
	// which its end frees.
	waitMetrics(t, ts, []string{`ssehub_streams_ended_total{reason="dropped"} 0`, `ssehub_subscribers 1`})
	resp.Body.Close()
	waitMetrics(t, ts, []string{`ssehub_streams_ended_total{reason="client_gone"} 1`, `ssehub_subscribers 0`})
}

// evictingStepsBroker is a broker that publishes evict[i] events to topic
// "other" right after its resume i is made (Subscribe, or Resubscribe in
// place of an overtaken one): a busy hub, whatever the stream subscribes.
type evictingStepsBroker struct {
	testBroker
	evict []int
	made  atomic.Int32
}

func (b *evictingStepsBroker) Subscribe(patterns []string, lastEventID string) (stream.Subscription, error) {
	return b.evictAfter(lastEventID)(b.testBroker.Subscribe(patterns, lastEventID))
}

func (b *evictingStepsBroker) Resubscribe(ctx context.Context, old stream.Subscription, patterns []string, lastEventID string) (stream.Subscription, error) {
	return b.evictAfter(lastEventID)(b.testBroker.Resubscribe(ctx, old, patterns, lastEventID))
}

func (b *evictingStepsBroker) evictAfter(lastEventID string) func(stream.Subscription, error) (stream.Subscription, error) {
	return func(sub stream.Subscription, err error) (stream.Subscription, error) {
		if err != nil || lastEventID == "" {
			return sub, err
		}
		i := int(b.made.Add(1)) - 1
		if i >= len(b.evict) {
			return sub, nil
		}
		for range b.evict[i] {
			if _, _, err := b.Publish(stream.Publication{Topic: "other", Data: "{}"}); err != nil {
				sub.Close()
				return nil, err
			}
		}
		return sub, nil
	}
}

// A subscription refused for hub.max_subscribers is counted as refused
// even when its client went away the same instant: the hub was full
// whether the answer reached it or not. It was taken for a client gone
// while the NATS broker waited, and went uncounted.
func TestHubFullRefusalToAClientGoneIsCounted(t *testing.T) {
	opts, tb := hubOptions(t, stream.MemoryOptions{FirstID: 1, MaxSubscribers: 1})
	full, err := tb.Subscribe([]string{"b"}, "") // the hub's one place
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	broker := &leavingBroker{testBroker: tb, waiting: make(chan struct{})}
	opts.Hub.Broker = broker
	ts := newTestServer(t, opts)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/v1/events?topic=a", nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := ts.Client().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-broker.waiting
	cancel() // the client leaves as the broker answers
	<-done
	ts.waitReturned(t, "/api/v1/events")
	waitMetrics(t, ts, []string{`ssehub_requests_refused_total{reason="max_subscribers"} 1`})
}

// leavingBroker is a broker whose subscribe closes waiting and waits for
// its client to go away, then subscribes: a client that leaves the
// instant the broker answers it.
type leavingBroker struct {
	testBroker
	waiting chan struct{}
}

func (b *leavingBroker) SubscribeContext(ctx context.Context, patterns []string, lastEventID string) (stream.Subscription, error) {
	close(b.waiting)
	<-ctx.Done()
	if cs, ok := b.testBroker.(contextSubscriber); ok {
		return cs.SubscribeContext(context.WithoutCancel(ctx), patterns, lastEventID)
	}
	return b.Subscribe(patterns, lastEventID)
}

// Subscriptions to many deep wildcard patterns, as anyone may open under
// demo.> with the demo on, take memory in proportion to their requests,
// over real connections: each such stream, with its client, takes less
// than 256 KiB. The broker's index of patterns took a node and a map per
// segment: 1.1 MB for each.
func TestHubDeepPatternsTakeLittleMemory(t *testing.T) {
	// Each round opens streams more and reads what they took; the median
	// round counts, so that memory an earlier test frees (or takes) while
	// one round measures does not make its reading the verdict.
	const streams, perStream, rounds = 40, 32, 3
	opts, _ := hubOptions(t, stream.MemoryOptions{})
	opts.Hub.MaxTopicsPerSubscription = perStream
	ts := newTestServer(t, opts)
	queries := make([]string, rounds*streams)
	for i := range queries {
		q := url.Values{}
		for j := range perStream {
			p := fmt.Sprintf("demo.u%d-%d", i, j)
			q.Add("topic", p+strings.Repeat(".a", (stream.MaxTopicLen-2-len(p))/2)+".*")
		}
		queries[i] = q.Encode()
	}
	heap := func() int64 {
		var ms runtime.MemStats
		runtime.GC()
		debug.FreeOSMemory() // a second, full collection
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	pers := make([]int64, 0, rounds)
	for r := range rounds {
		before := heap()
		for _, q := range queries[r*streams : (r+1)*streams] {
			if ev, err := ts.subscribe(t, q, nil).Next(); err != nil || ev.Type != "position" {
				t.Fatalf("first event %+v, %v; want the position", ev, err)
			}
		}
		pers = append(pers, (heap()-before)/streams)
	}
	slices.Sort(pers)
	per := pers[rounds/2]
	t.Logf("a stream of %d patterns of 255 bytes, with its client: %d bytes (rounds: %v)", perStream, per, pers)
	if per > 256<<10 {
		t.Errorf("a stream of %d patterns of 255 bytes, with its client, takes %d bytes, want less than 256 KiB", perStream, per)
	}
}

// publishingBroker runs publish right after its first resuming
// subscription is made: what a busy hub publishes between a stream's
// subscribing and its first read of the replay.
type publishingBroker struct {
	testBroker
	publish func()
	done    atomic.Bool
}

func (b *publishingBroker) Subscribe(patterns []string, lastEventID string) (stream.Subscription, error) {
	sub, err := b.testBroker.Subscribe(patterns, lastEventID)
	if err == nil && lastEventID != "" && !b.done.Swap(true) {
		b.publish()
	}
	return sub, err
}

// A resume whose replay holds only events of other topics, while live
// events of its topic are queued behind it, the history lets go of the
// first of them and then one more overflows the queue: the client missed
// an event and is told so (`event: reset`), then gets live events. The
// replay passed over the queued events the history had let go of, and the
// client got the newest one after a gap, told nothing.
func TestHubResumeTellsOfQueuedEventsTheHistoryLetGoOf(t *testing.T) {
	skipOnNATS(t, "the NATS broker reads such a resume from its stream")
	opts, tb := hubOptions(t, stream.MemoryOptions{HistorySize: 4, SubscriberBuffer: 2, FirstID: 1})
	pub := func(topic string) {
		if _, _, err := tb.Publish(stream.Publication{Topic: topic, Data: "{}"}); err != nil {
			t.Error(err)
		}
	}
	opts.Hub.Broker = &publishingBroker{testBroker: tb, publish: func() {
		pub("a") // queued, then let go of by the history
		pub("a") // queued
		for range 3 {
			pub("b")
		}
		pub("a") // overflows the queue
	}}
	ts := newTestServer(t, opts)
	from := ts.publish(t, "a", `{"data": "first"}`)
	ts.publish(t, "b", `{"data": "the replay"}`)
	p := ts.subscribe(t, "topic=a", map[string]string{"Last-Event-ID": from})
	first := next(t, p)
	if first.Type != "reset" || !strings.Contains(first.Data, "older than the retained history") {
		t.Fatalf("first event %+v, want a reset: events of the topic were let go of", first)
	}
	live := ts.publish(t, "a", `{"data": "live"}`)
	if got := next(t, p); got.ID != live {
		t.Fatalf("after the reset: %+v, want live id %s", got, live)
	}
}
