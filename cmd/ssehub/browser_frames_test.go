package main

// Browser tests of what the note ssehub grew from was about: frames a
// browser reads as the server meant them, and a page that needs nothing
// from another host.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/ssehub/ssehub/config"
)

// TestBrowserReadsEveryPublishedDataIntact publishes data that a careless
// framing loses or changes in a browser (line breaks of each kind, blank
// lines, leading spaces, text that reads as a field or a comment, none at
// all) and reads it with Chromium's EventSource and with sse-client.js's
// fetchEventSource on the same page. Each gets every event, in order, with
// its data as published, each CR and CRLF read as LF as the SSE spec has
// it.
func TestBrowserReadsEveryPublishedDataIntact(t *testing.T) {
	datas := []string{
		"one\ntwo",
		"cr\rsplit",
		"crlf\r\nsplit",
		"lone cr at the end\r",
		"trailing lf\n",
		"\n\nblank lines\n\n\ninside\n",
		"\n",
		"",
		"  two leading spaces",
		" one leading space\n indented",
		": reads as a comment",
		"data: reads as a field\nid: 999\nevent: close\nretry: 1",
		"\ufeffa byte order mark first",
		"tab\tand ✓ 日本 🧀",
		"nul\x00inside",
		`{"json": "stringified", "line": "a\nb"}`,
		"end",
	}
	base, _ := startMain(t, hubTestConfig())
	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)
	runPage(t, ctx, base+"/",
		callJS[chromedp.Void](`async () => {
			const { fetchEventSource } = await import("./sse-client.js");
			const got = { es: [], fetch: [], esReady: false, fetchReady: false };
			window.__frames = got;
			const url = "/api/v1/events?topic=frames";
			const es = new EventSource(url);
			es.addEventListener("position", () => { got.esReady = true; });
			es.onmessage = (ev) => { got.es.push(ev.data); };
			window.__abort = new AbortController();
			fetchEventSource(url, {
				signal: window.__abort.signal,
				onEvent: (ev) => {
					if (ev.type === "position") got.fetchReady = true;
					if (ev.type === "message") got.fetch.push(ev.data);
				},
			}).catch(() => {});
		}`),
		waitJS(`window.__frames.esReady && window.__frames.fetchReady`),
	)
	for _, data := range datas {
		body, err := json.Marshal(map[string]string{"data": data})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/api/v1/topics/frames/events", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+hubTestToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("publishing %q: %s", data, resp.Status)
		}
	}
	runActions(t, ctx, waitJS(`["es", "fetch"].every((k) => window.__frames[k].at(-1) === "end")`))
	want := make([]string, len(datas))
	for i, data := range datas {
		want[i] = strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(data)
	}
	for _, reader := range []string{"es", "fetch"} {
		got := mustRun(t, ctx, callJS[[]string](`(k) => window.__frames[k]`, reader))
		if !slices.Equal(got, want) {
			t.Errorf("%s read %q,\nwant %q", reader, got, want)
		}
	}
	runActions(t, ctx, callJS[chromedp.Void](`() => window.__abort.abort()`))
}

// TestBrowserPageNeedsNoOtherHost loads the demo page in a Chromium that
// can reach no host but the service's (every other name resolves to
// nothing, as offline or on a locked-down network) and streams in panel 1:
// the page works, and every request it made went to its own origin. The
// note's page loaded Vue and Tailwind from a CDN.
func TestBrowserPageNeedsNoOtherHost(t *testing.T) {
	cfg := config.Default()
	cfg.Demo.TickerCount = 2
	cfg.Demo.TickerInterval = 10 * time.Millisecond
	base, _ := startMain(t, cfg)
	page, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	ctx := newBrowser(t, chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE "+page.Hostname()))
	failOnPageErrors(t, ctx)
	requests := watchRequests(t, ctx)
	runPage(t, ctx, base+"/",
		chromedp.Click(chromedp.CSS("#es-start")),
		waitText("#es-log li.end", "bye"),
	)
	all := requests.all(ctx)
	if len(all) < 4 { // the page, its style, Vue, app.js at least
		t.Fatalf("recorded %d requests, too few to judge: %+v", len(all), all)
	}
	for _, r := range all {
		u, err := url.Parse(r.URL)
		if err != nil || u.Scheme+"://"+u.Host != base || r.Failed != "" {
			t.Errorf("%s %s (%s) failed %q: want every request to %s, none failed", r.Method, r.URL, r.Type, r.Failed, base)
		}
	}
}
