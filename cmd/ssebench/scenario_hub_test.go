package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/handler"
	"github.com/ssehub/ssehub/internal/stream"
)

const testToken = "bench-secret"

// newHubServer serves the real router with the in-memory broker.
func newHubServer(t *testing.T, opts stream.MemoryOptions) *httptest.Server {
	t.Helper()
	return newHubServerVia(t, opts, nil)
}

// newHubServerVia is newHubServer answering each request with via, which
// may pass it on to the hub, h: a server that misbehaves in one way. A nil
// via passes every request on.
func newHubServerVia(t *testing.T, opts stream.MemoryOptions, via func(w http.ResponseWriter, r *http.Request, h http.Handler)) *httptest.Server {
	t.Helper()
	broker := stream.NewMemory(opts)
	h := handler.New(handler.Options{Hub: handler.HubOptions{Broker: broker, PublishTokens: []string{testToken}}})
	var served http.Handler = h
	if via != nil {
		served = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { via(w, r, h) })
	}
	srv := httptest.NewServer(served)
	t.Cleanup(func() {
		h.Close()
		broker.Close()
		srv.Close()
	})
	return srv
}

func TestFanoutScenario(t *testing.T) {
	srv := newHubServer(t, stream.MemoryOptions{})
	rep, code, stderr := runJSON(t, "-url", srv.URL, "-scenario", "fanout", "-n", "10",
		"-rate", "200", "-events", "20", "-duration", "30s", "-publishers", "3", "-token", testToken, "-size", "100")
	if code != 0 {
		t.Fatalf("exit %d, aborted %q; stderr: %s", code, rep.Aborted, stderr)
	}
	p, d := rep.Publish, rep.Delivery
	if p == nil || d == nil || rep.Connect == nil {
		t.Fatalf("report lacks publish, delivery or connect: %+v", rep)
	}
	if p.OK != 20 || p.Failed != 0 || p.OK != p.Sent {
		t.Errorf("publish = %+v, want the 20 events accepted", *p)
	}
	if rep.Connect.Connected != 10 || d.Expected != 10*p.OK {
		t.Errorf("connected %d, expected %d; want 10 and 10 × %d", rep.Connect.Connected, d.Expected, p.OK)
	}
	if d.Delivered != d.Expected || d.Missing != 0 || d.Duplicates != 0 || d.OutOfOrder != 0 || d.Dropped != 0 {
		t.Errorf("delivery = %+v, want all delivered once, in order", *d)
	}
	if d.Latency == nil || d.Latency.Count != d.Delivered {
		t.Errorf("latency = %+v, want one sample per delivered event", d.Latency)
	}
	if rep.Server.SubscribersMax != 10 {
		t.Errorf("ssehub_subscribers peaked at %d, want 10", rep.Server.SubscribersMax)
	}
}

func TestFanoutScenarioSeesSlowConsumerDrops(t *testing.T) {
	// A one-event queue cannot hold a burst: subscribers are dropped, and
	// the report must show it rather than a clean run.
	srv := newHubServer(t, stream.MemoryOptions{SubscriberBuffer: 1})
	rep, code, _ := runJSON(t, "-url", srv.URL, "-scenario", "fanout", "-n", "20",
		"-rate", "100000", "-events", "2000", "-duration", "30s", "-publishers", "4", "-token", testToken, "-drain", "1s")
	d := rep.Delivery
	if d == nil || rep.Publish == nil || rep.Publish.OK == 0 {
		t.Fatalf("report lacks publishing or delivery: %+v", rep)
	}
	if d.Dropped == 0 || d.Missing == 0 {
		t.Errorf("delivery = %+v, want dropped streams and missing events", *d)
	}
	// A run that lost events failed, and says so to the script that ran
	// it, but it was not cut short: its figures are a run's.
	want := fmt.Sprintf("%d of %d events missing", d.Missing, d.Expected)
	if code != exitFailed || !strings.Contains(rep.Failed, want) || rep.Aborted != "" {
		t.Errorf("exit %d, failed %q, aborted %q; want %d, %q and not aborted", code, rep.Failed, rep.Aborted, exitFailed, want)
	}
}

func TestPublishScenarioWithoutToken(t *testing.T) {
	srv := newHubServer(t, stream.MemoryOptions{})
	rep, code, _ := runJSON(t, "-url", srv.URL, "-scenario", "publish", "-events", "5", "-duration", "30s", "-publishers", "2")
	if code != 0 || rep.Publish == nil {
		t.Fatalf("exit %d, publish %+v", code, rep.Publish)
	}
	if rep.Publish.OK != 0 || rep.Publish.Failed == 0 || len(rep.Publish.Errors) == 0 ||
		!strings.Contains(rep.Publish.Errors[0].Error, "status 401") {
		t.Errorf("publish = %+v, want every request refused with 401", *rep.Publish)
	}
}

