package handler

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/stream"
	"github.com/ssehub/ssehub/internal/testlog"
)

// holdStream starts a GET stream that stays open, reads its first event
// and returns the function that ends it.
func (ts *testServer) holdStream(t *testing.T, path string) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+path, nil)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	wantStreamHeaders(t, resp)
	if _, err := nextEvent(stream.NewParser(resp.Body)); err != nil {
		t.Fatal(err)
	}
	return cancel
}

// drainReturned forgets the returns reported so far. A refused request
// has reported its return before its client read the answer: its handler
// had returned before net/http sent the small answer it had buffered.
func (ts *testServer) drainReturned() {
	for {
		select {
		case <-ts.returned:
		default:
			return
		}
	}
}

// wantTooManyStreams checks a 503 for stream.max_streams.
func wantTooManyStreams(t *testing.T, resp *http.Response) {
	t.Helper()
	msg := wantJSONError(t, resp, http.StatusServiceUnavailable)
	if !strings.Contains(msg, "too many streams") {
		t.Errorf("503 error %q does not say there are too many streams", msg)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
}

func TestMaxStreamsCountsDemoAndHubStreams(t *testing.T) {
	opts, broker := hubOptions(t, stream.MemoryOptions{})
	opts.Stream.MaxStreams = 2
	ts := newTestServer(t, opts)
	endTicker := ts.holdStream(t, "/stream?count=2&interval=1m")
	ts.subscribe(t, "topic=a", nil)

	wantTooManyStreams(t, ts.do(t, "GET", "/stream?count=1", nil, nil))
	wantTooManyStreams(t, ts.do(t, "POST", "/stream", strings.NewReader(`{"text": "hi"}`), map[string]string{"Content-Type": "application/json"}))
	wantTooManyStreams(t, ts.do(t, "GET", "/api/v1/events?topic=b", nil, nil))
	if got := broker.Stats().Subscribers; got != 1 {
		t.Errorf("the broker holds %d subscriptions, want 1: a refused one stayed", got)
	}

	ts.drainReturned()
	endTicker()
	ts.waitReturned(t, "/stream")
	p := ts.subscribe(t, "topic=b", nil)
	id := ts.publish(t, "b", `{"data": "after a slot came free"}`)
	if got := next(t, p); got.ID != id {
		t.Errorf("event %+v, want id %s", got, id)
	}
	wantTooManyStreams(t, ts.do(t, "GET", "/stream?count=1", nil, nil))
}

func TestTickerLastsAtMostMaxDuration(t *testing.T) {
	opts := testOptions()
	opts.Demo.MaxDuration = 3 * time.Second
	ts := newTestServer(t, opts)
	ts.holdStream(t, "/stream?count=3&interval=1s") // at the limit

	msg := wantJSONError(t, ts.do(t, "GET", "/stream?count=4&interval=1s", nil, nil), http.StatusBadRequest)
	if want := "count 4 × interval 1s = 4s: demo streams last at most 3s (demo.max_duration)"; !strings.Contains(msg, want) {
		t.Errorf("error %q, want it to say %q", msg, want)
	}

	ts = newTestServer(t, testOptions()) // the default, 10m
	msg = wantJSONError(t, ts.do(t, "GET", "/stream?count=10000&interval=60s", nil, nil), http.StatusBadRequest)
	if want := "count 10000 × interval 1m0s = 166h40m0s: demo streams last at most 10m0s (demo.max_duration)"; !strings.Contains(msg, want) {
		t.Errorf("error %q, want it to say %q", msg, want)
	}
}

func TestTokenStreamCaps(t *testing.T) {
	opts := testOptions()
	opts.Demo.MaxDuration = 3 * time.Second
	opts.Demo.MaxTokens = 3
	ts := newTestServer(t, opts)
	post := func(body string) *http.Response {
		return ts.do(t, "POST", "/stream", strings.NewReader(body), map[string]string{"Content-Type": "application/json"})
	}

	msg := wantJSONError(t, post(`{"text": "one two three four", "interval": "0s"}`), http.StatusRequestEntityTooLarge)
	if want := "text has 4 words; POST /stream takes at most 3 (demo.max_tokens)"; !strings.Contains(msg, want) {
		t.Errorf("error %q, want it to say %q", msg, want)
	}
	msg = wantJSONError(t, post(`{"text": "one two three", "interval": "1001ms"}`), http.StatusBadRequest)
	if want := "words 3 × interval 1.001s = 3.003s: demo streams last at most 3s (demo.max_duration)"; !strings.Contains(msg, want) {
		t.Errorf("error %q, want it to say %q", msg, want)
	}

	resp := post(`{"text": "one two three", "interval": "1ms"}`) // at the word limit
	wantStreamHeaders(t, resp)
	if _, events := readAll(t, resp.Body); len(events) != 4 {
		t.Errorf("%d events, want 3 words and [DONE]", len(events))
	}
	resp = post(`{"text": "one two three", "interval": "1s"}`) // at the duration limit
	wantStreamHeaders(t, resp)
}

// TestRefusalsAreLoggedOnceASecond sends a burst of refusals and checks
// the log: one warn line with their count once the second is over, no
// error line, and a new line for a refusal after it.
func TestRefusalsAreLoggedOnceASecond(t *testing.T) {
	skipOnNATS(t, synctestWhy)
	synctest.Test(t, func(t *testing.T) {
		var logs testlog.Buffer
		opts, _ := hubOptions(t, stream.MemoryOptions{MaxSubscribers: 1})
		opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		opts.Stream.MaxStreams = 2
		h := New(opts)
		defer h.Close()
		client := bubbleServer(t, h)
		get := func(path string) *http.Response {
			t.Helper()
			resp, err := client.Get("http://ssehub" + path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { resp.Body.Close() })
			return resp
		}
		wantStreamHeaders(t, get("/api/v1/events?topic=a"))
		// Hub full: 503 for hub.max_subscribers, one stream slot left.
		for range 3 {
			wantJSONError(t, get("/api/v1/events?topic=a"), http.StatusServiceUnavailable)
		}
		wantStreamHeaders(t, get("/stream?count=2&interval=1m"))
		const burst = 40
		for i := range burst {
			path := "/stream"
			if i%2 == 1 {
				path = "/api/v1/events?topic=b"
			}
			wantTooManyStreams(t, get(path))
		}
		synctest.Wait()
		warns := func() []string {
			var lines []string
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, "level=WARN") {
					lines = append(lines, line)
				}
			}
			return lines
		}
		if got := warns(); len(got) != 0 {
			t.Fatalf("warn lines before the second was over: %q", got)
		}

		time.Sleep(refusalWindow)
		synctest.Wait()
		got := warns()
		if len(got) != 1 || !strings.Contains(got[0], "count=43 over_max_streams=40 over_max_subscribers=3") {
			t.Fatalf("warn lines %q, want one with count=43", got)
		}
		if strings.Contains(logs.String(), "level=ERROR") {
			t.Errorf("refusals logged at error:\n%s", logs.String())
		}
		if n := strings.Count(logs.String(), "level=INFO msg=request method=GET path=/stream status=503"); n != burst/2 {
			t.Errorf("%d info access lines for 503 on /stream, want %d", n, burst/2)
		}

		wantTooManyStreams(t, get("/stream"))
		time.Sleep(refusalWindow / 2)
		synctest.Wait()
		if got := warns(); len(got) != 1 {
			t.Fatalf("warn lines %q, want still one half a second into the next window", got)
		}
		time.Sleep(refusalWindow / 2)
		synctest.Wait()
		if got := warns(); len(got) != 2 || !strings.Contains(got[1], "count=1 over_max_streams=1 over_max_subscribers=0") {
			t.Fatalf("warn lines %q, want a second one with count=1", got)
		}
	})
}

