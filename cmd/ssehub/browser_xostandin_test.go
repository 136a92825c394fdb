package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// The Cross-origin panel pointed at the README's nginx recipe while ssehub
// is out of reach: nginx answers GET stream with its stand-in, a 200
// event stream (with CORS headers) of the comment "ssehub is unreachable"
// and retry:, which ends at once. The panel said "allowed", then the
// error "the stream ended before its close event", as for a stream cut
// short; it says the service is unreachable behind its proxy.
func TestBrowserCrossOriginPanelShowsAProxysStandIn(t *testing.T) {
	page := newSecondOrigin(t)
	standIn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
		w.Header().Set("Vary", "Origin")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, ": ssehub is unreachable\nretry: 5000\n\n")
	}))
	t.Cleanup(standIn.Close)
	ctx := newBrowser(t)
	runPage(t, ctx, page+"/?service="+url.QueryEscape(standIn.URL),
		recordTexts("#xo-state"),
		chromedp.Click(chromedp.CSS("#xo-start")),
		waitJS(`!["idle", "connecting", "allowed"].includes(document.querySelector("#xo-state").textContent.trim())`),
	)
	if got := mustRun(t, ctx, textOf("#xo-state")); got != "unreachable" {
		t.Errorf("state %q (states %q, error %q), want unreachable", got, mustRun(t, ctx, recordedTexts("#xo-state")), mustRun(t, ctx, textOf("#xo-error")))
	}
	hint := mustRun(t, ctx, textOf("#xo-hint"))
	if !strings.Contains(hint, standIn.URL) || !strings.Contains(hint, "cannot reach ssehub") {
		t.Errorf("hint %q, want one that names %s as a proxy that cannot reach ssehub", hint, standIn.URL)
	}
}