func TestPublishScenario(t *testing.T) {
	srv := newHubServer(t, stream.MemoryOptions{})
	rep, code, _ := runJSON(t, "-url", srv.URL, "-scenario", "publish", "-events", "50", "-duration", "30s", "-publishers", "2", "-token", testToken)
	if code != 0 || rep.Publish == nil || rep.Publish.OK != 50 || rep.Publish.Sent != 50 || rep.Publish.Failed != 0 || rep.Delivery != nil {
		t.Fatalf("exit %d, publish %+v, delivery %+v; want the 50 events accepted and no delivery section", code, rep.Publish, rep.Delivery)
	}
}

func TestIdleScenario(t *testing.T) {
	srv := newHubServer(t, stream.MemoryOptions{})
	rep, code, stderr := runJSON(t, "-url", srv.URL, "-scenario", "idle", "-n", "30", "-hold", "100ms", "-settle", "3s")
	if code != 0 {
		t.Fatalf("exit %d, aborted %q; stderr: %s", code, rep.Aborted, stderr)
	}
	i := rep.Idle
	if i == nil || rep.Connect == nil || rep.Connect.Connected != 30 {
		t.Fatalf("idle %+v, connect %+v; want 30 held", i, rep.Connect)
	}
	if i.GoroutinesHeld < rep.Server.GoroutinesIdle+30 {
		t.Errorf("goroutines held %d, idle %d: want at least one more per subscriber", i.GoroutinesHeld, rep.Server.GoroutinesIdle)
	}
	// The server runs in this process, where the client's own goroutines
	// also count, so only the subscriber gauge is asserted to settle.
	if rep.Server.SubscribersMax != 30 {
		t.Errorf("ssehub_subscribers peaked at %d, want 30", rep.Server.SubscribersMax)
	}
	if i.SettleGoroutines < 0 {
		t.Errorf("goroutines did not return to baseline after disconnect: %+v", *i)
	}
}

func TestTableReportAndProgressLine(t *testing.T) {
	srv := newHubServer(t, stream.MemoryOptions{})
	var stdout, stderr bytes.Buffer
	// The run lasts 1 s, several ticks of progress even when the machine
	// gives the process no time for a while: with 300 ms, a stall of
	// about 300 ms (a loaded 2-core machine under -race; a SIGSTOP of
	// 400 ms in tests) left one line, and the test failed (1 in 185).
	code := run(t.Context(), []string{
		"-url", srv.URL, "-scenario", "fanout", "-n", "5",
		"-rate", "50", "-duration", "1s", "-token", testToken, "-progress", "50ms", "-timeout", "60s",
	},
		&stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, stderr.String())
	}
	table := stdout.String()
	for _, want := range []string{"scenario              fanout", "connect               5/5 connected", "delivered ", "(100.00%)", "  latency             p50 ", "published ", "server ", "client "} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	// stderr is not a terminal here: one progress line per tick.
	progress := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(progress) < 2 || !strings.Contains(stderr.String(), "open 5/5") || !strings.Contains(stderr.String(), "published ") {
		t.Errorf("progress lines %q, want several, with open 5/5 and published", progress)
	}
}

func TestReplayScenario(t *testing.T) {
	srv := newHubServer(t, stream.MemoryOptions{})
	rep, code, stderr := runJSON(t, "-url", srv.URL, "-scenario", "replay", "-events", "300", "-n", "2", "-token", testToken)
	if code != 0 {
		t.Fatalf("exit %d, aborted %q; stderr: %s", code, rep.Aborted, stderr)
	}
	if rep.Publish == nil || rep.Publish.OK != 300 || rep.Publish.Failed != 0 {
		t.Fatalf("publish = %+v, want 300 accepted", rep.Publish)
	}
	r, d := rep.Replay, rep.Delivery
	if r == nil || d == nil || r.Events != 299 || r.Complete != 2 || r.Time.Count != 2 || r.Time.Max <= 0 {
		t.Fatalf("replay = %+v, delivery = %+v; want 299 events to both subscribers, timed", r, d)
	}
	if d.Expected != 2*299 || d.Delivered != d.Expected || d.Duplicates != 0 || d.OutOfOrder != 0 || d.Resets != 0 || d.Dropped != 0 {
		t.Errorf("delivery = %+v, want every event after the first once, in order", *d)
	}
}

