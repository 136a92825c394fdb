package main

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/ssehub/ssehub/config"
)

// TestBrowserEventSourceOutlivesARestartBehindNginx: a page streams with
// a native EventSource through the README's nginx recipe; ssehub stops,
// and the EventSource's reconnects meet the recipe's answer for an
// unreachable ssehub (200 and retry:, 200 ms here) instead of nginx's 502,
// which would stop it for good; ssehub starts again on its address, and the
// same EventSource subscribes again and gets the next event. The page is
// served through nginx itself, or from another origin (the answer then
// needs CORS headers, or the browser stops the EventSource just as well).
func TestBrowserEventSourceOutlivesARestartBehindNginx(t *testing.T) {
	requireNginx(t)
	for _, crossOrigin := range []bool{false, true} {
		name := map[bool]string{false: "same origin", true: "cross origin"}[crossOrigin]
		t.Run(name, func(t *testing.T) { eventSourceOutlivesARestart(t, crossOrigin) })
	}
}

func eventSourceOutlivesARestart(t *testing.T, crossOrigin bool) {
	addr := restartAddr(t)
	cfg := config.Default()
	cfg.Stream.Retry = 100 * time.Millisecond
	cfg.Stream.HeartbeatInterval = time.Second
	cfg.Auth.PublishTokens = []string{"tok"}
	page := ""
	if crossOrigin {
		page = newSecondOrigin(t)
		cfg.CORS.AllowedOrigins = []string{page}
	}
	onAddr := func(m *Main) { m.Config.Server.Addr = addr }
	_, stop := startMain(t, cfg, onAddr)
	n := runNginxEdited(t, []nginxEdit{{`retry: 5000\n\n"`, `retry: 200\n\n"`}}, addr)
	if !crossOrigin {
		page = n.url
	}

	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)
	requests := watchRequests(t, ctx)
	runPage(t, ctx, page+"/",
		callJS[chromedp.Void](`(url) => {
			const seen = { opens: 0, messages: [], errorStates: [] };
			const es = new EventSource(url);
			window.__raw = { es, seen };
			es.onopen = () => seen.opens++;
			es.onmessage = (ev) => seen.messages.push(ev.data);
			es.onerror = () => seen.errorStates.push(es.readyState);
		}`, n.url+"/api/v1/events?topic=demo.restart"),
		waitJS(`window.__raw.seen.opens === 1`),
	)
	statuses := func() []int64 {
		var got []int64
		for _, r := range requests.to(ctx, "/api/v1/events") {
			got = append(got, r.Status)
		}
		return got
	}

	stop()
	// Reconnects while ssehub is down: nginx answers each at once.
	runActions(t, ctx, waitJS(`window.__raw.seen.errorStates.length >= 4 || window.__raw.es.readyState === EventSource.CLOSED`))
	if state := mustRun(t, ctx, chromedp.Evaluate[int](`window.__raw.es.readyState`)); state == 2 {
		t.Fatalf("the EventSource stopped for good while ssehub was down (statuses %v)", statuses())
	}

	// Each of nginx's stand-ins opened the EventSource too, briefly.
	back, _ := startMain(t, cfg, onAddr)
	for deadline := time.Now().Add(10 * time.Second); metricValue(t, back, "ssehub_subscribers") != 1; {
		if time.Now().After(deadline) {
			t.Fatalf("the EventSource has not subscribed again 10s after ssehub came back (statuses %v)", statuses())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if status, id := publishOverHTTP(t, n.url, "tok", "demo.restart", "after the restart"); status != http.StatusCreated {
		t.Fatalf("publish through nginx: %d %s", status, id)
	}
	runActions(t, ctx, waitJS(`window.__raw.seen.messages.length === 1`))
	if got := mustRun(t, ctx, chromedp.Evaluate[[]string](`window.__raw.seen.messages`)); !slices.Equal(got, []string{"after the restart"}) {
		t.Errorf("messages %q, want the event published after the restart", got)
	}
	// Every answer the EventSource got: ssehub's stream, nginx's stand-ins
	// while it was down (200 each, never 502), ssehub's stream again.
	if got := statuses(); slices.ContainsFunc(got, func(s int64) bool { return s != http.StatusOK }) {
		t.Errorf("the EventSource's requests were answered %v, want 200 each", got)
	}
}

// TestBrowserHubPanelShowsUnreachableBehindNginx: the Hub panel, served
// through the README's nginx recipe, streams; ssehub stops, and the panel's
// reconnects meet nginx's stand-in (200 and an event stream, 200 ms here),
// which the panel shows as unreachable, not open, every time; ssehub starts
// again, and the panel is open again and gets the next event.
func TestBrowserHubPanelShowsUnreachableBehindNginx(t *testing.T) {
	requireNginx(t)
	addr := restartAddr(t)
	cfg := hubTestConfig()
	cfg.Stream.Retry = 100 * time.Millisecond
	cfg.Stream.HeartbeatInterval = time.Second
	onAddr := func(m *Main) { m.Config.Server.Addr = addr }
	_, stop := startMain(t, cfg, onAddr)
	n := runNginxEdited(t, []nginxEdit{{`retry: 5000\n\n"`, `retry: 200\n\n"`}}, addr)

	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)
	requests := watchRequests(t, ctx)
	runPage(t, ctx, n.url+"/",
		waitJS(`document.querySelector("#hub-topics").value === "demo.>"`),
		recordTexts("#hub-state"),
		chromedp.Click(chromedp.CSS("#hub-connect")),
		waitText("#hub-state", "open"),
	)
	subs := func() int { return len(requests.to(ctx, "/api/v1/events")) }

	stop()
	runActions(t, ctx, waitText("#hub-state", "unreachable"))
	// Stand-ins after the first: each is seen as one, never as open.
	for seen, deadline := subs(), time.Now().Add(10*time.Second); subs() < seen+3; {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribe requests 10s after the first stand-in, want %d", subs(), seen+3)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := mustRun(t, ctx, textOf("#hub-state")); got != "unreachable" {
		t.Errorf("state %q while ssehub is down, want unreachable", got)
	}
	// The stand-in's 200 ms, backed off for stand-ins in a row up to 3 s,
	// and its jitter of up to a half.
	var wait float64
	if got := mustRun(t, ctx, textOf("#hub-unreachable")); !scanned(got, "the proxy cannot reach ssehub: trying again in %f s", &wait) || wait < 0.2 || wait > 4.5 {
		t.Errorf("#hub-unreachable %q, want a wait between 0.2 s and 4.5 s", got)
	}

	back, _ := startMain(t, cfg, onAddr)
	runActions(t, ctx, waitText("#hub-state", "open"))
	for deadline := time.Now().Add(10 * time.Second); metricValue(t, back, "ssehub_subscribers") != 1; {
		if time.Now().After(deadline) {
			t.Fatal("the panel has not subscribed again 10s after ssehub came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if status, id := publishOverHTTP(t, n.url, hubTestToken, "demo.chat", "after the restart"); status != http.StatusCreated {
		t.Fatalf("publish through nginx: %d %s", status, id)
	}
	runActions(t, ctx, waitHubEvents(1))
	// Open, dropped by the stop, then unreachable (the first stand-in may
	// show open for as long as its comment takes to follow its headers),
	// and open only once ssehub answers again.
	states := mustRun(t, ctx, recordedTexts("#hub-state"))
	first := slices.Index(states, "unreachable")
	if len(states) < 3 || !slices.Equal(states[:3], []string{"idle", "connecting", "open"}) || first < 0 ||
		!slices.Equal(slices.Compact(states[first:]), []string{"unreachable", "open"}) {
		t.Errorf("hub states %q, want open, then unreachable until ssehub is back, then open", states)
	}
}

// scanned reports whether text is format with its verbs filled, into args.
func scanned(text, format string, args ...any) bool {
	n, err := fmt.Sscanf(text, format, args...)
	return err == nil && n == len(args)
}
