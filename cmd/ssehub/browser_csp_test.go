package main

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/ssehub/ssehub/config"
)

// TestBrowserPageOfAnotherSiteCannotFrameTheDemo: a page on another
// origin frames the demo page that ssehub serves. The page holds the hub's
// tokens and a Publish button, which a framing page could make its
// visitor click (clickjacking): Chromium loaded and ran it in the frame.
// Its Content-Security-Policy (frame-ancestors 'none') has Chromium refuse
// it: the frame loads nothing of it, not app.js.
func TestBrowserPageOfAnotherSiteCannotFrameTheDemo(t *testing.T) {
	base, _ := startMain(t, config.Default())
	framing := newSecondOrigin(t)
	ctx := newBrowser(t)
	errs := watchPageErrors(t, ctx)
	requests := watchRequests(t, ctx)
	runActions(t, ctx,
		chromedp.Navigate(framing+"/vendor/VERSION-vue"),
		callJS[chromedp.Void](`(url) => {
			window.__framed = false;
			const f = document.createElement("iframe");
			f.onload = () => { window.__framed = true; };
			f.src = url;
			document.body.append(f);
		}`, base+"/"),
		waitJS(`window.__framed`),
	)
	for _, r := range requests.to(ctx, "/app.js") {
		if strings.HasPrefix(r.URL, base+"/") {
			t.Errorf("the frame of another origin loaded %s: want the page refused", r.URL)
		}
	}
	if msgs, ok := errs.waitFor(ctx, "frame-ancestors"); !ok {
		t.Errorf("Chromium reported %q, want the frame refused for frame-ancestors", msgs)
	}
}

// TestBrowserDemoPageRunsUnderItsPolicy: the demo page, served by ssehub
// with its Content-Security-Policy, runs its four panels with no error:
// Vue compiles its templates, and the panels stream, publish and read
// another origin, which the policy allows.
func TestBrowserDemoPageRunsUnderItsPolicy(t *testing.T) {
	cfg := hubTestConfig()
	cfg.Demo.TickerCount = 2
	cfg.Demo.TickerInterval = 10 * time.Millisecond
	base, _ := startMain(t, cfg)
	cfg.CORS.AllowedOrigins = []string{base}
	other, _ := startMain(t, cfg)
	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)
	runPage(t, ctx, base+"/?service="+other,
		chromedp.Click(chromedp.CSS("#es-start")),
		waitText("#es-log li.end", "bye"),
		typeInto("#fetch-interval", "0s"),
		chromedp.Click(chromedp.CSS("#fetch-start")),
		waitText("#fetch-state", "done"),
		chromedp.Click(chromedp.CSS("#xo-start")),
		waitText("#xo-state", "done"),
		typeInto("#hub-token", hubTestToken),
		chromedp.Click(chromedp.CSS("#hub-connect")),
		waitText("#hub-state", "open"),
	)
	if got := publishFromPage(t, ctx, 1, `"under the policy"`); !strings.HasPrefix(got, "published id ") {
		t.Fatalf("publish from the page: %q", got)
	}
	runActions(t, ctx, waitHubEvents(1))
}