// With -sub-urls the subscribers are spread over the instances, and the
// run waits for each instance's share before it publishes.
func TestFanoutScenarioSpreadsSubscribers(t *testing.T) {
	broker := stream.NewMemory(stream.MemoryOptions{})
	var servers [2]*httptest.Server
	for i := range servers {
		h := handler.New(handler.Options{Hub: handler.HubOptions{Broker: broker, PublishTokens: []string{testToken}}})
		servers[i] = httptest.NewServer(h)
		t.Cleanup(func() { h.Close(); servers[i].Close() })
	}
	t.Cleanup(broker.Close)
	rep, code, stderr := runJSON(t, "-url", servers[0].URL, "-sub-urls", servers[1].URL, "-scenario", "fanout", "-n", "7",
		"-rate", "100", "-events", "10", "-duration", "30s", "-token", testToken)
	if code != 0 {
		t.Fatalf("exit %d, aborted %q; stderr: %s", code, rep.Aborted, stderr)
	}
	if d := rep.Delivery; d == nil || rep.Publish.OK != 10 || d.Expected != 7*10 || d.Delivered != d.Expected {
		t.Fatalf("delivery = %+v, want every event to all 7", d)
	}
}

// Events published with -event reach the subscribers under that name:
// they are the run's own events, delivered, not "other" events.
func TestFanoutScenarioWithEventName(t *testing.T) {
	srv := newHubServer(t, stream.MemoryOptions{})
	rep, code, stderr := runJSON(t, "-url", srv.URL, "-scenario", "fanout", "-n", "3",
		"-rate", "100", "-events", "10", "-duration", "30s", "-token", testToken, "-event", "tick", "-drain", "2s")
	if code != 0 {
		t.Fatalf("exit %d, aborted %q; stderr: %s", code, rep.Aborted, stderr)
	}
	d := rep.Delivery
	if d == nil || rep.Publish == nil || rep.Publish.OK == 0 {
		t.Fatalf("report lacks publishing or delivery: %+v", rep)
	}
	if d.Delivered != d.Expected || d.Other != 0 || d.Latency == nil {
		t.Errorf("delivery = %+v, want every event named tick delivered, none other", *d)
	}
}

// An event's send time is taken once its connection is open: the dial
// (here a TLS handshake) is no part of the event's latency nor of the
// publish request's time.
func TestPublishTimeExcludesTheDial(t *testing.T) {
	broker := stream.NewMemory(stream.MemoryOptions{})
	h := handler.New(handler.Options{Hub: handler.HubOptions{Broker: broker, PublishTokens: []string{testToken}}})
	var hello, firstTS atomic.Int64 // Unix ns: the first handshake's start, the first event's send time
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			if _, ts, ok := parsePayload(string(body)); ok {
				firstTS.CompareAndSwap(0, ts)
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		h.ServeHTTP(w, r)
	}))
	srv.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		hello.CompareAndSwap(0, time.Now().UnixNano())
		return nil, nil
	}}
	srv.StartTLS()
	t.Cleanup(func() {
		h.Close()
		broker.Close()
		srv.Close()
	})
	// No subscribers and no /metrics: the one publisher's is the only
	// connection, so the first handshake is its dial.
	rep, code, stderr := runJSON(t, "-url", srv.URL, "-insecure", "-scenario", "publish", "-no-metrics",
		"-publishers", "1", "-rate", "100", "-events", "5", "-duration", "30s", "-token", testToken)
	if code != 0 || rep.Publish == nil || rep.Publish.OK == 0 {
		t.Fatalf("exit %d, publish %+v; stderr: %s", code, rep.Publish, stderr)
	}
	if ts, dial := firstTS.Load(), hello.Load(); ts < dial {
		t.Errorf("the first event's send time is %v before its connection's handshake began", time.Duration(dial-ts))
	}
}

// -timeout bounds the whole run, a publish request that the server never
// answers included: the request is cut off, not left to its own timeout.
func TestTimeoutCutsOffAPublishInFlight(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // answers only once the test is over
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := run(t.Context(), []string{
		"-url", srv.URL, "-scenario", "publish", "-no-metrics", "-publishers", "1",
		"-duration", "30s", "-timeout", "200ms", "-token", testToken, "-json", "-quiet",
	}, &stdout, &stderr)
	took := time.Since(start)
	if code != 1 || !strings.Contains(stdout.String(), "-timeout 200ms reached") {
		t.Errorf("exit %d, report %s; want 1 and the run aborted by -timeout", code, stdout.String())
	}
	// Within half a publish request's own timeout: far above the
	// -timeout, far below the request timeout the run waited for.
	if took > publishTimeout/2 {
		t.Errorf("the run took %v with -timeout 200ms", took)
	}
}

