package main

// Browser tests of the demo page's Hub panel, on the harness in
// browser_test.go.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/testpki"
	"github.com/ssehub/ssehub/static"
)

const hubTestToken = "t0ken"

// hubTestConfig is the default config with publishing on. Its retry is far
// longer than any test: a dropped panel reconnects only when the test
// clicks "Resume now", so what happens while it is away is up to the test.
func hubTestConfig() config.Config {
	cfg := config.Default()
	cfg.Auth.PublishTokens = []string{hubTestToken}
	cfg.Stream.Retry = 10 * time.Minute
	return cfg
}

// hubLogEntry is one line of #hub-log: its class and data-id, and its text.
type hubLogEntry struct {
	Class string
	ID    string
	Text  string
}

// hubLog reads #hub-log.
func hubLog() chromedp.Action[[]hubLogEntry] {
	return callJS[[]hubLogEntry](`() => Array.from(document.querySelectorAll("#hub-log li"),
		(li) => ({ Class: li.className, ID: li.dataset.id ?? "", Text: li.textContent.trim() }))`)
}

// waitHubEvents waits until #hub-log holds n events. On a timeout the
// error shows the log.
func waitHubEvents(n int) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tgt *chromedp.Target) (chromedp.Void, error) {
		_, err := waitJS(fmt.Sprintf(`document.querySelectorAll("#hub-log li[data-id]").length === %d`, n))(ctx, tgt)
		if err != nil {
			got, lerr := hubLog()(ctx, tgt)
			return chromedp.Void{}, fmt.Errorf("want %d events in #hub-log, it holds %+v (%w): %w", n, got, lerr, err)
		}
		return chromedp.Void{}, nil
	}
}

// publishFromPage fills the publish form with data and clicks Publish, the
// n-th time (from 1) on this page, and returns what #hub-pub-result shows.
func publishFromPage(t *testing.T, ctx context.Context, n int, data string) string {
	t.Helper()
	runActions(t, ctx,
		typeInto("#hub-pub-data", data),
		chromedp.Click(chromedp.CSS("#hub-publish")),
		waitJS(fmt.Sprintf(`document.querySelector("#hub-pub-result").dataset.count === "%d"`, n)),
	)
	return mustRun(t, ctx, textOf("#hub-pub-result"))
}

// publishOverHTTP publishes {"data": data} to topic as a program would and
// returns the status and the answer's id or error text.
func publishOverHTTP(t *testing.T, base, token, topic, data string) (status int, idOrError string) {
	t.Helper()
	return publishWith(t, http.DefaultClient, base, token, topic, data)
}

// publishWith is publishOverHTTP with client.
func publishWith(t *testing.T, client *http.Client, base, token, topic, data string) (status int, idOrError string) {
	t.Helper()
	body, err := json.Marshal(map[string]string{"data": data})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/topics/"+topic+"/events", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct{ ID, Error string }
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatalf("publish answer %d: %v", resp.StatusCode, err)
	}
	if resp.StatusCode == http.StatusCreated {
		return resp.StatusCode, answer.ID
	}
	return resp.StatusCode, answer.Error
}

// metricValue reads one unlabelled metric from base's /metrics.
func metricValue(t *testing.T, base, name string) float64 {
	t.Helper()
	return metricWith(t, http.DefaultClient, base, name)
}