// Once a crowd of streams has left, the slots have its memory returned,
// once; streams refused for capacity are no crowd.
func TestStreamSlotsReturnACrowdsMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		releases := 0
		s := newStreamSlots(crowdStreams, func() { releases++ })
		defer s.drain.Stop()
		for range crowdStreams {
			if err := s.take(); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.take(); err == nil {
			t.Fatal("take past max_streams succeeded")
		}
		for range crowdStreams {
			s.release()
		}
		time.Sleep(crowdQuiet)
		synctest.Wait()
		if releases != 1 {
			t.Fatalf("%d releases after %d streams left, want 1", releases, crowdStreams)
		}
		for range crowdStreams - 1 {
			if err := s.take(); err != nil {
				t.Fatal(err)
			}
			s.release()
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if releases != 1 {
			t.Errorf("%d releases after streams came and went one at a time, want still 1", releases)
		}
	})
}

// A release is logged, with the streams still open.
func TestMemoryReleaseIsLogged(t *testing.T) {
	var logs testlog.Buffer
	opts, _ := hubOptions(t, stream.MemoryOptions{})
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	h := New(opts)
	defer h.Close()
	h.releaseMemory()
	if got := logs.String(); !strings.Contains(got, "level=INFO msg=\"a crowd of streams left: returned the freed memory to the system\" open_streams=0 took=") {
		t.Errorf("log %q, want the release's line", got)
	}
}