// With -sub-urls, the server's RSS is -url's instance's alone, so its rise
// is shared by the subscribers opened on that instance, not by all of
// them.
func TestRSSPerConnectionWithSubURLsCountsTheMeasuredInstance(t *testing.T) {
	broker := stream.NewMemory(stream.MemoryOptions{})
	var held [][]byte // what each subscription costs: touched, so resident
	var mu sync.Mutex
	var servers [2]*httptest.Server
	for i := range servers {
		h := handler.New(handler.Options{Hub: handler.HubOptions{Broker: broker, PublishTokens: []string{testToken}}})
		servers[i] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && r.URL.Path == "/api/v1/events" {
				b := make([]byte, 4<<20)
				for j := 0; j < len(b); j += 4096 {
					b[j] = 1
				}
				mu.Lock()
				held = append(held, b)
				mu.Unlock()
			}
			h.ServeHTTP(w, r)
		}))
		t.Cleanup(func() { h.Close(); servers[i].Close() })
	}
	t.Cleanup(broker.Close)
	// Both instances run in this process: -pid reads its RSS as the
	// measured server's. The heap the tests before this one freed is
	// given back to the system first: resident still, it would hold the
	// subscriptions' memory without a rise in RSS.
	runtime.GC()
	debug.FreeOSMemory()
	rep, code, stderr := runJSON(t, "-url", servers[0].URL, "-sub-urls", servers[1].URL, "-scenario", "fanout", "-n", "7",
		"-rate", "100", "-events", "10", "-duration", "30s", "-token", testToken, "-pid", strconv.Itoa(os.Getpid()), "-sample", "10ms")
	if code != 0 {
		t.Fatalf("exit %d, aborted %q; stderr: %s", code, rep.Aborted, stderr)
	}
	s := rep.Server
	if rise := s.RSSPeak - s.RSSIdle; rise < 7<<20 || s.RSSPerConn != rise/4 {
		t.Errorf("RSS idle %d, peak %d, per connection %d: want the rise shared by the 4 of 7 subscribers on -url", s.RSSIdle, s.RSSPeak, s.RSSPerConn)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(held) != 7 {
		t.Errorf("%d subscriptions, want 7", len(held))
	}
}

// A replay whose subscriber does not get every event within -drain has no
// time to the last: the run says so and fails, instead of reporting the
// times of the subscribers that did (here none: a time of 0).
func TestReplayScenarioIncompleteFails(t *testing.T) {
	// A history of 50 cannot replay 299 events: the resume gets a reset.
	srv := newHubServer(t, stream.MemoryOptions{HistorySize: 50})
	rep, code, _ := runJSON(t, "-url", srv.URL, "-scenario", "replay", "-events", "300", "-n", "1", "-token", testToken, "-drain", "200ms")
	if rep.Replay == nil || rep.Replay.Complete != 0 {
		t.Fatalf("replay = %+v, want no subscriber complete", rep.Replay)
	}
	if code != 1 || !strings.Contains(rep.Aborted, "1 of 1 subscribers") {
		t.Errorf("exit %d, aborted %q; want 1 and the incomplete subscriber named", code, rep.Aborted)
	}
}