// TestBrowserHubDropAndResume subscribes the Hub panel to demo.>, publishes
// three events from the page, drops the connection, publishes two more over
// HTTP while the panel is away, and resumes: the panel sends Last-Event-ID,
// the hub replays the two, and the log holds the five events in publish
// order, each once. A reload then resumes from the id the page stored, with
// the last_event_id query.
func TestBrowserHubDropAndResume(t *testing.T) {
	base, _ := startMain(t, hubTestConfig())
	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)
	requests := watchRequests(t, ctx)

	runPage(t, ctx, base+"/",
		waitJS(`document.querySelector("#hub-topics").value === "demo.>"`),
		typeInto("#hub-token", hubTestToken),
		typeInto("#hub-pub-event", "chat"),
		recordTexts("#hub-state"),
		chromedp.Click(chromedp.CSS("#hub-connect")),
		waitText("#hub-state", "open"),
	)
	var ids []string
	for i := 1; i <= 3; i++ {
		result := publishFromPage(t, ctx, i, fmt.Sprintf(`{"n": %d}`, i))
		id, ok := strings.CutPrefix(result, "published id ")
		if !ok {
			t.Fatalf("publish %d from the page: %q", i, result)
		}
		ids = append(ids, id)
	}
	runActions(t, ctx,
		waitHubEvents(3),
		chromedp.Click(chromedp.CSS("#hub-drop")),
		waitText("#hub-state", "reconnecting"),
	)
	for i := 4; i <= 5; i++ {
		status, id := publishOverHTTP(t, base, hubTestToken, "demo.chat", fmt.Sprintf("while away %d", i))
		if status != http.StatusCreated {
			t.Fatalf("publish %d over HTTP: %d %s", i, status, id)
		}
		ids = append(ids, id)
	}
	// The panel is away: nothing new reaches its log until it resumes.
	if got := mustRun(t, ctx, hubLog()); len(got) != 3 {
		t.Fatalf("while dropped the log holds %+v, want the first 3 events only", got)
	}
	runActions(t, ctx,
		chromedp.Click(chromedp.CSS("#hub-resume")),
		waitHubEvents(5),
		waitText("#hub-state", "open"),
	)

	for i := 1; i < len(ids); i++ {
		prev, perr := strconv.ParseUint(ids[i-1], 10, 64)
		cur, err := strconv.ParseUint(ids[i], 10, 64)
		if perr != nil || err != nil || cur <= prev {
			t.Fatalf("published ids %q do not increase", ids)
		}
	}
	want := []hubLogEntry{
		{"event", ids[0], ids[0] + ` chat {"n":1}`},
		{"event", ids[1], ids[1] + ` chat {"n":2}`},
		{"event", ids[2], ids[2] + ` chat {"n":3}`},
		{"resume", "", "resumed after id " + ids[2]},
		{"event", ids[3], ids[3] + " while away 4"},
		{"event", ids[4], ids[4] + " while away 5"},
	}
	if got := mustRun(t, ctx, hubLog()); !slices.Equal(got, want) {
		t.Errorf("hub log\n got %+v\nwant %+v", got, want)
	}
	if got := mustRun(t, ctx, textOf("#hub-resumes")); got != "1" {
		t.Errorf("resumes %s, want 1", got)
	}
	if got := mustRun(t, ctx, textOf("#hub-last-id")); got != ids[4] {
		t.Errorf("last id %s, want %s", got, ids[4])
	}
	wantStates := []string{"idle", "connecting", "open", "reconnecting", "connecting", "open"}
	if got := mustRun(t, ctx, recordedTexts("#hub-state")); !slices.Equal(got, wantStates) {
		t.Errorf("hub states %q, want %q", got, wantStates)
	}
	subs := requests.to(ctx, "/api/v1/events")
	if len(subs) != 2 {
		t.Fatalf("%d subscribe requests, want the first and the resume: %+v", len(subs), subs)
	}
	if got := subs[0].Headers["Last-Event-Id"]; got != "" {
		t.Errorf("the first subscribe sent Last-Event-ID %q", got)
	}
	if got := subs[1].Headers["Last-Event-Id"]; got != ids[2] {
		t.Errorf("the resume sent Last-Event-ID %q, want %s", got, ids[2])
	}
	// The two events published while away came by replay.
	if got := metricValue(t, base, "ssehub_replayed_events_total"); got != 2 {
		t.Errorf("ssehub_replayed_events_total %v, want 2", got)
	}

	// A reloaded page remembers the last id and resumes from it.
	runActions(t, ctx,
		chromedp.Reload(),
		waitJS(`document.body.dataset.ready === "1"`),
		waitText("#hub-last-id", ids[4]),
	)
	status, id6 := publishOverHTTP(t, base, hubTestToken, "demo.news", "after reload")
	if status != http.StatusCreated {
		t.Fatalf("publish 6 over HTTP: %d %s", status, id6)
	}
	runActions(t, ctx,
		chromedp.Click(chromedp.CSS("#hub-connect")),
		waitHubEvents(1),
	)
	want = []hubLogEntry{
		{"resume", "", "resumed after id " + ids[4]},
		{"event", id6, id6 + " after reload"},
	}
	if got := mustRun(t, ctx, hubLog()); !slices.Equal(got, want) {
		t.Errorf("hub log after reload\n got %+v\nwant %+v", got, want)
	}
	subs = requests.to(ctx, "/api/v1/events")
	if len(subs) != 3 || !strings.Contains(subs[2].URL, "last_event_id="+ids[4]) {
		t.Errorf("subscribe requests %+v: want a third with last_event_id=%s", subs, ids[4])
	}
}