// The clients refused together are told to come back at different times:
// Retry-After is 3 to 8 s, at random.
func TestRefusalsSpreadTheirRetryAfter(t *testing.T) {
	opts, _ := hubOptions(t, stream.MemoryOptions{})
	opts.Stream.MaxStreams = 1
	ts := newTestServer(t, opts)
	ts.holdStream(t, "/stream?count=2&interval=1m") // the one slot
	seen := map[int]int{}
	for range 60 {
		resp := ts.do(t, "GET", "/api/v1/events?topic=a", nil, nil)
		wantTooManyStreams(t, resp)
		s, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if err != nil || s < 3 || s > 8 {
			t.Fatalf("Retry-After %q, want 3 to 8", resp.Header.Get("Retry-After"))
		}
		seen[s]++
	}
	if len(seen) < 4 { // 60 draws of 6 values: fewer than 4 has odds below 1e-20
		t.Errorf("Retry-After values %v in 60 refusals: not spread", seen)
	}
}

// 503s for the broker's store say busy, full or unreachable apart, and are
// logged as refusals for capacity are: one warn line a window with their
// count by cause and the last one's error, which the client is not told.
func TestStoreRefusalsAreLoggedWithTheirCause(t *testing.T) {
	skipOnNATS(t, synctestWhy)
	synctest.Test(t, func(t *testing.T) {
		var logs testlog.Buffer
		opts, _ := hubOptions(t, stream.MemoryOptions{})
		opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		h := New(opts)
		defer h.Close()
		for _, tc := range []struct {
			err  error
			want string
		}{
			{fmt.Errorf("nats replay: %w: all 64 reads in use", stream.ErrBusy), "the event store is busy: try again in a moment"},
			{fmt.Errorf("nats replay: %w: consumers capped", stream.ErrBusy), "the event store is busy: try again in a moment"},
			{fmt.Errorf("nats publish: %w: no responders", stream.ErrUnavailable), "the event store is unreachable: try again in a moment"},
			{fmt.Errorf("nats publish: %w: insufficient resources", stream.ErrStoreFull), "the event store is full: nothing was stored; try again later"},
		} {
			rec := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(rec)
			c.Request = httptest.NewRequest("GET", "/api/v1/events?topic=a", nil)
			h.abortWithError(c, tc.err)
			if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), tc.want) || rec.Header().Get("Retry-After") == "" {
				t.Errorf("%v: %d %s, Retry-After %q; want 503 %q", tc.err, rec.Code, rec.Body, rec.Header().Get("Retry-After"), tc.want)
			}
		}
		synctest.Wait()
		if strings.Contains(logs.String(), "level=WARN") {
			t.Fatalf("warn lines before the window closed:\n%s", logs.String())
		}
		time.Sleep(refusalWindow)
		synctest.Wait()
		want := `level=WARN msg="refused requests: the event store is busy, full or unreachable" count=4 busy=2 full=1 unreachable=1 last_cause="nats publish: event store full: insufficient resources"`
		if !strings.Contains(logs.String(), want) || strings.Count(logs.String(), "level=WARN") != 1 {
			t.Fatalf("log:\n%s\nwant one warn line with %s", logs.String(), want)
		}
	})
}

// panickingBroker is the hub's broker with a Subscribe that panics, or,
// with sub set, whose subscriptions panic when asked their position: the
// panics a broker's bug would cause after a stream's slot is taken and
// before its stream runs. It hides a NATS broker's SubscribeContext, so
// Subscribe is called.
type panickingBroker struct {
	testBroker
	sub bool
}

