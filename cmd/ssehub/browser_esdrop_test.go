package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/ssehub/ssehub/config"
)

// The EventSource panel resumes a dropped stream as its hint says: the
// first GET stream, answered by a stand-in, is cut after line 1 without
// its end; the browser reconnects with Last-Event-ID 1 and ssehub goes on
// from line 2. The panel counts the reconnect, shows every line once, and
// closes on the close event.
func TestBrowserEventSourcePanelResumesAfterADrop(t *testing.T) {
	cfg := config.Default()
	cfg.Demo.TickerCount = 4
	cfg.Demo.TickerInterval = 10 * time.Millisecond
	base, _ := startMain(t, cfg)
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		lastIDs []string // the Last-Event-ID of each resume
	)
	proxy := newPageProxy(target)
	page, cuts := droppingPage(t, target, "id: 0\ndata: Streamed line 0\n\nid: 1\ndata: Streamed line 1\n\n",
		func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
			mu.Unlock()
			proxy.ServeHTTP(w, r)
		})
	ctx := newBrowser(t) // the drop is a network error in the console: no failOnPageErrors
	runPage(t, ctx, page.URL+"/",
		chromedp.Click(chromedp.CSS("#es-start")),
		waitText("#es-log li.end", "bye"),
	)
	lines := mustRun(t, ctx, textsOf("#es-log li"))
	if want := []string{"Streamed line 0", "Streamed line 1", "Streamed line 2", "Streamed line 3", "bye"}; !slices.Equal(lines, want) {
		t.Errorf("lines %q, want %q", lines, want)
	}
	// A first connect cut before the browser read its id is made again
	// and cut again: each such one is a reconnect too.
	if got, want := mustRun(t, ctx, textOf("#es-reconnects")), fmt.Sprint(cuts()); got != want {
		t.Errorf("reconnects %s, want %s (%d first connects cut, then the resume)", got, want, cuts())
	}
	if got := mustRun(t, ctx, textOf("#es-state")); got != "closed" {
		t.Errorf("state %q, want closed", got)
	}
	if got := mustRun(t, ctx, textOf("#es-error")); got != "" {
		t.Errorf("the panel says %q, want nothing", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"1"}; !slices.Equal(lastIDs, want) {
		t.Errorf("Last-Event-ID of each resume %q, want %q", lastIDs, want)
	}
}

// A resume that a proxy refuses with a page of its own (nginx's 502 HTML,
// without the README's recipe) stops the EventSource panel for good, and
// its note gives the status: the panel's second request read it, and a
// note without it leaves the reader guessing which of the stream's hops
// refused it.
func TestBrowserEventSourcePanelNamesTheStatusOfARefusedResume(t *testing.T) {
	base, _ := startMain(t, config.Default())
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := droppingPage(t, target, "id: 0\ndata: Streamed line 0\n\n", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<html><body><h1>502 Bad Gateway</h1></body></html>\n")
	})
	ctx := newBrowser(t)
	runPage(t, ctx, page.URL+"/",
		chromedp.Click(chromedp.CSS("#es-start")),
		waitText("#es-state", "closed"),
	)
	err = chromedp.Do(ctx, waitJS(`document.querySelector("#es-error").textContent.trim() !== ""`))
	note := mustRun(t, ctx, textOf("#es-error"))
	if err != nil || !strings.HasPrefix(note, "HTTP 502: ") || !strings.Contains(note, "stopped for good") {
		t.Errorf("the panel says %q (%v), want the resume's 502 and that EventSource stopped", note, err)
	}
}

// A stream cut after its last line but before its close event (a proxy's
// timeout, a network that dropped the end) makes EventSource reconnect
// with the last line's id, which ssehub answers 204: the stream is over.
// The panel said "the server refused to resume the stream", though
// nothing was refused and every line had come; it says the stream is
// over.
func TestBrowserEventSourcePanelSaysAResumeAfterTheLastLineIsOver(t *testing.T) {
	cfg := config.Default()
	cfg.Demo.TickerCount = 2
	base, _ := startMain(t, cfg)
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := droppingPage(t, target, "id: 0\ndata: Streamed line 0\n\nid: 1\ndata: Streamed line 1\n\n", nil)
	ctx := newBrowser(t)
	runPage(t, ctx, page.URL+"/",
		chromedp.Click(chromedp.CSS("#es-start")),
		waitText("#es-state", "closed"),
	)
	err = chromedp.Do(ctx, waitJS(`document.querySelector("#es-error").textContent.trim() !== ""`))
	note := mustRun(t, ctx, textOf("#es-error"))
	if err != nil || !strings.HasPrefix(note, "HTTP 204: ") || strings.Contains(note, "refused") {
		t.Errorf("the panel says %q (%v), want the 204, and no refusal", note, err)
	}
	if lines := mustRun(t, ctx, textsOf("#es-log li")); !slices.Equal(lines, []string{"Streamed line 0", "Streamed line 1"}) {
		t.Errorf("lines %q, want both", lines)
	}
}