// TestBrowserHubPublishErrors shows the server's error, with its status, in
// #hub-pub-result: a wrong token (401) and a hub with publishing off (403),
// on a topic outside demo.>, which needs a token.
func TestBrowserHubPublishErrors(t *testing.T) {
	on, _ := startMain(t, hubTestConfig())
	off, _ := startMain(t, config.Default())
	ctx := newBrowser(t)
	tests := []struct {
		name   string
		base   string
		status int
	}{
		{"wrong token", on, http.StatusUnauthorized},
		{"publishing off", off, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, msg := publishOverHTTP(t, tt.base, "wrong", "orders.new", "x")
			if status != tt.status || msg == "" {
				t.Fatalf("publish over HTTP: %d %q, want %d and an error", status, msg, tt.status)
			}
			tab := newTab(t, ctx)
			runPage(t, tab, tt.base+"/", typeInto("#hub-pub-topic", "orders.new"), typeInto("#hub-token", "wrong"))
			got := publishFromPage(t, tab, 1, "x")
			if want := fmt.Sprintf("HTTP %d: %s", tt.status, msg); got != want {
				t.Errorf("#hub-pub-result %q, want %q", got, want)
			}
			if cls := mustRun(t, tab, callJS[string](`() => document.querySelector("#hub-pub-result").className`)); !strings.Contains(cls, "bad") {
				t.Errorf("#hub-pub-result class %q, want it marked bad", cls)
			}
		})
	}
}