func (b panickingBroker) Subscribe(patterns []string, lastEventID string) (stream.Subscription, error) {
	if !b.sub {
		panic("subscribe boom")
	}
	sub, err := b.testBroker.Subscribe(patterns, lastEventID)
	if err != nil {
		return nil, err
	}
	return panickingSubscription{sub}, nil
}

type panickingSubscription struct{ stream.Subscription }

func (panickingSubscription) Position() string { panic("position boom") }

// TestPanicBeforeASubscriptionRunsGivesBackItsSlot panics in the broker
// once a subscription's slot is taken: in Subscribe, and in the
// subscription it returned, before its stream runs. Either way the client
// gets a 500 in JSON, in either transport, and the slot, the subscription
// and the stream's count are given back: the slot stayed taken for good
// (with stream.max_streams 1, every later stream was refused, and a
// shutdown waited out its bound), and with the detached transport the
// connection, taken over, was never answered nor closed.
func TestPanicBeforeASubscriptionRunsGivesBackItsSlot(t *testing.T) {
	for _, sub := range []bool{false, true} {
		t.Run(fmt.Sprintf("in the subscription %v", sub), func(t *testing.T) {
			var logs testlog.Buffer
			opts, broker := hubOptions(t, stream.MemoryOptions{})
			opts.Hub.Broker = panickingBroker{testBroker: broker, sub: sub}
			opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			opts.Stream.MaxStreams = 1
			ts := newTestServer(t, opts)
			client := &http.Client{Timeout: 10 * time.Second}
			resp, err := client.Get(ts.URL + "/api/v1/events?topic=a")
			if err != nil {
				t.Fatalf("subscribe: %v, want a 500", err)
			}
			defer resp.Body.Close()
			if msg := wantJSONError(t, resp, http.StatusInternalServerError); msg != "Internal Server Error" {
				t.Errorf("error %q, want nothing of the panic", msg)
			}
			waitFor(t, func() bool { return strings.Contains(logs.String(), "boom") })
			// A detached stream logs its panic before its cleanup closes
			// the subscription.
			waitFor(t, func() bool { return broker.Stats().Subscribers == 0 })
			// The one slot is free again, once the stream is counted out:
			// a detached one gives it back after its connection is closed
			// and the panic logged.
			waitMetrics(t, ts, []string{`ssehub_streams_active 0`})
			_, events := readAll(t, ts.do(t, "GET", "/stream?count=1", nil, nil).Body)
			if len(events) != 2 {
				t.Errorf("after the panic: %d events from /stream, want 2", len(events))
			}
			// Counted as the 500 it was, detached too, though the
			// handler returned without a panic there.
			waitMetrics(t, ts, []string{
				`ssehub_streams_active 0`,
				`ssehub_http_requests_total{code="500",method="GET",route="/api/v1/events"} 1`,
			})
			// Its access line says what was sent: the answer's bytes.
			line := fmt.Sprintf("path=/api/v1/events status=500 bytes=%d ", len(internalErrorBody))
			if n := logs.Count(line); n != 1 {
				t.Errorf("%d access lines %q, want one:\n%s", n, line, logs.String())
			}
			ts.h.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			if err := ts.h.Wait(ctx); err != nil {
				t.Errorf("Wait after the panic: %v", err)
			}
		})
	}
}

// waitingPanickingBroker subscribes once the client's request has ended
// (SubscribeContext's context, which the handler ends with it), then
// returns a subscription that panics when asked its position.
type waitingPanickingBroker struct{ testBroker }

func (b waitingPanickingBroker) SubscribeContext(ctx context.Context, patterns []string, lastEventID string) (stream.Subscription, error) {
	<-ctx.Done()
	sub, err := b.Subscribe(patterns, lastEventID)
	if err != nil {
		return nil, err
	}
	return panickingSubscription{sub}, nil
}

