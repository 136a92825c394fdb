package main

// Browser tests: a headless Chromium, driven through chromedp, loads the demo
// page from a server started with startMain and, for CORS, from a second
// local origin, and checks what a user would see.
//
// The harness below is shared by every browser test in this package:
//
//	url, _ := startMain(t, cfg)           // servers first: they stop last
//	ctx := newBrowser(t)                  // Chromium and its first tab
//	failOnPageErrors(t, ctx)              // optional: no console errors allowed
//	runPage(t, ctx, url+"/", chromedp.Click(chromedp.CSS("#es-start")), waitText("#es-state", "open"))
//	lines := mustRun(t, ctx, textsOf("#es-log li"))
//
// Every wait polls a condition in the page (no sleeps) and is bounded twice:
// by pollTimeout inside the page, which lets the error say what the page
// showed instead, and by browserTestTimeout for the whole browser.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/testlog"
	"github.com/ssehub/ssehub/internal/testpki"
	"github.com/ssehub/ssehub/static"
)

const (
	// chromiumPath is where Debian's chromium package installs the browser;
	// `make test` installs it there when it is missing.
	chromiumPath = "/usr/bin/chromium"
	// browserTestTimeout bounds one browser, from its start to its end.
	browserTestTimeout = 60 * time.Second
	// pollTimeout bounds one wait for a condition in the page.
	pollTimeout = 20 * time.Second
	// pollInterval is how often a wait checks its condition.
	pollInterval = 10 * time.Millisecond
)

// newBrowser starts a headless Chromium for the test and returns the context
// of its first tab, for runPage, runActions and mustRun. The browser stops
// when the test ends, or at the latest browserTestTimeout after it started.
// Start the servers the page talks to before calling newBrowser, so that the
// browser closes its connections before they shut down.
//
// opts are added to the browser's command line (chromedp.Flag).
//
// Without Chromium the test is skipped, unless the environment variable CI
// is "true": there a missing browser fails the test.
func newBrowser(t *testing.T, opts ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("browser tests need Chromium at %s, and CI=true: install the chromium package (make test does): %v", chromiumPath, err)
		}
		t.Skipf("skipping browser test: no Chromium at %s (make test installs the chromium package)", chromiumPath)
	}
	var output lockedBuffer
	ctx, cancel := context.WithTimeout(context.Background(), browserTestTimeout)
	allocCtx, allocCancel := chromedp.NewExecAllocator(ctx, append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.CombinedOutput(&output),
	}, opts...)...)
	tab, tabCancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		tabCancel() // the first tab's cancel stops the browser and waits for it
		allocCancel()
		cancel()
		if t.Failed() {
			t.Logf("Chromium's output:\n%s", output.tail(4096))
		}
	})
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return tab
}

// newTab opens another tab in the browser of ctx, a context from newBrowser,
// and closes it when the test ends. Each tab has its own event listeners.
func newTab(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	return tab
}

// runPage loads url in the tab of ctx, waits until the demo page has
// mounted (body[data-ready="1"]), then runs actions in order. Any error
// fails the test.
func runPage(t *testing.T, ctx context.Context, url string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	steps := append([]chromedp.Action[chromedp.Void]{
		chromedp.Navigate(url),
		waitJS(`document.body.dataset.ready === "1"`),
	}, actions...)
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("page %s: %v", url, err)
	}
}

// setPageCookie sets cookie (name=value; attributes) with document.cookie
// in the page loaded in ctx, then waits until the browser's cookie store
// holds it for url. document.cookie hands the cookie to the network
// service asynchronously, so a request started right after it, a frame's
// navigation above all, may go out without it on a loaded machine.
func setPageCookie(t *testing.T, ctx context.Context, cookie, url string) {
	t.Helper()
	runActions(t, ctx, callJS[chromedp.Void](`(cookie) => { document.cookie = cookie; }`, cookie))
	nameValue, _, _ := strings.Cut(cookie, ";")
	for deadline := time.Now().Add(pollTimeout); ; {
		got, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{url}})
		if err != nil {
			t.Fatalf("the cookies for %s: %v", url, err)
		}
		for _, c := range got.Cookies {
			if c.Name+"="+c.Value == nameValue {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the browser holds no cookie %q for %s", nameValue, url)
		}
		time.Sleep(pollInterval)
	}
}

// runActions runs actions in order in the tab of ctx, on the page already
// loaded. Any error fails the test.
func runActions(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

// mustRun runs one action that returns a value, such as textsOf or callJS,
// and returns its value. An error fails the test.
func mustRun[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// callJS calls the JavaScript function fn in the page with args, each
// passed as its JSON encoding, awaits the result if it is a promise, and
// decodes it into T (as chromedp.Evaluate does; use chromedp.Void to ignore
// it). A thrown exception or a rejected promise is the action's error.
func callJS[T any](fn string, args ...any) chromedp.Action[T] {
	return func(ctx context.Context, tgt *chromedp.Target) (T, error) {
		encoded := make([]string, len(args))
		for i, a := range args {
			b, err := json.Marshal(a)
			if err != nil {
				var zero T
				return zero, fmt.Errorf("argument %d of %s: %w", i, fn, err)
			}
			encoded[i] = string(b)
		}
		expr := fmt.Sprintf("(%s)(%s)", fn, strings.Join(encoded, ", "))
		return chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise)(ctx, tgt)
	}
}

// waitJS waits until the JavaScript expression is truthy in the page.
func waitJS(expr string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tgt *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[chromedp.Void](expr,
			chromedp.WithPollingInterval(pollInterval), chromedp.WithPollingTimeout(pollTimeout))(ctx, tgt)
		if err != nil {
			return chromedp.Void{}, fmt.Errorf("waiting for %s: %w", expr, err)
		}
		return chromedp.Void{}, nil
	}
}

// textJS returns the trimmed text of the first element matching a CSS
// selector, or null when none matches.
const textJS = `(sel) => { const el = document.querySelector(sel); return el === null ? null : el.textContent.trim(); }`

// waitText waits until the first element matching the CSS selector sel has
// the text want, compared after trimming white space. On a timeout the
// error says what the element read instead.
func waitText(sel, want string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tgt *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.PollFunction[chromedp.Void](`(sel, want) => (`+textJS+`)(sel) === want`,
			chromedp.WithPollingArgs(sel, want),
			chromedp.WithPollingInterval(pollInterval), chromedp.WithPollingTimeout(pollTimeout))(ctx, tgt)
		if err == nil {
			return chromedp.Void{}, nil
		}
		got, gerr := textOf(sel)(ctx, tgt)
		if gerr != nil {
			return chromedp.Void{}, fmt.Errorf("waiting for %s to read %q: %w", sel, want, err)
		}
		return chromedp.Void{}, fmt.Errorf("waiting for %s to read %q, it reads %q: %w", sel, want, got, err)
	}
}