// TestBrowserHubShippedConfig is a first run: the server starts with the
// shipped config/ssehub.yaml as the binary loads it (only the address is
// overridden), which configures no token. The Hub panel connects to its
// default demo.>, publishes to its default demo.chat, and the event
// appears in its log; no request the page makes gets a 4xx.
func TestBrowserHubShippedConfig(t *testing.T) {
	shipped := filepath.Join("..", "..", "config", "ssehub.yaml")
	cfg, err := config.Load([]string{"--config", shipped, "--addr", "127.0.0.1:0"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Demo.Enabled || len(cfg.Auth.PublishTokens) > 0 {
		t.Fatalf("the shipped config has demo.enabled %v and %d publish tokens: this test wants a first run's, on and none",
			cfg.Demo.Enabled, len(cfg.Auth.PublishTokens))
	}
	base, _ := startMain(t, cfg)
	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)
	requests := watchRequests(t, ctx)

	runPage(t, ctx, base+"/",
		waitJS(`document.querySelector("#hub-topics").value === "demo.>"`),
		waitJS(`document.querySelector("#hub-pub-topic").value === "demo.chat"`),
		chromedp.Click(chromedp.CSS("#hub-connect")),
		waitText("#hub-state", "open"),
	)
	result := publishFromPage(t, ctx, 1, `{"text": "hello"}`)
	id, ok := strings.CutPrefix(result, "published id ")
	if !ok {
		t.Fatalf("publish from the page: %q", result)
	}
	runActions(t, ctx, waitHubEvents(1))
	want := []hubLogEntry{{"event", id, id + ` {"text":"hello"}`}}
	if got := mustRun(t, ctx, hubLog()); !slices.Equal(got, want) {
		t.Errorf("hub log\n got %+v\nwant %+v", got, want)
	}

	seen := map[string]int64{}
	for _, r := range requests.all(ctx) {
		if r.Status >= 400 && r.Status < 500 {
			t.Errorf("%s %s: %d", r.Method, r.URL, r.Status)
		}
		if u, err := url.Parse(r.URL); err == nil {
			seen[r.Method+" "+u.Path] = r.Status
		}
	}
	for req, status := range map[string]int64{"GET /api/v1/events": 200, "POST /api/v1/topics/demo.chat/events": 201} {
		if seen[req] != status {
			t.Errorf("%s: %d, want %d (requests: %v)", req, seen[req], status, seen)
		}
	}
}

// TestBrowserHubJWTRefusal gives the Hub panel a JWT, minted by `ssehub
// token`, that grants subscribing to orders.> and nothing else. Subscribing
// to payments.> with it is refused: the panel shows the hub's 403 and the
// hub's reason in its alert line, #hub-refusal, its state is that error,
// its log stays empty, and the one request it sent got the 403 (no stream,
// no retry). Then the same token subscribes to orders.>: the refusal line
// goes, the stream opens, and an event published over HTTP arrives.
func TestBrowserHubJWTRefusal(t *testing.T) {
	cfg := hubTestConfig()
	cfg.Auth.JWT = tokenConfig(t).Auth.JWT
	base, _ := startMain(t, cfg)
	jwt := mintToken(t, "--subscribe", "orders.>", "--ttl", "10m")
	ctx := newBrowser(t)
	errs := watchPageErrors(t, ctx)
	requests := watchRequests(t, ctx)

	// The hub's reason, as its JSON error says it, after the status: what
	// the page must show. It names the pattern, so it cannot come from
	// another refusal (no token, a bad token: 401).
	const refusal = `HTTP 403: subscribing to "payments.>": not granted by the token`
	runPage(t, ctx, base+"/",
		typeInto("#hub-topics", "payments.>"),
		typeInto("#hub-sub-token", jwt),
		recordTexts("#hub-state"),
		chromedp.Click(chromedp.CSS("#hub-connect")),
		waitText(`#hub-refusal[role="alert"]`, refusal),
	)
	if got := mustRun(t, ctx, textOf("#hub-state")); got != "error: "+refusal {
		t.Errorf("#hub-state %q, want the error %q", got, "error: "+refusal)
	}
	if got := mustRun(t, ctx, hubLog()); len(got) != 0 {
		t.Errorf("a refused panel logged %+v", got)
	}
	subs := requests.to(ctx, "/api/v1/events")
	if len(subs) != 1 || subs[0].Status != http.StatusForbidden {
		t.Fatalf("subscribe requests %+v, want one, answered 403", subs)
	}
	if got := subs[0].Headers["Authorization"]; got != "Bearer "+jwt {
		t.Errorf("the refused subscribe sent Authorization %q, want the JWT", got)
	}
	refusedURL := subs[0].URL
	if !strings.Contains(refusedURL, "topic="+url.QueryEscape("payments.>")) {
		t.Errorf("the refused subscribe asked for %s, want topic payments.>", refusedURL)
	}

	runActions(t, ctx,
		typeInto("#hub-topics", "orders.>"),
		chromedp.Click(chromedp.CSS("#hub-connect")),
		waitText("#hub-state", "open"),
	)
	if gone := mustRun(t, ctx, callJS[bool](`() => document.querySelector("#hub-refusal") === null`)); !gone {
		t.Errorf("the refusal line is still shown on an open stream: %q", mustRun(t, ctx, textOf("#hub-refusal")))
	}
	status, id := publishOverHTTP(t, base, hubTestToken, "orders.new", "granted")
	if status != http.StatusCreated {
		t.Fatalf("publish over HTTP: %d %s", status, id)
	}
	runActions(t, ctx, waitHubEvents(1))
	if got, want := mustRun(t, ctx, hubLog()), []hubLogEntry{{"event", id, id + " granted"}}; !slices.Equal(got, want) {
		t.Errorf("hub log\n got %+v\nwant %+v", got, want)
	}
	wantStates := []string{"idle", "connecting", "error: " + refusal, "connecting", "open"}
	if got := mustRun(t, ctx, recordedTexts("#hub-state")); !slices.Equal(got, wantStates) {
		t.Errorf("hub states %q, want %q", got, wantStates)
	}
	subs = requests.to(ctx, "/api/v1/events")
	if len(subs) != 2 || subs[1].Status != http.StatusOK || subs[1].Headers["Authorization"] != "Bearer "+jwt {
		t.Errorf("subscribe requests %+v, want the refused one, then one with the JWT answered 200", subs)
	}
	// The browser logs the refused load; nothing else may go wrong.
	for _, msg := range errs.list(ctx) {
		if !strings.Contains(msg, "403") || !strings.Contains(msg, refusedURL) {
			t.Errorf("page error: %s", msg)
		}
	}
}

// The hub panel's log keeps its last 500 entries: anyone may publish to
// the demo topics, and a page left open must not grow without end. The
// entries kept are the newest, in order.
func TestBrowserHubLogKeepsTheLast500(t *testing.T) {
	base, _ := startMain(t, hubTestConfig())
	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)
	runPage(t, ctx, base+"/",
		chromedp.Click(chromedp.CSS("#hub-connect")),
		waitText("#hub-state", "open"),
	)
	const published = 600
	var ids []string
	for i := range published {
		status, id := publishOverHTTP(t, base, hubTestToken, "demo.log", fmt.Sprintf(`"event %d"`, i))
		if status != http.StatusCreated {
			t.Fatalf("publish %d: %d %s", i, status, id)
		}
		ids = append(ids, id)
	}
	runActions(t, ctx, waitJS(fmt.Sprintf(`document.querySelector("#hub-log li:last-child")?.dataset.id === %q`, ids[published-1])))
	log := mustRun(t, ctx, hubLog())
	if len(log) != 500 || log[0].ID != ids[published-500] || log[499].ID != ids[published-1] {
		first, last := hubLogEntry{}, hubLogEntry{}
		if len(log) > 0 {
			first, last = log[0], log[len(log)-1]
		}
		t.Fatalf("the log holds %d entries, %+v to %+v; want the last 500, ids %s to %s", len(log), first, last, ids[published-500], ids[published-1])
	}
}