// TestPanicBeforeAStreamRunsIsLoggedWhenItsClientIsGone panics before a
// subscription's stream runs, its client gone already: the stream that
// runs to answer the panic ends before its first step, and the panic was
// lost, neither logged nor counted (the stream ended as client_gone).
func TestPanicBeforeAStreamRunsIsLoggedWhenItsClientIsGone(t *testing.T) {
	var logs testlog.Buffer
	opts, broker := hubOptions(t, stream.MemoryOptions{})
	opts.Hub.Broker = waitingPanickingBroker{broker}
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	ts := newTestServer(t, opts)
	conn := ts.dial(t)
	if _, err := io.WriteString(conn, "GET /api/v1/events?topic=a HTTP/1.1\r\nHost: ssehub\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	waitMetrics(t, ts, []string{
		`ssehub_streams_ended_total{reason="panicked"} 1`,
		`ssehub_streams_active 0`,
	})
	waitFor(t, func() bool { return logs.Count("position boom") > 0 })
	if n := logs.Count("position boom"); n != 1 {
		t.Errorf("the panic logged %d times, want once:\n%s", n, logs.String())
	}
	if n := ts.h.slots.open.Load(); n != 0 {
		t.Errorf("%d stream slots still taken after the panic", n)
	}
	if got := broker.Stats().Subscribers; got != 0 {
		t.Errorf("the broker holds %d subscriptions, want none", got)
	}
}

// A refusal after Close (a publish in flight during a shutdown that the
// store refused) is logged at once: it started a window of its own, whose
// timer logged it up to a second after Close had returned, when nothing
// of the handler may run any more.
func TestRefusalAfterCloseIsLoggedAtOnce(t *testing.T) {
	skipOnNATS(t, synctestWhy)
	synctest.Test(t, func(t *testing.T) {
		var logs testlog.Buffer
		opts, _ := hubOptions(t, stream.MemoryOptions{})
		opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		h := New(opts)
		h.Close()
		rec := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(rec)
		c.Request = httptest.NewRequest("POST", "/api/v1/topics/a/events", nil)
		h.abortWithError(c, fmt.Errorf("nats publish: %w: no responders", stream.ErrUnavailable))
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", rec.Code)
		}
		synctest.Wait()
		if !strings.Contains(logs.String(), "count=1 busy=0 full=0 unreachable=1") {
			t.Fatalf("log right after the refusal:\n%s\nwant its line", logs.String())
		}
	})
}

// A stream that starts after Close, from a request already in flight on a
// kept-alive connection when the server's shutdown began, is 503 shutting
// down: it took a slot that Wait, drained already, no longer waited for.
func TestStreamAfterCloseIsRefused(t *testing.T) {
	ts := newHubServer(t)
	ts.h.Close()
	for _, path := range []string{"/stream?count=1", "/api/v1/events?topic=a"} {
		resp := ts.do(t, "GET", path, nil, nil)
		msg := wantJSONError(t, resp, http.StatusServiceUnavailable)
		if !strings.Contains(msg, "shutting down") || resp.Header.Get("Retry-After") == "" {
			t.Errorf("GET %s after Close: %q, Retry-After %q; want shutting down, with Retry-After", path, msg, resp.Header.Get("Retry-After"))
		}
	}
	if n := ts.h.slots.open.Load(); n != 0 {
		t.Errorf("%d slots taken after Close", n)
	}
}

// After Close, with every slot still taken by the streams that are
// ending, a stream is 503 shutting down too, and no refusal for capacity:
// it was refused for max_streams, and each such refusal, logged at once
// after Close, wrote a warn line per request saying the server was full.
func TestStreamAfterCloseWithEverySlotTakenIsRefusedAsShuttingDown(t *testing.T) {
	var logs testlog.Buffer
	opts, _ := hubOptions(t, stream.MemoryOptions{})
	opts.Stream.MaxStreams = 1
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	ts := newTestServer(t, opts)
	if err := ts.h.slots.take(); err != nil { // a stream still ending
		t.Fatal(err)
	}
	ts.h.Close()
	for _, path := range []string{"/stream?count=1", "/api/v1/events?topic=a"} {
		resp := ts.do(t, "GET", path, nil, nil)
		msg := wantJSONError(t, resp, http.StatusServiceUnavailable)
		if !strings.Contains(msg, "shutting down") {
			t.Errorf("GET %s after Close with every slot taken: %q, want shutting down", path, msg)
		}
	}
	if strings.Contains(logs.String(), "refused") {
		t.Errorf("log after Close:\n%s\nwant no refusal for capacity", logs.String())
	}
	ts.h.slots.release()
}