// textOf returns the trimmed text of the first element matching the CSS
// selector sel; it is an error when none matches.
func textOf(sel string) chromedp.Action[string] {
	return func(ctx context.Context, tgt *chromedp.Target) (string, error) {
		text, err := callJS[*string](textJS, sel)(ctx, tgt)
		if err != nil {
			return "", err
		}
		if text == nil {
			return "", fmt.Errorf("no element matches %s", sel)
		}
		return *text, nil
	}
}

// textsOf returns the trimmed text of every element matching the CSS
// selector sel, in document order: for example the lines of a log.
func textsOf(sel string) chromedp.Action[[]string] {
	return callJS[[]string](`(sel) => Array.from(document.querySelectorAll(sel), (el) => el.textContent.trim())`, sel)
}

// typeInto replaces the value of the input or textarea matching the CSS
// selector sel by typing text with real key events, so the page sees what a
// user's typing produces.
func typeInto(sel, text string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		callJS[chromedp.Void](`(sel) => { const el = document.querySelector(sel); el.focus(); el.select(); }`, sel),
		chromedp.SendKeys(chromedp.CSS(sel), text),
	)
}

// recordTexts starts recording every text the first element matching the
// CSS selector sel shows from now on: its current text, then each change.
// recordedTexts reads the record. Use it to check that a state went through
// the expected steps, not only that it ended right.
func recordTexts(sel string) chromedp.Action[chromedp.Void] {
	return callJS[chromedp.Void](`(sel) => {
		const el = document.querySelector(sel);
		const seen = [el.textContent.trim()];
		(window.__recordedTexts ??= {})[sel] = seen;
		new MutationObserver(() => {
			const text = el.textContent.trim();
			if (text !== seen[seen.length - 1]) seen.push(text);
		}).observe(el, { subtree: true, childList: true, characterData: true });
	}`, sel)
}

// recordedTexts returns what recordTexts(sel) recorded so far.
func recordedTexts(sel string) chromedp.Action[[]string] {
	return callJS[[]string](`(sel) => window.__recordedTexts[sel]`, sel)
}

// pageErrors collects the errors a tab reports: uncaught exceptions,
// console.error and console.assert calls, and the browser's own error log
// entries (failed loads, CORS refusals).
type pageErrors struct {
	mu   sync.Mutex
	msgs []string
	more chan struct{} // closed and replaced at each new message
}

// watchPageErrors starts collecting the errors of the tab of ctx. Call it
// before the action that may cause them.
func watchPageErrors(t *testing.T, ctx context.Context) *pageErrors {
	t.Helper()
	p := &pageErrors{more: make(chan struct{})}
	err := chromedp.Listen(ctx, func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg = "uncaught exception: " + exceptionText(ev.ExceptionDetails)
		case *runtime.EventConsoleAPICalled:
			if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeAssert {
				return
			}
			args := make([]string, len(ev.Args))
			for i, a := range ev.Args {
				args[i] = remoteText(a)
			}
			msg = fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " "))
		case *log.EventEntryAdded:
			if ev.Entry.Level != log.EntryLevelError {
				return
			}
			msg = fmt.Sprintf("browser %s error: %s", ev.Entry.Source, ev.Entry.Text)
			if ev.Entry.URL != "" {
				msg += " (" + ev.Entry.URL + ")"
			}
		default:
			return
		}
		p.mu.Lock()
		p.msgs = append(p.msgs, msg)
		close(p.more)
		p.more = make(chan struct{})
		p.mu.Unlock()
	})
	if err != nil {
		t.Fatalf("listening to the page: %v", err)
	}
	return p
}

// list returns the errors collected so far. It first makes a round trip to
// the page, so that errors the page reported before it are in.
func (p *pageErrors) list(ctx context.Context) []string {
	_, _ = chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`0`))
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.msgs)
}

// waitFor waits at most pollTimeout for an error that contains substr, and
// returns the errors collected by then and whether one contained it. Use it
// where the browser reports an error on its own schedule, such as a failed
// load, which may trail the page's own events.
func (p *pageErrors) waitFor(ctx context.Context, substr string) ([]string, bool) {
	ctx, cancel := context.WithTimeout(ctx, pollTimeout)
	defer cancel()
	for {
		p.mu.Lock()
		msgs, more := slices.Clone(p.msgs), p.more
		p.mu.Unlock()
		if slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, substr) }) {
			return msgs, true
		}
		select {
		case <-more:
		case <-ctx.Done():
			return msgs, false
		}
	}
}

// failOnPageErrors fails the test, when it ends, for every error the tab of
// ctx reported from now on (see pageErrors). Use it in runs where nothing
// may go wrong; a refused CORS request, for one, rightly logs an error.
func failOnPageErrors(t *testing.T, ctx context.Context) *pageErrors {
	t.Helper()
	p := watchPageErrors(t, ctx)
	t.Cleanup(func() {
		for _, msg := range p.list(ctx) {
			t.Errorf("page error: %s", msg)
		}
	})
	return p
}

// exceptionText describes an uncaught exception.
func exceptionText(d *runtime.ExceptionDetails) string {
	if d.Exception != nil {
		return remoteText(d.Exception)
	}
	return d.Text
}

// remoteText describes a JavaScript value the browser reported: a string
// as itself, any other value as DevTools would show it.
func remoteText(o *runtime.RemoteObject) string {
	var s string
	if o.Type == runtime.RemoteObjectTypeString && json.Unmarshal(o.Value, &s) == nil {
		return s
	}
	if o.Description != "" {
		return o.Description
	}
	if len(o.Value) > 0 {
		return string(o.Value)
	}
	return string(o.Type)
}

// request is one HTTP request a tab made, as the DevTools network events
// report it. A CORS preflight is a request of its own, with Method OPTIONS.
type request struct {
	Method  string
	URL     string
	Type    network.ResourceType // EventSource, Fetch, Preflight, Document...
	Headers map[string]string    // as sent on the wire when known (OnWire), else as the page set them
	// OnWire: Headers are those sent on the wire, cookies and fetch
	// metadata included. Chromium may tell them after the response.
	OnWire bool
	Status int64  // 0 until a response arrives
	Failed string // why it failed, e.g. "net::ERR_FAILED (CORS PreflightInvalidStatus)"
	// BlockedCookies names each cookie of the URL the browser did not send,
	// and why: "ssehub_token [UserPreferences]".
	BlockedCookies []string
}

// requestLog records the requests of one tab in the order they were sent.
type requestLog struct {
	mu    sync.Mutex
	ids   []network.RequestID
	reqs  map[network.RequestID]*request
	extra map[network.RequestID]*network.EventRequestWillBeSentExtraInfo // wire headers and cookies, which may come first
}