// The hub panel's log follows its newest entry only while the reader is
// at its end: scrolled up to read older entries, the log stays where it
// is when an event arrives or the publish form is typed in. It jumped to
// its end at every update of the panel.
func TestBrowserHubLogScrollStaysWhereTheReaderIs(t *testing.T) {
	base, _ := startMain(t, hubTestConfig())
	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)
	runPage(t, ctx, base+"/",
		chromedp.Click(chromedp.CSS("#hub-connect")),
		waitText("#hub-state", "open"),
	)
	events := 0
	publishOne := func() {
		t.Helper()
		if status, id := publishOverHTTP(t, base, hubTestToken, "demo.scroll", fmt.Sprintf(`"event %d"`, events)); status != http.StatusCreated {
			t.Fatalf("publish %d: %d %s", events, status, id)
		}
		events++
		runActions(t, ctx, waitHubEvents(events))
	}
	scrollTop := callJS[float64](`() => document.querySelector("#hub-log").scrollTop`)
	atEnd := callJS[bool](`() => { const el = document.querySelector("#hub-log");
		return el.scrollHeight > el.clientHeight && el.scrollTop + el.clientHeight >= el.scrollHeight - 1; }`)
	for range 40 {
		publishOne()
	}
	if !mustRun(t, ctx, atEnd) {
		t.Fatal("the log, longer than its box, is not scrolled to its newest entry")
	}

	mustRun(t, ctx, callJS[chromedp.Void](`() => { document.querySelector("#hub-log").scrollTop = 0; }`))
	runActions(t, ctx, typeInto("#hub-pub-data", `{"text": "typed"}`))
	if got := mustRun(t, ctx, scrollTop); got != 0 {
		t.Errorf("typing in the publish form scrolled the log to %v, want it left at the top", got)
	}
	publishOne()
	if got := mustRun(t, ctx, scrollTop); got != 0 {
		t.Errorf("an event scrolled the log to %v, want it left at the top", got)
	}

	mustRun(t, ctx, callJS[chromedp.Void](`() => { const el = document.querySelector("#hub-log"); el.scrollTop = el.scrollHeight; }`))
	publishOne()
	if !mustRun(t, ctx, atEnd) {
		t.Error("scrolled back to its end, the log does not follow a new event")
	}
}

// The publish token typed for the page's own hub is not offered to the
// hub a ?hub= link names: a link to another origin, opened in the same
// tab, would otherwise send it there on Publish.
func TestBrowserHubTokenStaysWithItsHub(t *testing.T) {
	base, _ := startMain(t, hubTestConfig())
	other := newSecondOrigin(t)
	ctx := newBrowser(t)
	runPage(t, ctx, base+"/", typeInto("#hub-token", "s3cret-publish-token"))
	runPage(t, ctx, base+"/?hub="+other)
	if got := mustRun(t, ctx, callJS[string](`() => document.querySelector("#hub-token").value`)); got != "" {
		t.Fatalf("with ?hub=%s the token field holds %q, want it empty", other, got)
	}
	runPage(t, ctx, base+"/")
	if got := mustRun(t, ctx, callJS[string](`() => document.querySelector("#hub-token").value`)); got != "s3cret-publish-token" {
		t.Fatalf("back on its own hub the token field holds %q, want the token typed for it", got)
	}
}