// The wait for the subscriptions reads ssehub_subscribers. A read that
// fails (a /metrics request timing out while thousands connect) says
// nothing about them: the wait goes on, rather than letting the run
// publish before the subscriptions exist and count the events they miss
// against the server.
func TestAwaitSubscribersOutlastsAFailedMetricsRead(t *testing.T) {
	var calls atomic.Int64
	polledAgain := make(chan struct{})
	var once sync.Once
	srv := newHubServerVia(t, stream.MemoryOptions{}, func(w http.ResponseWriter, r *http.Request, h http.Handler) {
		if r.URL.Path == "/metrics" {
			switch n := calls.Add(1); {
			case n == 2: // the first read of the wait
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			case n > 2:
				once.Do(func() { close(polledAgain) })
			}
		}
		h.ServeHTTP(w, r)
	})
	o, err := parseOptions([]string{"-url", srv.URL, "-scenario", "fanout", "-n", "1", "-sample", "1h"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	target, err := parseTarget(o.url, o.allowRemote, o.insecure)
	if err != nil {
		t.Fatal(err)
	}
	b := newBench(o, target, io.Discard)
	if base := b.mon.baseline(t.Context()); base.subscribers != 0 {
		t.Fatalf("baseline %+v, want 0 subscribers", base)
	}
	// The subscriber connects once the wait has read the gauge again.
	done := make(chan struct{})
	defer func() { <-done }()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		defer close(done)
		select {
		case <-polledAgain:
		case <-ctx.Done():
			return
		}
		c, err := openStream(ctx, target, subscribePath(o.topic), 5*time.Second)
		if err != nil {
			t.Errorf("subscribing: %v", err)
			return
		}
		<-ctx.Done()
		_ = c.Close()
	}()
	b.awaitSubscribers(t.Context(), 1)
	if s := b.mon.latest(); s.subscribers != 1 {
		t.Errorf("the wait ended on a sample of %d subscribers after %d reads of /metrics, want 1", s.subscribers, calls.Load())
	}
}

// After the disconnect the idle scenario samples the server until it is
// back at its baseline. A sample that fails says nothing about that: the
// wait goes on, rather than ending at once and reporting that the server
// never got back.
func TestIdleSettleOutlastsAFailedMetricsRead(t *testing.T) {
	// Reads of /metrics: the baseline, the one at the end of -hold, then
	// the first after the disconnect, which fails.
	srv := hubFailingMetricsRead(t, 3)
	rep, code, stderr := runJSON(t, "-url", srv.URL, "-scenario", "idle", "-n", "10", "-hold", "50ms", "-settle", "3s", "-sample", "1h")
	if code != 0 || rep.Idle == nil {
		t.Fatalf("exit %d, aborted %q, idle %+v; stderr: %s", code, rep.Aborted, rep.Idle, stderr)
	}
	if i := rep.Idle; i.SettleGoroutines < 0 {
		t.Errorf("idle = %+v: want the goroutines back within -settle", *i)
	}
}

// Without an RSS source the RSS per connection is unknown, -1 as the
// report's other unknown server figures, not 0: summarize.py leaves a -1
// out of its medians and would take a 0 for a server that used no memory.
func TestRSSPerConnectionUnknownWithoutASource(t *testing.T) {
	srv := newHubServer(t, stream.MemoryOptions{})
	rep, code, stderr := runJSON(t, "-url", srv.URL, "-scenario", "fanout", "-n", "3", "-no-metrics",
		"-rate", "100", "-events", "5", "-duration", "30s", "-token", testToken)
	if code != 0 {
		t.Fatalf("exit %d, aborted %q; stderr: %s", code, rep.Aborted, stderr)
	}
	if s := rep.Server; s.Source != "none" || s.RSSIdle != -1 || s.RSSPerConn != -1 {
		t.Errorf("server = %+v, want RSS and RSS per connection unknown (-1)", s)
	}
}

// A publish request still in flight when -duration ends runs to its end,
// and if the server then fails it, that is a failed publish like any
// other: not one the end of the run cut off and that does not count.
func TestPublishFailingAfterTheDurationCounts(t *testing.T) {
	arrived, ended := make(chan struct{}), make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		once.Do(func() { close(arrived) })
		<-ended // -duration is over
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close() // no answer
		}
	}))
	t.Cleanup(srv.Close)
	target, err := parseTarget(srv.URL, false, false)
	if err != nil {
		t.Fatal(err)
	}
	p := newPublisher(target, "bench", testToken, "", 100)
	// The publishing phase ends once the first request has reached the
	// server, the way -duration ends while a request is in flight.
	p.runFor(t.Context(), 0, 1, func(ctx context.Context) (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-arrived:
			case <-ctx.Done():
			}
			cancel()
			close(ended)
		}()
		return ctx, cancel
	})
	if r := p.Report(); r.Sent != 1 || r.OK != 0 || r.Failed != 1 {
		t.Errorf("publish = %+v, want the one request sent and failed", *r)
	}
}

// A request time of a run where no publish succeeded did not happen: it
// is -1 in the report, as every figure that did not happen, not a p99 of
// 0 ms that summarize.py would take into its medians.
func TestPublishTimeWithoutAnAcceptedPublishIsUnknown(t *testing.T) {
	srv := newHubServer(t, stream.MemoryOptions{})
	rep, code, _ := runJSON(t, "-url", srv.URL, "-scenario", "publish", "-events", "5", "-duration", "30s", "-publishers", "1") // no token: 401s
	if code != 0 || rep.Publish == nil || rep.Publish.OK != 0 || rep.Publish.Failed == 0 {
		t.Fatalf("exit %d, publish %+v; want every request refused", code, rep.Publish)
	}
	if l := rep.Publish.Latency; l.Count != 0 || l.P50 >= 0 || l.P99 >= 0 || l.Max >= 0 || l.Mean >= 0 {
		t.Errorf("request time = %+v, want no samples and every figure -1", l)
	}
}

