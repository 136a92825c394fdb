package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/ssehub/ssehub/config"
)

// The fetch panel shows each token once, whatever happens to its
// connection. It was suspected of showing tokens twice after a reconnect:
// it does not, and this keeps it so.
//
//   - A token stream cut after two tokens and half of a third (a proxy or
//     network that drops it) is not reconnected: POST stream has no ids to
//     resume from, and asked again it would start over at the first word.
//     The panel says the error and keeps the two tokens; the half token is
//     not shown.
//   - Start after the drop (the reader's reconnect) starts over: the output
//     is the text once, not the two tokens and then the whole text.
//   - Start while a stream runs drops that stream's tokens, those it has
//     not shown yet included: the output is the text once.
//
// Every text the output shows on the way is recorded: each is the start of
// the text, word by word, never a word twice.
func TestBrowserFetchPanelShowsEachTokenOnceAcrossReconnects(t *testing.T) {
	base, _ := startMain(t, config.Default())
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	words := []string{"alpha", "beta", "gamma", "delta", "epsilon", "zeta"}
	text := strings.Join(words, " ")
	proxy := newPageProxy(target)
	var posts atomic.Int32     // POST stream requests, the cut one included
	cut := make(chan struct{}) // closed once the page shows the first two tokens
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/stream" {
			proxy.ServeHTTP(w, r)
			return
		}
		if posts.Add(1) > 1 {
			proxy.ServeHTTP(w, r)
			return
		}
		// The first is cut after two tokens and half of the third.
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		for i, word := range words[:2] {
			fmt.Fprintf(w, "data: {\"index\":%d,\"token\":%q}\n\n", i, word)
		}
		fmt.Fprintf(w, "data: {\"index\":2,\"token\":%q}\n", words[2]) // no blank line: not dispatched
		w.(http.Flusher).Flush()
		// Cut with the tokens unread, and Chromium errors the body's
		// stream before the page reads them: they are lost with it.
		select {
		case <-cut:
		case <-r.Context().Done():
			return
		}
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		conn.Close()
	}))
	t.Cleanup(page.Close)
	release := sync.OnceFunc(func() { close(cut) })
	t.Cleanup(release) // before page.Close: a test that fails early

	ctx := newBrowser(t) // the cut is a network error in the console: no failOnPageErrors
	runPage(t, ctx, page.URL+"/",
		recordTexts("#fetch-output"),
		typeInto("#fetch-text", text),
		typeInto("#fetch-interval", "0s"),
		chromedp.Click(chromedp.CSS("#fetch-start")),
		waitText("#fetch-output", "alpha beta"),
	)
	release()
	runActions(t, ctx, waitJS(`document.querySelector("#fetch-state").textContent.trim() !== "streaming"`))
	// fetchEventSource settles (and the panel says the error) only when it
	// does not reconnect: with reconnect on, a drop is waited out and asked
	// again, from the first word.
	state := mustRun(t, ctx, textOf("#fetch-state"))
	if got, want := mustRun(t, ctx, textOf("#fetch-output")), "alpha beta"; got != want || !strings.HasPrefix(state, "error") {
		t.Errorf("after the cut the panel shows %q and says %q, want %q and the error", got, state, want)
	}
	if got := posts.Load(); got != 1 {
		t.Errorf("%d POST stream after the cut, want 1: the panel asked again by itself", got)
	}

	// The reader's reconnect: Start again.
	runActions(t, ctx,
		chromedp.Click(chromedp.CSS("#fetch-start")),
		waitText("#fetch-state", "done"),
	)
	if got := mustRun(t, ctx, textOf("#fetch-output")); got != text {
		t.Errorf("output after Start again %q, want the text once: %q", got, text)
	}

	// Start while a stream runs, its tokens far apart; the second runs at
	// once. The first's tokens still on their way are dropped.
	runActions(t, ctx,
		typeInto("#fetch-interval", "1s"),
		chromedp.Click(chromedp.CSS("#fetch-start")),
		waitText("#fetch-output", "alpha"),
		typeInto("#fetch-interval", "0s"),
		chromedp.Click(chromedp.CSS("#fetch-start")),
		waitText("#fetch-state", "done"),
	)
	if got := mustRun(t, ctx, textOf("#fetch-output")); got != text {
		t.Errorf("output after Start mid-stream %q, want the text once: %q", got, text)
	}
	if got, want := mustRun(t, ctx, textOf("#fetch-start ~ .meta")), fmt.Sprintf("tokens: %d", len(words)); got != want {
		t.Errorf("the panel counts %q, want %q", got, want)
	}
	if got := posts.Load(); got != 4 {
		t.Errorf("%d POST stream, want 4: one per Start", got)
	}

	for _, shown := range mustRun(t, ctx, recordedTexts("#fetch-output")) {
		if shown != "" && !strings.HasPrefix(text+" ", shown+" ") {
			t.Errorf("the output showed %q, which is not the start of %q: a token shown twice or out of place", shown, text)
		}
	}
}