// watchRequests starts recording the requests of the tab of ctx. Call it
// before the action that sends them.
func watchRequests(t *testing.T, ctx context.Context) *requestLog {
	t.Helper()
	l := &requestLog{reqs: map[network.RequestID]*request{}, extra: map[network.RequestID]*network.EventRequestWillBeSentExtraInfo{}}
	err := chromedp.Listen(ctx, func(ev any) {
		l.mu.Lock()
		defer l.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			if _, ok := l.reqs[ev.RequestID]; !ok {
				l.ids = append(l.ids, ev.RequestID)
			}
			l.reqs[ev.RequestID] = &request{
				Method: ev.Request.Method, URL: ev.Request.URL, Type: ev.Type,
				Headers: canonicalHeaders(ev.Request.Headers),
			}
		case *network.EventRequestWillBeSentExtraInfo:
			l.extra[ev.RequestID] = ev
		case *network.EventResponseReceived:
			if r, ok := l.reqs[ev.RequestID]; ok {
				r.Status = ev.Response.Status
			}
		case *network.EventLoadingFailed:
			if r, ok := l.reqs[ev.RequestID]; ok {
				r.Failed = ev.ErrorText
				if ev.CorsErrorStatus != nil {
					r.Failed += fmt.Sprintf(" (CORS %s)", ev.CorsErrorStatus.CorsError)
				}
			}
		}
	})
	if err != nil {
		t.Fatalf("listening to the network: %v", err)
	}
	return l
}

// to returns the recorded requests whose URL path is path, in order. It
// first makes a round trip to the page, so that events the browser sent
// before it are in.
func (l *requestLog) to(ctx context.Context, path string) []request {
	var out []request
	for _, r := range l.all(ctx) {
		if u, err := url.Parse(r.URL); err == nil && u.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// all returns every recorded request, in order, after the round trip that
// to makes.
func (l *requestLog) all(ctx context.Context) []request {
	_, _ = chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`0`))
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]request, 0, len(l.ids))
	for _, id := range l.ids {
		r := *l.reqs[id]
		if extra, ok := l.extra[id]; ok {
			r.Headers, r.OnWire = canonicalHeaders(extra.Headers), true
			for _, c := range extra.AssociatedCookies {
				if len(c.BlockedReasons) > 0 {
					r.BlockedCookies = append(r.BlockedCookies, fmt.Sprintf("%s %v", c.Cookie.Name, c.BlockedReasons))
				}
			}
		}
		out = append(out, r)
	}
	return out
}

// canonicalHeaders copies DevTools headers into a map keyed by canonical
// header names (Last-Event-Id, Access-Control-Request-Headers).
func canonicalHeaders(h network.Headers) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		out[http.CanonicalHeaderKey(k)] = fmt.Sprint(v)
	}
	return out
}

// newSecondOrigin serves the demo page's files, as any static web server
// would, on a second local origin, and returns its base URL.
func newSecondOrigin(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.FileServerFS(static.FS))
	t.Cleanup(srv.Close)
	return srv.URL
}

// lockedBuffer is a bytes buffer safe for a writer and a reader at once.
type lockedBuffer struct{ testlog.Buffer }

func (b *lockedBuffer) tail(n int) string {
	var kept []string
	for line := range strings.Lines(b.String()) {
		if !strings.Contains(line, "dbus") {
			kept = append(kept, line)
		}
	}
	out := strings.Join(kept, "")
	return out[max(0, len(out)-n):]
}

// TestBrowserSameOriginPanels runs panels 1 and 2 of the demo page served by
// ssehub itself: EventSource reads the ticker and closes on its close event
// without reconnecting, and fetch streams the typed text into its own
// panel (the seed page wrote it into the wrong one).
func TestBrowserSameOriginPanels(t *testing.T) {
	cfg := config.Default()
	cfg.Demo.TickerCount = 3
	cfg.Demo.TickerInterval = 50 * time.Millisecond
	base, _ := startMain(t, cfg)
	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)
	requests := watchRequests(t, ctx)

	runPage(t, ctx, base+"/",
		recordTexts("#es-state"),
		chromedp.Click(chromedp.CSS("#es-start")),
		waitText("#es-log li.end", "bye"),
	)
	lines := mustRun(t, ctx, textsOf("#es-log li"))
	if want := []string{"Streamed line 0", "Streamed line 1", "Streamed line 2", "bye"}; !slices.Equal(lines, want) {
		t.Errorf("EventSource panel log %q, want %q", lines, want)
	}
	if got, want := mustRun(t, ctx, recordedTexts("#es-state")), []string{"closed", "connecting", "open", "closed"}; !slices.Equal(got, want) {
		t.Errorf("EventSource panel states %q, want %q", got, want)
	}
	if got := mustRun(t, ctx, textOf("#es-reconnects")); got != "0" {
		t.Errorf("reconnects %s, want 0", got)
	}
	if got := mustRun(t, ctx, textOf("#es-error")); got != "" {
		t.Errorf("EventSource panel error %q, want none", got)
	}

	// Spaces and a line break between the words; typing a tab would move
	// the focus out of the text box.
	sentence := "  Tokens arrive one\nword   at a time  "
	runActions(t, ctx,
		typeInto("#fetch-text", sentence),
		typeInto("#fetch-interval", "10ms"),
		recordTexts("#fetch-state"),
		chromedp.Click(chromedp.CSS("#fetch-start")),
		waitText("#fetch-state", "done"),
	)
	if got, want := mustRun(t, ctx, textOf("#fetch-output")), strings.Join(strings.Fields(sentence), " "); got != want {
		t.Errorf("fetch panel output %q, want %q", got, want)
	}
	if got, want := mustRun(t, ctx, recordedTexts("#fetch-state")), []string{"idle", "streaming", "done"}; !slices.Equal(got, want) {
		t.Errorf("fetch panel states %q, want %q", got, want)
	}
	if after := mustRun(t, ctx, textsOf("#es-log li")); !slices.Equal(after, lines) {
		t.Errorf("the fetch stream changed the EventSource panel's log: %q, was %q", after, lines)
	}
	// One EventSource GET (it closed on the close event, so no reconnect)
	// and one fetch POST: the seed's fetch button opened a stray
	// EventSource as well.
	var sent []string
	for _, r := range requests.to(ctx, "/stream") {
		sent = append(sent, r.Method+" "+string(r.Type))
	}
	if want := []string{"GET EventSource", "POST Fetch"}; !slices.Equal(sent, want) {
		t.Errorf("requests to /stream %q, want %q", sent, want)
	}
}