// Without a baseline (its /metrics read failed) the goroutines per
// connection are unknown, not the goroutines held over the connections.
func TestIdleGoroutinesPerConnectionWithoutABaseline(t *testing.T) {
	srv := hubFailingMetricsRead(t, 1) // the baseline
	rep, code, stderr := runJSON(t, "-url", srv.URL, "-scenario", "idle", "-n", "10", "-hold", "50ms", "-settle", "0s", "-sample", "1h")
	if code != 0 || rep.Idle == nil {
		t.Fatalf("exit %d, aborted %q, idle %+v; stderr: %s", code, rep.Aborted, rep.Idle, stderr)
	}
	if i := rep.Idle; rep.Server.GoroutinesIdle != -1 || i.GoroutinesHeld <= 0 || i.GoroutinesPerConn != -1 {
		t.Errorf("goroutines idle %d, idle = %+v: want held known and per connection unknown (-1)", rep.Server.GoroutinesIdle, *i)
	}
}

// hubFailingMetricsRead serves a memory hub whose nth read of /metrics
// fails with 503.
func hubFailingMetricsRead(t *testing.T, n int64) *httptest.Server {
	t.Helper()
	var calls atomic.Int64
	return newHubServerVia(t, stream.MemoryOptions{}, func(w http.ResponseWriter, r *http.Request, h http.Handler) {
		if r.URL.Path == "/metrics" && calls.Add(1) == n {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// An event's latency runs from the time it was due, not from the time a
// publisher got round to it: a server that answers publishes slower than
// the rate lets events queue behind the publisher, and that wait is part
// of how late they arrive.
func TestEventLatencyCountsFromItsDueTime(t *testing.T) {
	const answer = 30 * time.Millisecond // per publish; the rate asks for one every 10 ms
	srv := newHubServerVia(t, stream.MemoryOptions{}, func(w http.ResponseWriter, r *http.Request, h http.Handler) {
		if r.Method == http.MethodPost {
			time.Sleep(answer) // a slow server, not a wait for the test
		}
		h.ServeHTTP(w, r)
	})
	rep, code, stderr := runJSON(t, "-url", srv.URL, "-scenario", "fanout", "-n", "1", "-publishers", "1",
		"-rate", "100", "-events", "10", "-duration", "30s", "-token", testToken)
	if code != 0 || rep.Publish == nil || rep.Delivery == nil || rep.Delivery.Latency == nil {
		t.Fatalf("exit %d, report %+v; stderr: %s", code, rep, stderr)
	}
	p, d := rep.Publish, rep.Delivery
	if p.Failed != 0 || d.Delivered != d.Expected || d.Expected != p.OK {
		t.Fatalf("publish %+v, delivery %+v: want every publish accepted and delivered", *p, *d)
	}
	// One connection sends events 0, 1, ... one after the other: event k,
	// due at k × 10 ms, is accepted no sooner than (k+1) × 30 ms, so the
	// last of n arrives at least 20 × (n-1) + 30 ms after it was due.
	n := p.OK
	if want := time.Duration(n-1)*(answer-10*time.Millisecond) + answer; time.Duration(d.Latency.Max) < want {
		t.Errorf("%d events, latency max %s: want at least %s, the last one's lag behind its due time", n, d.Latency.Max, Duration(want))
	}
}

// The server's CPU time counts its work after the subscribers left: a
// server that does its teardown after the disconnect pays for it in its
// figure, as it pays on a real deployment.
func TestServerCPUCountsTheTeardown(t *testing.T) {
	// ssebench samples the CPU time after the disconnect until it stops
	// rising by a clock tick over a step, for quietMax at most: a
	// teardown starved of CPU by a busy machine looks done, as a server's
	// would. Such a run says nothing; runs go on until one was not.
	for range 5 {
		if serverCPUCountsTheTeardown(t) {
			return
		}
	}
	t.Skip("the teardown was starved of CPU in every run")
}

// The wait for the server's CPU time to stop rising does not depend on
// -sample: sampled every 10 ms, a server that is busy but for less than
// a clock tick per sample (which /proc counts in) is still busy.
func TestServerCPUCountsTheTeardownWithAShortSample(t *testing.T) {
	for range 5 {
		if serverCPUCountsTheTeardown(t, "-sample", "10ms") {
			return
		}
	}
	t.Skip("the teardown was starved of CPU in every run")
}

// serverCPUCountsTheTeardown runs the fanout scenario against a server
// in this process that spins after its subscriber left, checks that the
// CPU time of the spin was counted, and says whether the spin had the
// CPU that check needs.
func serverCPUCountsTheTeardown(t *testing.T, flags ...string) (fair bool) {
	t.Helper()
	const teardown = 300 * time.Millisecond // CPU time the server spends once its subscriber left
	cpuNow := func() time.Duration {
		_, cpu, err := readProc(os.Getpid())
		if err != nil {
			t.Error(err)
			return teardown * 100 // ends the spin below
		}
		return cpu
	}
	var (
		spun    = make(chan struct{})
		starved bool // the spin went most of a quiet step without a clock tick, or took most of quietMax
	)
	broker := stream.NewMemory(stream.MemoryOptions{})
	h := handler.New(handler.Options{Hub: handler.HubOptions{Broker: broker, PublishTokens: []string{testToken}}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if r.Method == http.MethodGet && r.URL.Path == "/api/v1/events" {
			// The stream ended with its client: spin until this process
			// has used teardown more CPU time.
			defer close(spun)
			start := time.Now()
			last, lastAt := cpuNow(), start
			for end := last + teardown; last < end; {
				for i := 0; i < 1e5; i++ {
					_ = i * i
				}
				if cpu := cpuNow(); cpu > last {
					last, lastAt = cpu, time.Now()
				} else if time.Since(lastAt) > quietPoll*3/4 {
					starved = true
				}
			}
			if time.Since(start) > quietMax*3/4 {
				starved = true
			}
		}
	}))
	defer func() {
		h.Close()
		srv.Close()
		broker.Close()
	}()
	// The server runs in this process: -pid reads its CPU time. The
	// run itself, one subscriber and a few events, takes far less.
	rep, code, stderr := runJSON(t, append([]string{
		"-url", srv.URL, "-scenario", "fanout", "-n", "1", "-no-metrics",
		"-rate", "100", "-events", "5", "-duration", "30s", "-token", testToken, "-pid", strconv.Itoa(os.Getpid()),
	}, flags...)...)
	if code != 0 {
		t.Fatalf("exit %d, aborted %q, failed %q; stderr: %s", code, rep.Aborted, rep.Failed, stderr)
	}
	<-spun
	if starved {
		t.Logf("the teardown was starved of CPU: server CPU %.2f s", rep.Server.CPUSeconds)
		return false
	}
	if cpu := rep.Server.CPUSeconds; cpu < teardown.Seconds() {
		t.Errorf("server CPU %.2f s, want at least the %s of the teardown", cpu, teardown)
	}
	return true
}

// The delivery rate is over the time the events took to arrive: a run
// that waits out -drain for events that never come (here those of a
// publish the server refused) does not spread its deliveries over that
// wait.
func TestDeliveryRateLeavesOutTheDrainWait(t *testing.T) {
	const drain = 3 * time.Second
	var posts atomic.Int64
	srv := newHubServerVia(t, stream.MemoryOptions{}, func(w http.ResponseWriter, r *http.Request, h http.Handler) {
		if r.Method == http.MethodPost && posts.Add(1) == 2 {
			http.Error(w, `{"error":"busy"}`, http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	})
	rep, code, stderr := runJSON(t, "-url", srv.URL, "-scenario", "fanout", "-n", "3", "-publishers", "1",
		"-rate", "50", "-events", "10", "-duration", "30s", "-drain", drain.String(), "-token", testToken)
	if code != 0 {
		t.Fatalf("exit %d, aborted %q, failed %q; stderr: %s", code, rep.Aborted, rep.Failed, stderr)
	}
	p, d := rep.Publish, rep.Delivery
	if p == nil || d == nil || p.Failed != 1 || p.OK == 0 || d.Delivered != d.Expected {
		t.Fatalf("publish %+v, delivery %+v: want one publish refused, the others delivered", p, d)
	}
	// The events arrive within moments of their publish; the run then
	// waits -drain for the refused one's, in case it comes anyway.
	if over := time.Duration(float64(d.Delivered) / d.PerSecond * float64(time.Second)); over > time.Duration(p.Elapsed)+drain/3 {
		t.Errorf("%d events at %.1f/s: a rate over %s, for events published over %s", d.Delivered, d.PerSecond, over, p.Elapsed)
	}
}

// A replay subscriber resumes after the first event: a server that sends
// that event again (an off-by-one in its resume) sent a duplicate, not one
// of the events owed, which must not make up for one of those it lacks.
func TestReplayCountsTheResumedEventAgainAsADuplicate(t *testing.T) {
	srv := newHubServerVia(t, stream.MemoryOptions{}, func(w http.ResponseWriter, r *http.Request, h http.Handler) {
		if id := r.Header.Get("Last-Event-ID"); r.Method == http.MethodGet && id != "" {
			// The event the resume is after, sent first.
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			fmt.Fprintf(w, "id: %s\ndata: %s\n\n", id, appendPayload(nil, 0, time.Now().UnixNano(), 64))
		}
		h.ServeHTTP(w, r)
	})
	rep, code, stderr := runJSON(t, "-url", srv.URL, "-scenario", "replay", "-events", "20", "-n", "2", "-token", testToken)
	if code != 0 {
		t.Fatalf("exit %d, aborted %q; stderr: %s", code, rep.Aborted, stderr)
	}
	r, d := rep.Replay, rep.Delivery
	if r == nil || d == nil || r.Complete != 2 {
		t.Fatalf("replay = %+v, delivery = %+v; want both subscribers complete", r, d)
	}
	if d.Expected != 2*19 || d.Delivered != d.Expected || d.Duplicates != 2 {
		t.Errorf("delivery = %+v, want the 19 events after the first to each, and the first again as a duplicate", *d)
	}
}

// An event on the topic that the run did not publish (-topic names a topic
// others publish to too) may hold "seq" and "ts" fields of its own: it is
// another event, not one of the run's, whatever its numbers, and a huge
// sequence number is no bitmap to grow.
func TestAForeignEventWithAHugeSequenceNumberIsAnotherEvent(t *testing.T) {
	broker := stream.NewMemory(stream.MemoryOptions{})
	h := handler.New(handler.Options{Hub: handler.HubOptions{Broker: broker, PublishTokens: []string{testToken}}})
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		h.Close()
		broker.Close()
		srv.Close()
	})
	const topic = "shared.orders"
	// The other publisher's event comes once the run's subscriber is on.
	var once sync.Once
	wrapped := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			once.Do(func() {
				body := fmt.Sprintf(`{"data":{"seq":%d,"ts":%d,"order":"x"}}`, int64(1)<<62, time.Now().UnixNano())
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/topics/"+topic+"/events", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+testToken)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					t.Errorf("the other publisher's event: status %d", resp.StatusCode)
				}
			})
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(wrapped.Close)
	rep, code, stderr := runJSON(t, "-url", wrapped.URL, "-scenario", "fanout", "-n", "2", "-topic", topic, "-publishers", "1",
		"-rate", "100", "-events", "5", "-duration", "30s", "-token", testToken)
	if code != 0 {
		t.Fatalf("exit %d, aborted %q, failed %q; stderr: %s", code, rep.Aborted, rep.Failed, stderr)
	}
	if d := rep.Delivery; d == nil || d.Expected != 2*5 || d.Delivered != d.Expected || d.Other != 2 || d.Duplicates != 0 {
		t.Errorf("delivery = %+v, want the run's 5 events to both subscribers and the other publisher's as another event", d)
	}
}

// The connect wall time runs from the first dial to the last connect: a
// connect that failed, after waiting out -connect-timeout, does not
// stretch it.
func TestConnectWallEndsAtTheLastConnect(t *testing.T) {
	var streams atomic.Int64
	srv := newHubServerVia(t, stream.MemoryOptions{}, func(w http.ResponseWriter, r *http.Request, h http.Handler) {
		if r.URL.Path == "/api/v1/events" && streams.Add(1) == 2 {
			<-r.Context().Done() // no response head: the connect times out
			return
		}
		h.ServeHTTP(w, r)
	})
	const timeout = 2 * time.Second
	rep, code, stderr := runJSON(t, "-url", srv.URL, "-scenario", "idle", "-n", "2", "-hold", "10ms", "-settle", "0s",
		"-connect-timeout", timeout.String())
	if code != 0 {
		t.Fatalf("exit %d, aborted %q; stderr: %s", code, rep.Aborted, stderr)
	}
	c := rep.Connect
	if c == nil || c.Connected != 1 || c.Failed != 1 {
		t.Fatalf("connect = %+v, want 1 connected and 1 failed", c)
	}
	if wall := time.Duration(c.Wall); wall >= timeout/2 {
		t.Errorf("connect wall %s with one connect of %s at most: the failed connect's wait is in it", wall, time.Duration(c.Time.Max))
	}
}
