package main

import (
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestBrowserNginxDemoPageRunsUnderItsPolicy: the demo page from
// docker-compose.yml's second origin, nginx with deploy/nginx-demo.conf,
// comes with ssehub's Content-Security-Policy, and runs under it: Vue
// mounts the page from nginx's scripts (text/javascript, under
// nosniff), the Cross-origin panel streams from ssehub, and the Hub panel
// subscribes to ssehub's hub and publishes to it, with no error and no
// violation of the policy. An inline script added to the page then is
// refused: the policy is in force.
func TestBrowserNginxDemoPageRunsUnderItsPolicy(t *testing.T) {
	n := runDemoNginx(t)
	cfg := hubTestConfig()
	cfg.Demo.TickerCount = 2
	cfg.Demo.TickerInterval = 10 * time.Millisecond
	cfg.CORS.AllowedOrigins = []string{n.url}
	base, _ := startMain(t, cfg)
	ctx := newBrowser(t)
	errs := watchPageErrors(t, ctx)
	var (
		mu     sync.Mutex
		policy []string // the Content-Security-Policy of each page loaded
	)
	err := chromedp.Listen(ctx, func(ev any) {
		if ev, ok := ev.(*network.EventResponseReceived); ok && ev.Type == network.ResourceTypeDocument {
			for k, v := range ev.Response.Headers {
				if strings.EqualFold(k, "Content-Security-Policy") {
					mu.Lock()
					policy = append(policy, fmt.Sprint(v))
					mu.Unlock()
				}
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	q := url.Values{"service": {base}, "hub": {base}}
	runPage(t, ctx, n.url+"/?"+q.Encode(),
		chromedp.Click(chromedp.CSS("#xo-start")),
		waitText("#xo-state", "done"),
		typeInto("#hub-token", hubTestToken),
		chromedp.Click(chromedp.CSS("#hub-connect")),
		waitText("#hub-state", "open"),
	)
	if got := publishFromPage(t, ctx, 1, `"under nginx's policy"`); !strings.HasPrefix(got, "published id ") {
		t.Fatalf("publish from the page: %q", got)
	}
	runActions(t, ctx, waitHubEvents(1))
	for _, msg := range errs.list(ctx) {
		t.Errorf("page error: %s", msg)
	}
	mu.Lock()
	got := policy
	mu.Unlock()
	if want := getDemo(t, base, "/").header.Get("Content-Security-Policy"); len(got) != 1 || got[0] != want {
		t.Errorf("the page from nginx came with Content-Security-Policy %q, want ssehub's %q", got, want)
	}

	// The policy is in force: an inline script is refused.
	ran := mustRun(t, ctx, callJS[bool](`() => {
		window.__violations = [];
		document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(e.effectiveDirective));
		const s = document.createElement("script");
		s.textContent = "window.__inlineRan = true";
		document.head.append(s);
		return window.__inlineRan === true;
	}`))
	if ran {
		t.Fatal("an inline script ran on the page from nginx: no policy in force")
	}
	runActions(t, ctx, waitJS(`window.__violations.length > 0`))
	if got := mustRun(t, ctx, callJS[[]string](`() => window.__violations`)); len(got) != 1 || got[0] != "script-src-elem" {
		t.Errorf("violations %q, want script-src-elem", got)
	}
}
