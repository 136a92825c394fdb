package main

// Browser tests of sse-client.js as a page that copies it uses it, next to
// the browser's own EventSource, on the harness in browser_test.go.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chromedp/chromedp"
	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/static"
)

// A last event id outside Latin-1 comes back in Last-Event-ID as its UTF-8
// bytes, from fetchEventSource as from Chromium's EventSource. Before,
// fetchEventSource's reconnect threw a TypeError (fetch takes header values
// as strings of bytes) and the stream stopped for good.
func TestBrowserFetchEventSourceSendsAUTF8LastEventID(t *testing.T) {
	const id = "käse-日本-🧀"
	var (
		mu   sync.Mutex
		sent = map[string][]string{} // path: Last-Event-ID of each reconnect
	)
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServerFS(static.FS))
	stream := func(w http.ResponseWriter, r *http.Request) {
		if last := r.Header.Get("Last-Event-ID"); last != "" {
			mu.Lock()
			sent[r.URL.Path] = append(sent[r.URL.Path], last)
			mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "retry: 10\nid: %s\ndata: x\n\n", id)
	}
	mux.HandleFunc("/es", stream)
	mux.HandleFunc("/fetch", stream)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)
	runPage(t, ctx, srv.URL+"/",
		callJS[chromedp.Void](`async () => {
			const { fetchEventSource } = await import("./sse-client.js");
			const done = { es: false, fetch: "" };
			window.__utf8 = done;
			const es = new EventSource("es");
			es.onerror = () => { if (es.readyState === EventSource.CLOSED) done.es = true; };
			fetchEventSource("fetch", { reconnect: true, jitter: 0 }).then(
				(last) => (done.fetch = "resolved " + last),
				(err) => (done.fetch = "rejected " + err));
		}`),
		waitJS(`window.__utf8.es && window.__utf8.fetch !== ""`),
	)
	if got := mustRun(t, ctx, chromedp.Evaluate[string](`window.__utf8.fetch`)); got != "resolved "+id {
		t.Errorf("fetchEventSource %s, want resolved %s", got, id)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, path := range []string{"/es", "/fetch"} {
		got := sent[path]
		if len(got) != 1 || got[0] != id || !utf8.ValidString(got[0]) {
			t.Errorf("%s: reconnects sent Last-Event-ID %q, want one, %q in UTF-8", strings.TrimPrefix(path, "/"), got, id)
		}
	}
}

// A page that reads the ticker with fetchEventSource and reconnect: true,
// and ignores its close event, as a careless EventSource page does, stops
// as EventSource does: its reconnect after the clean end sends the final
// id, ssehub answers 204, and the promise resolves with that id. Each line
// arrives once, and the stream is asked for twice, no more.
func TestBrowserFetchEventSourceStopsOn204(t *testing.T) {
	cfg := config.Default()
	cfg.Stream.Retry = 100 * time.Millisecond // the reconnect comes quickly
	base, _ := startMain(t, cfg)
	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)
	requests := watchRequests(t, ctx)
	runPage(t, ctx, base+"/",
		callJS[chromedp.Void](`async () => {
			const { fetchEventSource } = await import("./sse-client.js");
			const seen = { messages: [], end: "" };
			window.__fes = seen;
			fetchEventSource("/stream?count=2&interval=10ms", {
				reconnect: true,
				jitter: 0,
				onEvent: (ev) => seen.messages.push(ev.lastEventId + " " + ev.type + " " + ev.data),
			}).then((last) => (seen.end = "resolved " + last), (err) => (seen.end = "rejected " + err));
		}`),
		waitJS(`window.__fes.end !== ""`),
	)
	type result struct {
		Messages []string
		End      string
	}
	got := mustRun(t, ctx, chromedp.Evaluate[result](`window.__fes`))
	want := []string{"0 message Streamed line 0", "1 message Streamed line 1", "1 close bye"}
	if !slices.Equal(got.Messages, want) || got.End != "resolved 1" {
		t.Errorf("events %q, end %q; want %q, resolved 1", got.Messages, got.End, want)
	}
	reqs := requests.to(ctx, "/stream")
	if len(reqs) != 2 || reqs[0].Status != http.StatusOK || reqs[1].Status != http.StatusNoContent || reqs[1].Headers["Last-Event-Id"] != "1" {
		t.Errorf("requests to /stream %+v, want the stream, then one reconnect with Last-Event-ID 1 answered 204", reqs)
	}
}
