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
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
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
		// The panel closes its EventSource at the stream's close event:
		// when the page does so before the response's end reaches it (a
		// detached stream ends with the connection), Chromium records the
		// stream, answered 200, as aborted.
		closedByThePage := r.Type == network.ResourceTypeEventSource && r.Status == http.StatusOK && r.Failed == "net::ERR_ABORTED"
		if err != nil || u.Scheme+"://"+u.Host != base || r.Failed != "" && !closedByThePage {
			t.Errorf("%s %s (%s) failed %q: want every request to %s, none failed", r.Method, r.URL, r.Type, r.Failed, base)
		}
	}
}

// TestBrowserCrossOriginEventSourceSendsTheTokenCookie: a page on another
// origin of the same site (another port) holds a JWT in the cookie
// auth.jwt.cookie_name. `new EventSource(url, {withCredentials: true})`
// sends it, and with cors.allow_credentials the stream opens; without
// withCredentials the browser sends no cookie (401), and without
// cors.allow_credentials it refuses the answer. Either way EventSource
// stops, for good.
func TestBrowserCrossOriginEventSourceSendsTheTokenCookie(t *testing.T) {
	for _, tt := range []struct {
		name                   string
		allowCredentials, with bool
		open                   bool
		status                 int64 // of the answer the browser saw, 0 when it refused it
	}{
		{"allowed, with credentials", true, true, true, http.StatusOK},
		{"allowed, without credentials", true, false, false, http.StatusUnauthorized},
		{"not allowed, with credentials", false, true, false, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			page := newSecondOrigin(t)
			cfg := hubTestConfig()
			cfg.Auth.JWT = tokenConfig(t).Auth.JWT
			cfg.CORS.AllowedOrigins = []string{page}
			cfg.CORS.AllowCredentials = tt.allowCredentials
			base, _ := startMain(t, cfg)
			jwt := mintToken(t, "--subscribe", "orders.>", "--ttl", "10m")
			ctx := newBrowser(t)
			requests := watchRequests(t, ctx)
			runPage(t, ctx, page+"/")
			setPageCookie(t, ctx, "ssehub_token="+jwt+"; path=/", base+"/")
			runActions(t, ctx,
				callJS[chromedp.Void](`(url, withCredentials) => {
					const es = new EventSource(url, { withCredentials });
					window.__cookie = { es, positions: 0, errors: 0 };
					es.addEventListener("position", () => { window.__cookie.positions++; });
					es.onerror = () => { window.__cookie.errors++; };
				}`, base+"/api/v1/events?topic=orders.eu", tt.with),
			)
			if tt.open {
				runActions(t, ctx, waitJS(`window.__cookie.positions > 0`))
			} else {
				runActions(t, ctx, waitJS(`window.__cookie.es.readyState === EventSource.CLOSED`))
			}
			got := mustRun(t, ctx, callJS[[]int](`() => [window.__cookie.positions, window.__cookie.errors, window.__cookie.es.readyState]`))
			if open := got[0] > 0 && got[1] == 0 && got[2] == 1; open != tt.open {
				t.Errorf("positions, errors, readyState %v; want the stream open: %v", got, tt.open)
			}
			subs := requests.to(ctx, "/api/v1/events")
			if len(subs) != 1 {
				t.Fatalf("subscribe requests %+v, want one", subs)
			}
			sentCookie := strings.Contains(subs[0].Headers["Cookie"], "ssehub_token="+jwt)
			if tt.status == 0 && !strings.Contains(subs[0].Failed, "CORS") {
				t.Errorf("the subscribe failed %q, want for CORS", subs[0].Failed)
			}
			if sentCookie != tt.with || subs[0].Status != tt.status {
				t.Errorf("the subscribe sent the cookie: %v, answered %d; want %v, %d (%+v)", sentCookie, subs[0].Status, tt.with, tt.status, subs[0])
			}
		})
	}
}