// TestBrowserFetchStopAbortsTheStream clicks Stop in panel 2 mid-stream:
// the page shows it aborted, keeps the words it had, and the server sees
// the request go away at once, not at the end of the text.
func TestBrowserFetchStopAbortsTheStream(t *testing.T) {
	base, _ := startMain(t, config.Default())
	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)

	runPage(t, ctx, base+"/",
		typeInto("#fetch-text", strings.Repeat("word ", 30)),
		typeInto("#fetch-interval", "1s"), // 30 s for the whole text
		chromedp.Click(chromedp.CSS("#fetch-start")),
		waitJS(`document.querySelector("#fetch-output").textContent.trim().startsWith("word")`),
		chromedp.Click(chromedp.CSS("#fetch-stop")),
		waitText("#fetch-state", "aborted"),
	)
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(t, base, "ssehub_streams_active") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the token stream is still open on the server 10s after Stop")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := mustRun(t, ctx, textOf("#fetch-output")); !strings.HasPrefix(got, "word") || len(strings.Fields(got)) >= 30 {
		t.Errorf("output after Stop %q, want the first words only", got)
	}
}

// The fetch panel's output follows the words as they arrive, as a chat
// does: a text longer than its box streamed on out of sight below it.
func TestBrowserFetchOutputFollowsTheWords(t *testing.T) {
	base, _ := startMain(t, config.Default())
	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)
	runPage(t, ctx, base+"/",
		// Typed with real keys, 1,500 words would take long: set the
		// value and tell Vue with an input event.
		callJS[chromedp.Void](`(text) => {
			const el = document.querySelector("#fetch-text");
			el.value = text;
			el.dispatchEvent(new Event("input"));
		}`, strings.Repeat("word ", 1500)),
		typeInto("#fetch-interval", "0s"),
		chromedp.Click(chromedp.CSS("#fetch-start")),
		waitText("#fetch-state", "done"),
	)
	got := mustRun(t, ctx, callJS[[]float64](`() => { const el = document.querySelector("#fetch-output");
		return [el.scrollTop, el.clientHeight, el.scrollHeight]; }`))
	if top, height, full := got[0], got[1], got[2]; full <= height || top+height < full-1 {
		t.Errorf("the output shows %v to %v of %v px, want its end", top, top+height, full)
	}
}

// TestBrowserEventSourceStopsOn204 opens a raw EventSource that ignores the
// close event. After the stream's clean end Chromium reconnects, as the spec
// requires, with Last-Event-ID of the final line; ssehub answers 204, and
// that stops the EventSource for good: no line twice, one open only.
func TestBrowserEventSourceStopsOn204(t *testing.T) {
	cfg := config.Default()
	cfg.Stream.Retry = 100 * time.Millisecond // the reconnect comes quickly
	base, _ := startMain(t, cfg)
	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)
	requests := watchRequests(t, ctx)

	runPage(t, ctx, base+"/",
		callJS[chromedp.Void](`() => {
			const seen = { opens: 0, messages: [], closeEvents: 0, errorStates: [] };
			const es = new EventSource("/stream?count=2&interval=10ms");
			window.__raw = { es, seen };
			es.onopen = () => seen.opens++;
			es.onmessage = (ev) => seen.messages.push(ev.lastEventId + " " + ev.data);
			es.addEventListener("close", () => seen.closeEvents++); // counts, does not close
			es.onerror = () => seen.errorStates.push(es.readyState);
		}`),
	)
	type counts struct {
		Opens       int
		Messages    []string
		CloseEvents int
		ErrorStates []int
	}
	err := chromedp.Do(ctx, waitJS(`window.__raw.es.readyState === EventSource.CLOSED`))
	seen := mustRun(t, ctx, chromedp.Evaluate[counts](`window.__raw.seen`))
	if err != nil {
		t.Fatalf("EventSource did not stop: %v; it saw %+v", err, seen)
	}
	if want := []string{"0 Streamed line 0", "1 Streamed line 1"}; !slices.Equal(seen.Messages, want) {
		t.Errorf("messages %q, want %q once each", seen.Messages, want)
	}
	if seen.Opens != 1 || seen.CloseEvents != 1 {
		t.Errorf("%d opens and %d close events, want 1 and 1", seen.Opens, seen.CloseEvents)
	}
	// CONNECTING (0) after the clean end, CLOSED (2) after the 204.
	if want := []int{0, 2}; !slices.Equal(seen.ErrorStates, want) {
		t.Errorf("readyState at each error %v, want %v: a reconnect, then the stop", seen.ErrorStates, want)
	}

	reqs := requests.to(ctx, "/stream")
	if len(reqs) != 2 {
		t.Fatalf("%d requests to /stream, want the stream and one reconnect: %+v", len(reqs), reqs)
	}
	if reqs[0].Status != http.StatusOK || reqs[1].Status != http.StatusNoContent {
		t.Errorf("statuses %d, %d, want 200 then 204", reqs[0].Status, reqs[1].Status)
	}
	if got := reqs[1].Headers["Last-Event-Id"]; got != "1" {
		t.Errorf("the reconnect sent Last-Event-ID %q, want 1 (headers %v)", got, reqs[1].Headers)
	}
}

// The EventSource panel shows an event: reset: a resume the ticker cannot
// serve (here an id past its count, as after a restart with a smaller
// one) starts again from line 0, and the page says so rather than pass it
// over. The first request, answered by a stand-in, ends after id 7.
func TestBrowserEventSourcePanelShowsAReset(t *testing.T) {
	cfg := config.Default()
	cfg.Demo.TickerCount = 3
	cfg.Demo.TickerInterval = 10 * time.Millisecond
	base, _ := startMain(t, cfg)
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newPageProxy(target)
	var first sync.Once
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stand := false
		if r.URL.Path == "/stream" {
			first.Do(func() { stand = true })
		}
		if stand {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "retry: 50\n\nid: 7\ndata: Streamed line 7\n\n")
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(page.Close)
	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)
	runPage(t, ctx, page.URL+"/",
		chromedp.Click(chromedp.CSS("#es-start")),
		waitText("#es-log li.end", "bye"),
	)
	lines := mustRun(t, ctx, textsOf("#es-log li"))
	if want := []string{"Streamed line 7", "Streamed line 0", "Streamed line 1", "Streamed line 2", "bye"}; !slices.Equal(lines, want) {
		t.Errorf("lines %q, want %q", lines, want)
	}
	if note := mustRun(t, ctx, textOf("#es-error")); !strings.HasPrefix(note, "reset: ") || !strings.Contains(note, "7") {
		t.Errorf("the panel says %q, want the reset and its reason", note)
	}
}