// droppingPage serves the demo page and its files from target through a
// proxy, answers every first GET stream (no Last-Event-ID) with
// "retry: 50" and cut, then drops the connection without the body's end,
// and hands each resume to resume (nil: ssehub, through the proxy). Every
// first connect is cut, not only the first one: a connect whose bytes a
// loaded machine lost to the drop is made again the same way; cuts says
// how many were cut.
func droppingPage(t *testing.T, target *url.URL, cut string, resume http.HandlerFunc) (page *httptest.Server, cuts func() int) {
	t.Helper()
	var n atomic.Int32
	proxy := newPageProxy(target)
	if resume == nil {
		resume = proxy.ServeHTTP
	}
	page = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != "/stream":
			proxy.ServeHTTP(w, r)
			return
		case r.Header.Get("Last-Event-ID") != "":
			resume(w, r)
			return
		}
		n.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "retry: 50\n\n"+cut)
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		conn.Close()
	}))
	t.Cleanup(page.Close)
	return page, func() int { return int(n.Load()) }
}

// The EventSource panel behind the README's nginx recipe while ssehub is
// out of reach: each reconnect is answered by nginx's stand-in, a 200
// event stream of a comment and a retry: field that ends at once.
// EventSource opens on it, and the panel showed "open", then
// "connecting", over and over, with nothing to say why no line came. It
// shows "unreachable", says so, and once ssehub answers again (here,
// after three stand-ins) goes on from the last line to the end.
func TestBrowserEventSourcePanelShowsAProxysStandInAsUnreachable(t *testing.T) {
	cfg := config.Default()
	cfg.Demo.TickerCount = 3
	cfg.Demo.TickerInterval = 10 * time.Millisecond
	base, _ := startMain(t, cfg)
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newPageProxy(target)
	var (
		mu       sync.Mutex
		standIns int
		release  = make(chan struct{}) // closed once the page showed the stand-ins
	)
	page, _ := droppingPage(t, target, "id: 0\ndata: Streamed line 0\n\n", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
			proxy.ServeHTTP(w, r)
			return
		default:
		}
		mu.Lock()
		standIns++
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		fmt.Fprint(w, ": ssehub is unreachable\nretry: 50\n\n")
	})
	ctx := newBrowser(t) // the drop is a network error in the console: no failOnPageErrors
	runPage(t, ctx, page.URL+"/",
		chromedp.Click(chromedp.CSS("#es-start")),
		waitText("#es-log li", "Streamed line 0"),
		recordTexts("#es-state"),
	)
	for deadline := time.Now().Add(pollTimeout); ; time.Sleep(pollInterval) {
		mu.Lock()
		n := standIns
		mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d stand-ins answered, want 3", n)
		}
	}
	runActions(t, ctx, waitJS(`document.querySelector("#es-error").textContent.trim() !== ""`))
	states := mustRun(t, ctx, recordedTexts("#es-state"))
	note := mustRun(t, ctx, textOf("#es-error"))
	if slices.Contains(states[1:], "open") || states[len(states)-1] != "unreachable" {
		t.Errorf("states during the stand-ins %q: want unreachable, never open", states)
	}
	if !strings.Contains(note, "unreachable") {
		t.Errorf("the panel says %q, want that ssehub is unreachable", note)
	}
	close(release)
	runActions(t, ctx, waitText("#es-log li.end", "bye"))
	if lines := mustRun(t, ctx, textsOf("#es-log li")); !slices.Equal(lines, []string{"Streamed line 0", "Streamed line 1", "Streamed line 2", "bye"}) {
		t.Errorf("lines %q, want each line once, then bye", lines)
	}
	if got := mustRun(t, ctx, textOf("#es-error")); got != "" {
		t.Errorf("the panel still says %q once ssehub answered", got)
	}
}
