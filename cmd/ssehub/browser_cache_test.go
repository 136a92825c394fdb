package main

// The demo page's files in a browser: each has a validator (a strong
// ETag) and Cache-Control: no-cache, so a page loaded again asks for
// every file again, and each, unchanged, is a 304 without its body.

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/ssehub/ssehub/config"
)

// TestBrowserRevalidatesTheDemoFiles loads the demo page twice in one
// browser: on the second load the browser asks again for the page and each
// of its files, Vue's build included, and gets each as a 304: what came
// over the network (its transferSize) is some headers, more than nothing
// (no request: a file cached without asking) and less than the first
// load's, which had the file. The files are embedded, without a
// modification time, so without a validator the browser fetched every one
// whole on every load.
func TestBrowserRevalidatesTheDemoFiles(t *testing.T) {
	base, _ := startMain(t, config.Default())
	ctx := newBrowser(t)
	failOnPageErrors(t, ctx)
	runPage(t, ctx, base+"/")
	first := transferSizes(t, ctx)
	runPage(t, ctx, base+"/")
	again := transferSizes(t, ctx)
	for _, path := range []string{"/", "/app.js", "/style.css", "/vendor/vue.global.prod.js"} {
		if n, was := again[path], first[path]; n == 0 || n >= was || was < 1000 {
			t.Errorf("%s: %d bytes over the network on the second load, %d on the first; want a 304 (headers only) after the file", path, n, was)
		}
	}
}

// transferSizes returns the bytes that came over the network for the page
// loaded in the tab of ctx and each of its files, by path
// (PerformanceResourceTiming's transferSize: 0 for a file taken from the
// cache without asking).
func transferSizes(t *testing.T, ctx context.Context) map[string]int {
	t.Helper()
	return mustRun(t, ctx, chromedp.Evaluate[map[string]int](`Object.fromEntries(
		[...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource")]
			.map(e => [new URL(e.name).pathname, e.transferSize]))`))
}
