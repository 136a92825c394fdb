package main

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// A publish from the Hub panel to a hub on another origin that refuses
// the page's origin (CORS: its preflight is a 403, and the publish is never
// sent), or to an address where nothing answers, said "error: Failed to
// fetch" either way: the browser's whole word, which names neither cause.
// The panel asks the hub once more without CORS, as the Cross-origin panel
// does, and says which it is: a refusal names cors.allowed_origins and the
// page's origin, silence names the hub.
func TestBrowserHubPublishSaysWhyItFailed(t *testing.T) {
	page := newSecondOrigin(t)
	cfg := hubTestConfig()
	cfg.CORS.AllowedOrigins = []string{"http://allowed.example"}
	refusing, _ := startMain(t, cfg)
	nothing := "http://" + refusingAddr(t)
	ctx := newBrowser(t)
	for _, tt := range []struct {
		hub  string
		want []string
	}{
		{refusing, []string{"Failed to fetch", "cors.allowed_origins", page}},
		{nothing, []string{"Failed to fetch", "nothing answers at " + nothing}},
	} {
		runPage(t, ctx, page+"/?hub="+url.QueryEscape(tt.hub), typeInto("#hub-token", hubTestToken))
		got := publishFromPage(t, ctx, 1, `{"n": 1}`)
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("publish to %s: the panel says %q, want %q in it", tt.hub, got, w)
			}
		}
	}
}

// A subscription from the Hub panel to a hub on another origin that
// refuses the page's origin: the panel, retrying, said only the browser's
// "Failed to fetch". It says that the hub refused the page's origin, and
// what to list in cors.allowed_origins.
func TestBrowserHubSubscriptionSaysTheHubRefusedThePage(t *testing.T) {
	page := newSecondOrigin(t)
	cfg := hubTestConfig()
	cfg.Stream.Retry = 10 * time.Second // the failure stays shown while the panel waits
	cfg.CORS.AllowedOrigins = []string{"http://allowed.example"}
	hub, _ := startMain(t, cfg)
	ctx := newBrowser(t)
	runPage(t, ctx, page+"/?hub="+url.QueryEscape(hub),
		chromedp.Click(chromedp.CSS("#hub-connect")),
	)
	err := chromedp.Do(ctx, waitJS(`(document.querySelector("#hub-failure")?.textContent ?? "").includes("cors.allowed_origins")`))
	got := mustRun(t, ctx, callJS[string](`() => document.querySelector("#hub-failure")?.textContent ?? ""`))
	if err != nil || !strings.Contains(got, "Failed to fetch") || !strings.Contains(got, page) {
		t.Errorf("the panel says %q (%v), want the browser's Failed to fetch, that the hub refused the page, and its origin", got, err)
	}
}