// TestBrowserEventSourceKeepsTheStreamsPosition: a native EventSource
// subscribed without a Last-Event-ID gets its stream's position first, a
// frame of an id alone, which dispatches nothing. ssehub restarts before
// any event, on its address; an event is published on the new hub; the
// EventSource reconnects sending the position as Last-Event-ID, is reset
// (an id from before the restart) and gets the event. Before, it sent no
// Last-Event-ID and came back live-only: an event published before it
// was back was lost.
func TestBrowserEventSourceKeepsTheStreamsPosition(t *testing.T) {
	cfg := hubTestConfig()
	cfg.Stream.Retry = time.Second
	addr := restartAddr(t)
	onAddr := func(m *Main) { m.Config.Server.Addr = addr }
	base, stop := startMain(t, cfg, onAddr)
	status, newest := publishOverHTTP(t, base, hubTestToken, "demo.position", "before the subscription")
	if status != http.StatusCreated {
		t.Fatalf("publish: %d %s", status, newest)
	}
	// No failOnPageErrors: a reconnect while ssehub is down is a network
	// error the browser logs.
	ctx := newBrowser(t)
	requests := watchRequests(t, ctx)
	runPage(t, ctx, base+"/",
		callJS[chromedp.Void](`(url) => {
			const seen = { opens: 0, messages: [], resets: 0 };
			const es = new EventSource(url);
			window.__pos = { es, seen };
			es.onopen = () => seen.opens++;
			es.onmessage = (ev) => seen.messages.push(ev.data);
			es.addEventListener("reset", () => seen.resets++);
		}`, base+"/api/v1/events?topic=demo.position"),
		waitJS(`window.__pos.seen.opens === 1`),
	)
	stop()
	// The first publish's kept-alive connection went with the server, and
	// the client may not have seen it close yet: a POST on it, which the
	// client does not retry, failed with EOF.
	http.DefaultClient.CloseIdleConnections()
	back, _ := startMain(t, cfg, onAddr)
	if status, id := publishOverHTTP(t, back, hubTestToken, "demo.position", "since the restart"); status != http.StatusCreated {
		t.Fatalf("publish after the restart: %d %s", status, id)
	}
	runActions(t, ctx, waitJS(`window.__pos.seen.messages.length === 1`))
	if got := mustRun(t, ctx, chromedp.Evaluate[[]string](`window.__pos.seen.messages`)); !slices.Equal(got, []string{"since the restart"}) {
		t.Errorf("messages %q, want the event published since the restart only", got)
	}
	subs := requests.to(ctx, "/api/v1/events")
	if got := subs[0].Headers["Last-Event-Id"]; got != "" {
		t.Errorf("the first subscription sent Last-Event-ID %q", got)
	}
	if last := subs[len(subs)-1]; last.Status != http.StatusOK || last.Headers["Last-Event-Id"] != newest {
		t.Errorf("the reconnect that subscribed again: status %d, Last-Event-ID %q; want 200 and the stream's position %s",
			last.Status, last.Headers["Last-Event-Id"], newest)
	}
	if n := mustRun(t, ctx, chromedp.Evaluate[int](`window.__pos.seen.resets`)); n != 1 {
		t.Errorf("%d reset events, want 1: the position is from before the restart", n)
	}
}

// A ?hub= that is a path on the page's own origin (the hub behind the
// same proxy as the page, under /hub/) is resolved against the page, as
// every other relative URL: the panel subscribes and publishes there.
// Before, Connect threw "Invalid base URL" and the panel stayed idle,
// saying nothing.
func TestBrowserHubRelativeBase(t *testing.T) {
	base, _ := startMain(t, hubTestConfig())
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/demo/", http.StripPrefix("/demo", http.FileServerFS(static.FS)))
	mux.Handle("/hub/", http.StripPrefix("/hub", newPageProxy(target)))
	front := httptest.NewServer(mux)
	t.Cleanup(front.Close)
	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)
	requests := watchRequests(t, ctx)
	runPage(t, ctx, front.URL+"/demo/?hub=/hub",
		typeInto("#hub-token", hubTestToken),
		chromedp.Click(chromedp.CSS("#hub-connect")),
		waitText("#hub-state", "open"),
	)
	result := publishFromPage(t, ctx, 1, "through the proxy")
	id, ok := strings.CutPrefix(result, "published id ")
	if !ok {
		t.Fatalf("publish from the page: %q", result)
	}
	runActions(t, ctx, waitHubEvents(1))
	if got, want := mustRun(t, ctx, hubLog()), []hubLogEntry{{"event", id, id + " through the proxy"}}; !slices.Equal(got, want) {
		t.Errorf("hub log %+v, want %+v", got, want)
	}
	if subs := requests.to(ctx, "/hub/api/v1/events"); len(subs) != 1 || subs[0].Status != http.StatusOK {
		t.Errorf("subscribe requests %+v, want one to /hub/api/v1/events, answered 200", subs)
	}
}