// The EventSource panel refused a stream at capacity (503, which stops an
// EventSource for good) says so, with the server's reason: it asked
// whether the page was served by ssehub, which it was. On a page that
// another web server serves, it still asks.
func TestBrowserEventSourcePanelAtCapacity(t *testing.T) {
	cfg := config.Default()
	cfg.Stream.MaxStreams = 1
	base, _ := startMain(t, cfg)
	held, err := http.Get(base + "/api/v1/events?topic=demo.held")
	if err != nil || held.StatusCode != http.StatusOK {
		t.Fatalf("the one stream: %v %v", held, err)
	}
	t.Cleanup(func() { held.Body.Close() })
	other := newSecondOrigin(t)
	ctx := newBrowser(t)
	runPage(t, ctx, base+"/",
		chromedp.Click(chromedp.CSS("#es-start")),
		waitJS(`document.querySelector("#es-error").textContent.trim() !== ""`),
	)
	if got := mustRun(t, ctx, textOf("#es-state")); got != "closed" {
		t.Errorf("state %q, want closed", got)
	}
	note := mustRun(t, ctx, textOf("#es-error"))
	if !strings.Contains(note, "HTTP 503: too many streams") || strings.Contains(note, "served by ssehub") {
		t.Errorf("the panel says %q, want the 503 and its reason", note)
	}

	// A page served by another web server, which answers 404, still asks.
	runPage(t, ctx, other+"/",
		chromedp.Click(chromedp.CSS("#es-start")),
		waitJS(`document.querySelector("#es-error").textContent.trim() !== ""`),
	)
	if note := mustRun(t, ctx, textOf("#es-error")); !strings.Contains(note, "HTTP 404") || !strings.Contains(note, "served by ssehub") {
		t.Errorf("on another web server the panel says %q, want its 404 and the question", note)
	}
}

// After a refusal the EventSource panel asks GET stream again, for the
// status and the reason EventSource does not give. That question is
// bounded: an error body that came whole but never ends (ssehub's JSON, a
// Content-Length that promises more) is read as far as it parses, one that
// never comes whole is given up after a few seconds; the note hung on
// both. And when the second request gets the stream that the first was
// refused (a slot freed in between), the note says so: it asked whether
// the page was served by ssehub.
func TestBrowserEventSourcePanelRefusalIsBounded(t *testing.T) {
	base, _ := startMain(t, config.Default())
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newPageProxy(target)
	refuse := func(w http.ResponseWriter, r *http.Request, body string, hold bool) {
		w.Header().Set("Content-Type", "application/json")
		if hold {
			w.Header().Set("Content-Length", "1000")
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, body)
		if hold {
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}
	}
	// page serves the demo page through ssehub, its GET stream answered by
	// stream, which is given the request's number from 1.
	page := func(stream func(w http.ResponseWriter, r *http.Request, n int32)) string {
		var n atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/stream" {
				proxy.ServeHTTP(w, r)
				return
			}
			stream(w, r, n.Add(1))
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	cases := []struct {
		name, page string
		want       func(note string) bool
	}{
		{"a whole body that never ends", page(func(w http.ResponseWriter, r *http.Request, _ int32) {
			refuse(w, r, `{"error": "busy"}`, true)
		}), func(note string) bool { return note == "HTTP 503: busy; EventSource stopped for good" }},
		{"a body that never comes whole", page(func(w http.ResponseWriter, r *http.Request, _ int32) {
			refuse(w, r, `{"error": "bu`, true)
		}), func(note string) bool { return strings.HasPrefix(note, "HTTP 503") }},
		{"a slot freed in between", page(func(w http.ResponseWriter, r *http.Request, n int32) {
			if n == 1 {
				refuse(w, r, `{"error": "too many streams: try again later"}`, false)
				return
			}
			proxy.ServeHTTP(w, r)
		}), func(note string) bool {
			return strings.Contains(note, "served it to a second request") && !strings.Contains(note, "served by ssehub")
		}},
	}
	ctx := newBrowser(t)
	for _, c := range cases {
		runPage(t, ctx, c.page+"/",
			chromedp.Click(chromedp.CSS("#es-start")),
			waitText("#es-state", "closed"),
		)
		err := chromedp.Do(ctx, waitJS(`document.querySelector("#es-error").textContent.trim() !== ""`))
		note := mustRun(t, ctx, textOf("#es-error"))
		if err != nil || !c.want(note) {
			t.Errorf("%s: the panel says %q (%v)", c.name, note, err)
		}
	}
}

// TestBrowserCrossOriginAllowed loads the page from a second origin that
// ssehub's cors.allowed_origins lists; the cross-origin panel streams.
func TestBrowserCrossOriginAllowed(t *testing.T) {
	page := newSecondOrigin(t)
	cfg := config.Default()
	cfg.CORS.AllowedOrigins = []string{page}
	service, _ := startMain(t, cfg)
	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)

	runPage(t, ctx, page+"/?service="+url.QueryEscape(service),
		waitText("#xo-origin", page),
		recordTexts("#xo-state"),
		chromedp.Click(chromedp.CSS("#xo-start")),
		waitText("#xo-log li.end", "bye"),
		waitText("#xo-state", "done"),
	)
	if got, want := mustRun(t, ctx, recordedTexts("#xo-state")), []string{"idle", "connecting", "allowed", "done"}; !slices.Equal(got, want) {
		t.Errorf("cross-origin panel states %q, want %q", got, want)
	}
	want := []string{"Streamed line 0", "Streamed line 1", "Streamed line 2", "Streamed line 3", "Streamed line 4", "bye"}
	if got := mustRun(t, ctx, textsOf("#xo-log li")); !slices.Equal(got, want) {
		t.Errorf("cross-origin panel log %q, want %q", got, want)
	}
	if got := mustRun(t, ctx, textOf("#xo-error")); got != "" {
		t.Errorf("cross-origin panel error %q, want none", got)
	}
	if hint := mustRun(t, ctx, callJS[bool](`() => document.querySelector("#xo-hint") !== null`)); hint {
		t.Error("an allowed cross-origin stream got a hint")
	}
}

// The cross-origin panel's default service on the page ssehub serves is
// the page's own origin, where the browser checks no CORS: the panel says
// so rather than let "allowed" pass for cors.allowed_origins at work.
func TestBrowserCrossOriginPanelOnItsOwnOrigin(t *testing.T) {
	base, _ := startMain(t, config.Default())
	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)
	runPage(t, ctx, base+"/?service="+url.QueryEscape(base),
		chromedp.Click(chromedp.CSS("#xo-start")),
		waitText("#xo-state", "done"),
	)
	if got := mustRun(t, ctx, textOf("#xo-hint")); !strings.Contains(got, "own origin") || !strings.Contains(got, base) {
		t.Errorf("hint %q, want one saying %s is the page's own origin", got, base)
	}
}