// TestBrowserFrameOfAnotherOriginLearnsNothingFromTheCookie: a page on
// another origin of the same site, whose visitor holds a JWT in the cookie
// auth.jwt.cookie_name, frames two subscriptions, one the token grants and
// one it does not. Chromium sends the cookie with both (Sec-Fetch-Mode:
// navigate, Sec-Fetch-Dest: iframe). The granted one was answered with a
// stream, which never ends, so its frame never fired load, and the other
// with a 403, whose frame did: the page learned what the visitor's token
// grants. Both are now the same 400, and both frames load. (A <script>'s
// or an <img>'s answer, Chromium's opaque response blocking hides, stream
// or refusal alike; the server refuses those too, for other browsers.)
func TestBrowserFrameOfAnotherOriginLearnsNothingFromTheCookie(t *testing.T) {
	page := newSecondOrigin(t)
	cfg := hubTestConfig()
	cfg.Auth.JWT = tokenConfig(t).Auth.JWT
	base, _ := startMain(t, cfg)
	jwt := mintToken(t, "--subscribe", "orders.>", "--ttl", "10m")
	ctx := newBrowser(t)
	requests := watchRequests(t, ctx)
	runPage(t, ctx, page+"/")
	setPageCookie(t, ctx, "ssehub_token="+jwt+"; path=/", base+"/")
	runActions(t, ctx,
		callJS[chromedp.Void](`(base) => {
			window.__frames = {};
			for (const topic of ["orders.eu", "payments.x"]) {
				const f = document.createElement("iframe");
				f.onload = () => { window.__frames[topic] = "load"; };
				f.src = base + "/api/v1/events?topic=" + topic;
				document.body.append(f);
			}
		}`, base),
	)
	var subs []request
	for deadline := time.Now().Add(pollTimeout); ; {
		subs = requests.to(ctx, "/api/v1/events") // a round trip to the page
		// The headers on the wire, too: Chromium may tell them after
		// the response.
		if len(subs) == 2 && subs[0].Status != 0 && subs[1].Status != 0 && subs[0].OnWire && subs[1].OnWire {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscribe requests %+v, want two answered", subs)
		}
	}
	for _, sub := range subs {
		if !strings.Contains(sub.Headers["Cookie"], "ssehub_token="+jwt) || sub.Headers["Sec-Fetch-Dest"] != "iframe" {
			t.Errorf("%s: sent %v, want the cookie, for an iframe", sub.URL, sub.Headers)
		}
	}
	if subs[0].Status != subs[1].Status || subs[0].Status != http.StatusBadRequest {
		t.Fatalf("answered %d and %d: want both 400, which tells the page nothing", subs[0].Status, subs[1].Status)
	}
	runActions(t, ctx, waitJS(`Object.keys(window.__frames).length === 2`))
}

// TestBrowserNetworkPanelShowsEveryEvent: the note's symptom was a
// network panel whose EventStream tab stayed empty, the bytes showing in
// the raw response only. DevTools fills that tab from the events CDP
// reports as Network.eventSourceMessageReceived: each of the ticker's
// lines, and its close event, is reported there with its type, id and
// data, as the page's EventSource gets it.
func TestBrowserNetworkPanelShowsEveryEvent(t *testing.T) {
	cfg := config.Default()
	cfg.Demo.TickerCount = 3
	cfg.Demo.TickerInterval = 10 * time.Millisecond
	base, _ := startMain(t, cfg)
	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)
	var (
		mu  sync.Mutex
		got []string
	)
	err := chromedp.Listen(ctx, func(ev any) {
		if ev, ok := ev.(*network.EventEventSourceMessageReceived); ok {
			mu.Lock()
			got = append(got, ev.EventName+" "+ev.EventID+" "+ev.Data)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("listening to the network: %v", err)
	}
	runPage(t, ctx, base+"/",
		chromedp.Click(chromedp.CSS("#es-start")),
		waitText("#es-log li.end", "bye"),
	)
	_ = mustRun(t, ctx, chromedp.Evaluate[int](`0`)) // a round trip, for the events before it
	mu.Lock()
	defer mu.Unlock()
	want := []string{"message 0 Streamed line 0", "message 1 Streamed line 1", "message 2 Streamed line 2", "close 2 bye"}
	if !slices.Equal(got, want) {
		t.Errorf("the network panel's EventStream tab shows %q, want %q", got, want)
	}
}