// The last event id the Hub panel keeps for a reload is its hub's: a
// ?hub= link to another hub, opened in the same tab, starts there without
// one, and the page back on the first hub resumes from that hub's id.
// Before, the id of one hub was sent to the other as last_event_id, which
// that hub cannot know: the panel said it resumed, and the hub answered
// with a reset.
func TestBrowserHubLastIDStaysWithItsHub(t *testing.T) {
	page := newSecondOrigin(t)
	cfg := hubTestConfig()
	cfg.CORS.AllowedOrigins = []string{page}
	hubA, _ := startMain(t, cfg)
	hubB, _ := startMain(t, cfg)
	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)
	requests := watchRequests(t, ctx)

	runPage(t, ctx, page+"/?hub="+hubA,
		chromedp.Click(chromedp.CSS("#hub-connect")),
		waitText("#hub-state", "open"),
	)
	status, idA := publishOverHTTP(t, hubA, hubTestToken, "demo.chat", "on hub A")
	if status != http.StatusCreated {
		t.Fatalf("publish to hub A: %d %s", status, idA)
	}
	runActions(t, ctx, waitHubEvents(1), waitText("#hub-last-id", idA))

	runPage(t, ctx, page+"/?hub="+hubB)
	if got := mustRun(t, ctx, textOf("#hub-last-id")); got != "none" {
		t.Errorf("on hub B the panel's last id is %q, want none: %s is hub A's", got, idA)
	}
	runActions(t, ctx,
		chromedp.Click(chromedp.CSS("#hub-connect")),
		waitText("#hub-state", "open"),
	)
	// Published from the page, across origins as the subscription.
	idB, ok := strings.CutPrefix(publishFromPage(t, ctx, 1, "on hub B"), "published id ")
	if !ok {
		t.Fatalf("publish to hub B from the page: %q", mustRun(t, ctx, textOf("#hub-pub-result")))
	}
	runActions(t, ctx, waitHubEvents(1))
	if got, want := mustRun(t, ctx, hubLog()), []hubLogEntry{{"event", idB, idB + " on hub B"}}; !slices.Equal(got, want) {
		t.Errorf("hub B's log %+v, want %+v", got, want)
	}
	for _, r := range requests.to(ctx, "/api/v1/events") {
		if strings.HasPrefix(r.URL, hubB) && strings.Contains(r.URL, "last_event_id=") {
			t.Errorf("subscribed to hub B with %s, hub A's id", r.URL)
		}
	}

	runPage(t, ctx, page+"/?hub="+hubA, waitText("#hub-last-id", idA))
}

// A ?hub= that is not an http(s) URL (the scheme left out, or not a URL
// at all) is an error the Hub panel names on Connect and on Publish, with
// no request. Before, the subscription retried a fetch that could never
// work, "reconnecting" forever, or Connect threw and the panel said
// nothing.
func TestBrowserHubNeedsAnHTTPHub(t *testing.T) {
	base, _ := startMain(t, hubTestConfig())
	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)
	for i, hub := range []string{"localhost:8111", "http://"} {
		runPage(t, ctx, base+"/?hub="+url.QueryEscape(hub),
			chromedp.Click(chromedp.CSS("#hub-connect")),
			waitJS(`document.querySelector("#hub-state").textContent.startsWith("error")`),
		)
		if got := mustRun(t, ctx, textOf("#hub-state")); !strings.Contains(got, hub) || !strings.Contains(got, "http://") {
			t.Errorf("?hub=%s: the state reads %q, want the hub and that it needs http://", hub, got)
		}
		if got := publishFromPage(t, ctx, 1, fmt.Sprintf(`{"n": %d}`, i)); !strings.HasPrefix(got, "error: ") || !strings.Contains(got, hub) {
			t.Errorf("?hub=%s: publishing says %q, want an error naming the hub", hub, got)
		}
	}
}

// A hub that takes the connection and never answers a publish leaves the
// Hub panel saying so after 10 s; it showed nothing, or the result of the
// publish before, for as long as the browser waited.
func TestBrowserHubPublishNoAnswer(t *testing.T) {
	t.Parallel() // its own server; it waits on timers, not the CPU
	base, _ := startMain(t, hubTestConfig())
	hub := "http://" + silentAddr(t)
	ctx := newBrowser(t)
	runPage(t, ctx, base+"/?hub="+url.QueryEscape(hub))
	if got := publishFromPage(t, ctx, 1, `{"n": 1}`); got != "error: no answer from the hub after 10 s" {
		t.Errorf("publishing says %q, want that the hub did not answer", got)
	}
}

// Two publishes in flight, the first answered last: the Hub panel shows
// the answer to the last one clicked. It showed whichever came last, so
// the older publish's id stood under the newer one's data.
func TestBrowserHubPublishShowsTheLastClicked(t *testing.T) {
	base, _ := startMain(t, hubTestConfig())
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newPageProxy(target)
	released := make(chan struct{})
	release := sync.OnceFunc(func() { close(released) })
	held := make(chan struct{})
	var first sync.Once
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hold := false
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/api/v1/topics/") {
			first.Do(func() { hold = true })
		}
		if hold {
			close(held)
			<-released
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(page.Close)
	t.Cleanup(release) // before page.Close, however the test ends
	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)
	runPage(t, ctx, page.URL+"/",
		typeInto("#hub-token", hubTestToken),
		typeInto("#hub-pub-data", `"older"`),
		chromedp.Click(chromedp.CSS("#hub-publish")),
	)
	<-held
	// The newer publish is stored first, the older one after it.
	newer := publishFromPage(t, ctx, 1, `"newer"`)
	if !strings.HasPrefix(newer, "published id ") {
		t.Fatalf("the newer publish says %q", newer)
	}
	release()
	runActions(t, ctx, waitJS(`document.querySelector("#hub-pub-result").dataset.count === "2"`))
	if got := mustRun(t, ctx, textOf("#hub-pub-result")); got != newer {
		t.Errorf("after the older publish's answer the panel says %q, want the newer's, %q", got, newer)
	}
}