// TestBrowserCrossOriginReadsRetryAfter: a page of an allowed second
// origin, refused a stream at capacity (503), can read the answer's
// Retry-After, which sse-client.js waits at least before it tries again.
// With the default cors.exposed_headers the browser hid it (null): the
// client came back after its own 3 s where the server asked for 3 to 8.
func TestBrowserCrossOriginReadsRetryAfter(t *testing.T) {
	page, service := fullForASecondOrigin(t)
	ctx := newBrowser(t)
	runPage(t, ctx, page+"/")
	got := mustRun(t, ctx, callJS[string](`(u) => fetch(u).then(r => r.status + " " + r.headers.get("Retry-After"))`,
		service+"/api/v1/events?topic=demo.refused"))
	status, after, _ := strings.Cut(got, " ")
	if n, err := strconv.Atoi(after); status != "503" || err != nil || n < 1 {
		t.Errorf("the page read %q, want 503 and its Retry-After in seconds", got)
	}
}

// fullForASecondOrigin starts a second origin's page and a service that
// allows it, its one stream taken until the test ends (the next is 503),
// and returns both base URLs.
func fullForASecondOrigin(t *testing.T) (page, service string) {
	t.Helper()
	page = newSecondOrigin(t)
	cfg := config.Default()
	cfg.CORS.AllowedOrigins = []string{page}
	cfg.Stream.MaxStreams = 1
	service, _ = startMain(t, cfg)
	held, err := http.Get(service + "/api/v1/events?topic=demo.held")
	if err != nil || held.StatusCode != http.StatusOK {
		t.Fatalf("the one stream: %v %v", held, err)
	}
	t.Cleanup(func() { held.Body.Close() })
	return page, service
}

// A service that answers with an HTTP error rather than a stream, a 503
// at capacity (CORS allowed it: the page reads the status and the
// server's reason) or a 404 from a web server that is not ssehub, is an
// error in the cross-origin panel: it showed "done", as for a stream that
// ran to its end.
func TestBrowserCrossOriginHTTPError(t *testing.T) {
	page, service := fullForASecondOrigin(t)
	ctx := newBrowser(t)
	// "HTTP 503: " is followed by the server's reason.
	for _, c := range []struct{ service, want string }{
		{service, "HTTP 503: "},
		{page, "HTTP 404"},
	} {
		runPage(t, ctx, page+"/?service="+url.QueryEscape(c.service),
			chromedp.Click(chromedp.CSS("#xo-start")),
			waitJS(`!["idle", "connecting"].includes(document.querySelector("#xo-state").textContent.trim())`),
		)
		if got := mustRun(t, ctx, textOf("#xo-state")); got != "error" {
			t.Errorf("%s: state %q, want error", c.service, got)
		}
		if got := mustRun(t, ctx, textOf("#xo-error")); !strings.Contains(got, c.want) {
			t.Errorf("%s: error %q, want %q", c.service, got, c.want)
		}
	}
}

// A stream that CORS allowed and that then broke off, its connection cut
// before the end, is an error in the cross-origin panel, with the lines it
// got: it showed "done", as for a stream that ran to its end.
func TestBrowserCrossOriginDropIsAnError(t *testing.T) {
	page := newSecondOrigin(t)
	cut := make(chan struct{})
	service := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "id: 0\ndata: Streamed line 0\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-cut:
		case <-r.Context().Done():
		}
		panic(http.ErrAbortHandler) // cuts the connection, mid-stream
	}))
	t.Cleanup(service.Close)
	ctx := newBrowser(t)
	runPage(t, ctx, page+"/?service="+url.QueryEscape(service.URL),
		chromedp.Click(chromedp.CSS("#xo-start")),
		waitText("#xo-log li", "Streamed line 0"),
	)
	close(cut)
	runActions(t, ctx, waitJS(`!["idle", "connecting", "allowed"].includes(document.querySelector("#xo-state").textContent.trim())`))
	if got := mustRun(t, ctx, textOf("#xo-state")); got != "error" {
		t.Errorf("state %q, want error", got)
	}
	if got := mustRun(t, ctx, textOf("#xo-error")); got == "" {
		t.Error("no error text for the cut stream")
	}
	if got, want := mustRun(t, ctx, textsOf("#xo-log li")), []string{"Streamed line 0"}; !slices.Equal(got, want) {
		t.Errorf("log %q, want %q", got, want)
	}
}

// A stream that ends cleanly before its close event (a service shutting
// down ends its streams so), or a 204 in place of a stream, did not run to
// its end either: an error in the cross-origin panel, as a cut is. It
// showed "done".
func TestBrowserCrossOriginEndBeforeCloseIsAnError(t *testing.T) {
	page := newSecondOrigin(t)
	service := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if strings.HasPrefix(r.URL.Path, "/none/") {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "id: 0\ndata: Streamed line 0\n\n") // and the end, with no close event
	}))
	t.Cleanup(service.Close)
	ctx := newBrowser(t)
	for _, c := range []struct {
		path string
		want []string
	}{
		{"", []string{"Streamed line 0"}},
		{"/none", nil},
	} {
		runPage(t, ctx, page+"/?service="+url.QueryEscape(service.URL+c.path),
			chromedp.Click(chromedp.CSS("#xo-start")),
			waitJS(`!["idle", "connecting", "allowed"].includes(document.querySelector("#xo-state").textContent.trim())`),
		)
		if got := mustRun(t, ctx, textOf("#xo-state")); got != "error" {
			t.Errorf("%q: state %q, want error", c.path, got)
		}
		if got := mustRun(t, ctx, textOf("#xo-error")); got == "" {
			t.Errorf("%q: no error text for the stream that ended early", c.path)
		}
		if got := mustRun(t, ctx, textsOf("#xo-log li")); !slices.Equal(got, c.want) {
			t.Errorf("%q: log %q, want %q", c.path, got, c.want)
		}
	}
}

// TestBrowserCrossOriginRefused loads the page from a second origin that
// ssehub does not allow; the browser withholds the stream, and the panel
// shows the browser's own error and what to configure.
func TestBrowserCrossOriginRefused(t *testing.T) {
	page := newSecondOrigin(t)
	cfg := config.Default()
	cfg.CORS.AllowedOrigins = []string{"http://allowed.example"}
	service, _ := startMain(t, cfg)
	ctx := newBrowser(t)
	errs := watchPageErrors(t, ctx)

	runPage(t, ctx, page+"/?service="+url.QueryEscape(service),
		chromedp.Click(chromedp.CSS("#xo-start")),
		waitText("#xo-state", "refused"),
	)
	if got := mustRun(t, ctx, textOf("#xo-error")); !strings.Contains(got, "Failed to fetch") {
		t.Errorf("cross-origin panel error %q, want the browser's %q", got, "Failed to fetch")
	}
	if got := mustRun(t, ctx, textOf("#xo-hint")); !strings.Contains(got, "cors.allowed_origins") || !strings.Contains(got, page) {
		t.Errorf("hint %q does not name cors.allowed_origins and the origin %s", got, page)
	}
	if got := mustRun(t, ctx, textsOf("#xo-log li")); len(got) != 0 {
		t.Errorf("a refused page read %q", got)
	}
	// The refusal is CORS, not an unreachable service: the browser says so.
	if msgs, ok := errs.waitFor(ctx, "blocked by CORS policy"); !ok {
		t.Errorf("the browser logged no CORS refusal; it logged %q", msgs)
	}
}

// A service that does not answer at all (not running, a wrong port) is
// "unreachable", not "refused": from inside the page both are the same
// "Failed to fetch", and the panel told the user to fix
// cors.allowed_origins of a service that was not there.
func TestBrowserCrossOriginUnreachable(t *testing.T) {
	page := newSecondOrigin(t)
	service := "http://" + refusingAddr(t)
	ctx := newBrowser(t)
	errs := watchPageErrors(t, ctx)
	runPage(t, ctx, page+"/?service="+url.QueryEscape(service),
		chromedp.Click(chromedp.CSS("#xo-start")),
		waitJS(`!["idle", "connecting"].includes(document.querySelector("#xo-state").textContent.trim())`),
	)
	if got := mustRun(t, ctx, textOf("#xo-state")); got != "unreachable" {
		t.Errorf("state %q, want unreachable", got)
	}
	if got := mustRun(t, ctx, textOf("#xo-error")); !strings.Contains(got, "Failed to fetch") {
		t.Errorf("error %q, want the browser's %q", got, "Failed to fetch")
	}
	if got := mustRun(t, ctx, textOf("#xo-hint")); strings.Contains(got, "cors.allowed_origins") || !strings.Contains(got, service) {
		t.Errorf("hint %q, want one that names %s as not answering, and not CORS", got, service)
	}
	// The browser agrees: the connection was refused, nothing about CORS.
	if msgs, ok := errs.waitFor(ctx, "ERR_CONNECTION_REFUSED"); !ok || slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, "CORS") }) {
		t.Errorf("the browser logged %q, want a refused connection and no CORS error", msgs)
	}
}

// A service that takes the connection and never answers (a hung process,
// a port forwarded to nothing that answers) is an error after a few
// seconds, and the panel says so: it read "connecting" until the browser
// gave up, minutes later.
func TestBrowserCrossOriginNoAnswer(t *testing.T) {
	t.Parallel() // its own server; it waits on timers, not the CPU
	page := newSecondOrigin(t)
	service := "http://" + silentAddr(t)
	ctx := newBrowser(t)
	start := time.Now()
	runPage(t, ctx, page+"/?service="+url.QueryEscape(service),
		chromedp.Click(chromedp.CSS("#xo-start")),
		waitJS(`!["idle", "connecting"].includes(document.querySelector("#xo-state").textContent.trim())`),
	)
	if got := mustRun(t, ctx, textOf("#xo-state")); got != "error" {
		t.Errorf("state %q, want error", got)
	}
	if got := mustRun(t, ctx, textOf("#xo-error")); !strings.Contains(got, "no answer from "+service+" after 5 s") {
		t.Errorf("error %q, want that %s did not answer in 5 s", got, service)
	}
	if took := time.Since(start); took < 5*time.Second {
		t.Errorf("the panel gave up after %v, before its 5 s", took)
	}
}

// silentAddr is the address of a listener that accepts every connection
// and reads what comes, but never answers, until the test ends.
func silentAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		conns.Wait()
	})
	conns.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				defer c.Close()
				_, _ = io.Copy(io.Discard, c)
			})
		}
	})
	return ln.Addr().String()
}

// A host that answers no connect at all (powered off, cut off by the
// network: no SYN is answered) is silent too, and the page cannot tell it
// from a service that took the connection: the panel's error says either
// may be, where it said the service took the connection.
func TestBrowserCrossOriginNoAnswerToConnect(t *testing.T) {
	t.Parallel() // its own server; it waits on timers, not the CPU
	page := newSecondOrigin(t)
	service := "http://" + startUnansweringUpstream(t)
	ctx := newBrowser(t)
	runPage(t, ctx, page+"/?service="+url.QueryEscape(service),
		chromedp.Click(chromedp.CSS("#xo-start")),
		waitJS(`!["idle", "connecting"].includes(document.querySelector("#xo-state").textContent.trim())`),
	)
	if got := mustRun(t, ctx, textOf("#xo-state")); got != "error" {
		t.Errorf("state %q, want error", got)
	}
	got := mustRun(t, ctx, textOf("#xo-error"))
	if !strings.Contains(got, "no answer from "+service+" after 5 s") {
		t.Errorf("error %q, want that %s did not answer in 5 s", got, service)
	}
	if strings.Contains(got, "it took the connection") || !strings.Contains(got, "nothing answers at that address") {
		t.Errorf("error %q for a host that took no connection: want it to say that nothing may answer there", got)
	}
}

// A service URL that is not an http(s) URL (the scheme left out, or
// misspelt) is an error the cross-origin panel names, with no request:
// fetch would fail as a CORS refusal does, and the panel blamed
// cors.allowed_origins.
func TestBrowserCrossOriginNeedsAnHTTPURL(t *testing.T) {
	base, _ := startMain(t, config.Default())
	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)
	runPage(t, ctx, base+"/")
	for _, typed := range []string{"localhost:8111", "htp://localhost:8111", "http://"} {
		runActions(t, ctx,
			typeInto("#xo-url", typed),
			chromedp.Click(chromedp.CSS("#xo-start")),
			waitText("#xo-state", "error"),
		)
		if got := mustRun(t, ctx, textOf("#xo-error")); !strings.Contains(got, "http://") || !strings.Contains(got, typed) {
			t.Errorf("%q: the panel says %q, want the URL and that it needs http://", typed, got)
		}
		if hint := mustRun(t, ctx, callJS[bool](`() => document.querySelector("#xo-hint") !== null`)); hint {
			t.Errorf("%q: the panel hints at cors.allowed_origins", typed)
		}
	}
}