// On an https page, a ?hub= on http:// elsewhere is mixed content: the
// browser blocks every request to it before it leaves. The Hub panel says
// so on Connect and on Publish, as the cross-origin panel does. Before,
// the subscription retried a fetch that could never work, "reconnecting"
// forever with no reason given, and Publish said "Failed to fetch".
func TestBrowserHubMixedContent(t *testing.T) {
	page, _ := startMain(t, tlsTestConfig(testpki.New(t)))
	cfg := hubTestConfig()
	cfg.CORS.AllowedOrigins = []string{page}
	hub, _ := startMain(t, cfg)
	u, err := url.Parse(hub)
	if err != nil {
		t.Fatal(err)
	}
	target := "http://ssehub.test:" + u.Port()
	ctx := newBrowser(t, chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("host-resolver-rules", "MAP ssehub.test 127.0.0.1"))
	runPage(t, ctx, page+"/?hub="+url.QueryEscape(target),
		chromedp.Click(chromedp.CSS("#hub-connect")),
		waitJS(`!["idle", "connecting"].includes(document.querySelector("#hub-state").textContent.trim())`),
	)
	if got := mustRun(t, ctx, textOf("#hub-state")); !strings.HasPrefix(got, "error") || !strings.Contains(got, "mixed content") || !strings.Contains(got, target) {
		t.Errorf("state %q, want an error naming mixed content and %s", got, target)
	}
	if got := publishFromPage(t, ctx, 1, `{"n": 1}`); !strings.Contains(got, "mixed content") {
		t.Errorf("publishing says %q, want mixed content", got)
	}
	// The same hub by a loopback name is no mixed content: it streams.
	runPage(t, ctx, page+"/?hub="+url.QueryEscape("http://localhost:"+u.Port()),
		chromedp.Click(chromedp.CSS("#hub-connect")),
		waitText("#hub-state", "open"),
	)
}

// The Hub panel names the hub it talks to. A ?hub= link sends the
// subscription, and the tokens typed into the panel, to another server,
// and nothing on the page said which.
func TestBrowserHubNamesItsHub(t *testing.T) {
	base, _ := startMain(t, hubTestConfig())
	other := newSecondOrigin(t)
	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)
	for _, c := range []struct{ page, want string }{
		{base + "/?service=" + url.QueryEscape(base), base + "/"},
		{base + "/?hub=" + url.QueryEscape(other), other + "/"},
		{base + "/?hub=/hub", base + "/hub/"},
	} {
		runPage(t, ctx, c.page)
		if got := mustRun(t, ctx, callJS[string](`() => document.querySelector("#hub-url")?.textContent.trim() ?? "(none)"`)); got != c.want {
			t.Errorf("%s: the panel names the hub %q, want %q", c.page, got, c.want)
		}
	}
}

// A hub that refuses the page's origin (CORS) leaves the Hub panel
// retrying: it says why the last attempt failed, with the browser's
// error, and when it tries again. Before, it showed "reconnecting", then
// "connecting", forever, with no reason anywhere but the console.
func TestBrowserHubSaysWhyItReconnects(t *testing.T) {
	page := newSecondOrigin(t)
	cfg := hubTestConfig()
	cfg.CORS.AllowedOrigins = []string{"http://allowed.example"}
	hub, _ := startMain(t, cfg)
	ctx := newBrowser(t)
	runPage(t, ctx, page+"/?hub="+url.QueryEscape(hub),
		chromedp.Click(chromedp.CSS("#hub-connect")),
	)
	// The state and the failure are read in one look at the page: the
	// failure goes when the next attempt starts, a few seconds on.
	const look = `() => { const text = ` + textJS + `; return [text("#hub-state"), text("#hub-failure")]; }`
	got, err := chromedp.Run(ctx, chromedp.PollFunction[string](`() => { const [state, failure] = (`+look+`)(); return state === "reconnecting" && failure; }`,
		chromedp.WithPollingInterval(pollInterval), chromedp.WithPollingTimeout(pollTimeout)))
	if err != nil {
		t.Fatalf("waiting for the panel to say why it is reconnecting (state and failure %v): %v", mustRun(t, ctx, callJS[[]any](look)), err)
	}
	if !strings.Contains(got, "Failed to fetch") {
		t.Errorf("the panel says %q, want the browser's %q", got, "Failed to fetch")
	}
}