// On an https page, a service URL of http:// on another host is mixed
// content: the browser blocks the request before it leaves, and the
// no-cors probe too, so the panel called a running service unreachable.
// It says why instead.
func TestBrowserCrossOriginMixedContent(t *testing.T) {
	page, _ := startMain(t, tlsTestConfig(testpki.New(t)))
	service, _ := startMain(t, config.Default())
	u, err := url.Parse(service)
	if err != nil {
		t.Fatal(err)
	}
	target := "http://ssehub.test:" + u.Port()
	ctx := newBrowser(t, chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("host-resolver-rules", "MAP ssehub.test 127.0.0.1"))
	runPage(t, ctx, page+"/?service="+url.QueryEscape(target),
		chromedp.Click(chromedp.CSS("#xo-start")),
		waitJS(`!["idle", "connecting"].includes(document.querySelector("#xo-state").textContent.trim())`),
	)
	if got := mustRun(t, ctx, textOf("#xo-state")); got != "error" {
		t.Errorf("state %q, want error", got)
	}
	if got := mustRun(t, ctx, textOf("#xo-error")); !strings.Contains(got, "mixed content") || !strings.Contains(got, target) {
		t.Errorf("error %q, want one naming mixed content and %s", got, target)
	}
}

// On an https page, an http:// service on this machine is no mixed
// content to Chromium, under any of its names: the panel streams from it.
// It called localhost with the DNS root's dot, and an IPv4-mapped
// loopback address, mixed content, and sent nothing.
func TestBrowserCrossOriginLoopbackFromHTTPS(t *testing.T) {
	page, _ := startMain(t, tlsTestConfig(testpki.New(t)))
	cfg := config.Default()
	cfg.CORS.AllowedOrigins = []string{page}
	service, _ := startMain(t, cfg)
	u, err := url.Parse(service)
	if err != nil {
		t.Fatal(err)
	}
	ctx := newBrowser(t, chromedp.Flag("ignore-certificate-errors", true))
	runPage(t, ctx, page+"/")
	for _, target := range []string{"http://localhost.:" + u.Port(), "http://[::ffff:127.0.0.1]:" + u.Port()} {
		runActions(t, ctx,
			typeInto("#xo-url", target),
			chromedp.Click(chromedp.CSS("#xo-start")),
			waitJS(`!["idle", "connecting", "allowed"].includes(document.querySelector("#xo-state").textContent.trim())`),
		)
		if got := mustRun(t, ctx, textOf("#xo-state")); got != "done" {
			t.Errorf("%s: state %q, want done; error %q", target, got, mustRun(t, ctx, textOf("#xo-error")))
		}
	}
}

// TestBrowserCORSPreflight sends, from a page on a second origin, a POST
// with a JSON body and a Last-Event-ID header: neither is a simple request,
// so Chromium first sends an OPTIONS preflight, and the POST goes out only
// if ssehub's answer allows the origin, the method and both headers.
func TestBrowserCORSPreflight(t *testing.T) {
	page := newSecondOrigin(t)
	pageURL, err := url.Parse(page)
	if err != nil {
		t.Fatal(err)
	}
	// Chromium resolves every *.localhost name to the loopback address, so
	// the same server is also a one-label subdomain origin.
	subdomainPage := "http://app.localhost:" + pageURL.Port()
	ctx := newBrowser(t)

	const post = `async (service) => {
		try {
			const resp = await fetch(service + "/stream", {
				method: "POST",
				headers: { "Content-Type": "application/json", "Last-Event-ID": "x" },
				body: JSON.stringify({ text: "preflight passed", interval: "0s" }),
			});
			return { status: resp.status, body: await resp.text() };
		} catch (err) {
			return { error: String(err) };
		}
	}`
	type result struct {
		Status int
		Body   string
		Error  string
	}
	tests := []struct {
		name    string
		page    string
		allowed []string
		ok      bool
	}{
		{"exact origin allowed", page, []string{page}, true},
		{"wildcard origin allowed", subdomainPage, []string{"http://*.localhost:" + pageURL.Port()}, true},
		{"origin not allowed", page, []string{"http://allowed.example", "http://*.localhost:" + pageURL.Port()}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.CORS.AllowedOrigins = tt.allowed
			service, _ := startMain(t, cfg)
			tab := newTab(t, ctx)
			if tt.ok {
				failOnPageErrors(t, tab)
			}
			requests := watchRequests(t, tab)
			runPage(t, tab, tt.page+"/")
			got := mustRun(t, tab, callJS[result](post, service))
			var preflight, posts []request
			for _, r := range requests.to(tab, "/stream") {
				switch r.Method {
				case http.MethodOptions:
					preflight = append(preflight, r)
				case http.MethodPost:
					posts = append(posts, r)
				}
			}
			if len(preflight) != 1 || len(posts) != 1 {
				t.Fatalf("%d preflights and %d POSTs, want one each: %+v %+v", len(preflight), len(posts), preflight, posts)
			}
			if got := preflight[0].Headers["Access-Control-Request-Headers"]; !strings.Contains(got, "last-event-id") || !strings.Contains(got, "content-type") {
				t.Errorf("preflight asked for headers %q, want content-type and last-event-id", got)
			}

			if !tt.ok {
				if !strings.Contains(got.Error, "Failed to fetch") {
					t.Errorf("POST from a refused origin: %+v, want the browser's Failed to fetch", got)
				}
				if preflight[0].Status != http.StatusForbidden {
					t.Errorf("preflight answered %d, want 403", preflight[0].Status)
				}
				if posts[0].Status != 0 || !strings.Contains(posts[0].Failed, "CORS") {
					t.Errorf("the POST got status %d, failure %q: want it never sent, failed by CORS", posts[0].Status, posts[0].Failed)
				}
				return
			}
			if got.Error != "" || got.Status != http.StatusOK {
				t.Fatalf("POST from an allowed origin: %+v", got)
			}
			if want := `data: {"index":0,"token":"preflight"}`; !strings.Contains(got.Body, want) || !strings.HasSuffix(got.Body, "data: [DONE]\n\n") {
				t.Errorf("stream %q lacks %s or does not end with [DONE]", got.Body, want)
			}
			if preflight[0].Status < 200 || preflight[0].Status > 299 {
				t.Errorf("preflight answered %d, want a 2xx", preflight[0].Status)
			}
		})
	}
}

// TestBrowserHarnessReportsPageErrors proves that failOnPageErrors would
// catch what it is there for: an uncaught exception, a console.error and a
// failed load each show up in pageErrors.
func TestBrowserHarnessReportsPageErrors(t *testing.T) {
	base, _ := startMain(t, config.Default())
	ctx := newBrowser(t)
	errs := watchPageErrors(t, ctx)
	runPage(t, ctx, base+"/",
		callJS[chromedp.Void](`() => {
			console.error("console error from the test");
			setTimeout(() => { throw new Error("uncaught from the test"); });
			const img = document.createElement("img");
			img.src = "no-such-file.png";
			document.body.append(img);
		}`),
		waitJS(`document.querySelector("img").complete`),
	)
	for _, want := range []string{"console error from the test", "uncaught from the test", "404 (Not Found)"} {
		if msgs, ok := errs.waitFor(ctx, want); !ok {
			t.Errorf("page errors %q lack %q", msgs, want)
		}
	}
}
