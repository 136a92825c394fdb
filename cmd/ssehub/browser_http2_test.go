package main

// Browser tests of why server.tls matters: over HTTP/1.1 a browser opens
// at most 6 connections to one origin, so a seventh EventSource waits,
// with no error, until one closes; over HTTP/2 every stream shares one
// connection.

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/testpki"
)

// eventSources is how many EventSources the page opens: more than the 6
// connections an HTTP/1.1 origin gets.
const eventSources = 10

// openEventSources opens n EventSources on ticker streams that stay open
// for the whole test, each counting the events it receives.
func openEventSources(n int) chromedp.Action[chromedp.Void] {
	return callJS[chromedp.Void](`(n) => {
		window.__streams = [];
		for (let i = 0; i < n; i++) {
			const s = { events: 0 };
			// A different count per stream, so no two requests are alike.
			s.es = new EventSource("/stream?interval=50ms&count=" + (1000 + i));
			s.es.onmessage = () => { s.events++; };
			window.__streams.push(s);
		}
	}`, n)
}

// streamCounts returns how many events each EventSource has received.
func streamCounts() chromedp.Action[[]int] {
	return callJS[[]int](`() => window.__streams.map((s) => s.events)`)
}

// pageProtocol returns the protocol the page itself was loaded over, as the
// browser names it: "h2" or "http/1.1".
func pageProtocol() chromedp.Action[string] {
	return callJS[string](`() => performance.getEntriesByType("navigation")[0].nextHopProtocol`)
}

// TestBrowserEventSourcesOverHTTP2: on a page served over TLS, and so over
// HTTP/2, all 10 EventSources to the one origin receive events.
func TestBrowserEventSourcesOverHTTP2(t *testing.T) {
	base, _ := startMain(t, tlsTestConfig(testpki.New(t)))
	ctx := newBrowser(t, chromedp.Flag("ignore-certificate-errors", true))
	runPage(t, ctx, base+"/", openEventSources(eventSources),
		waitJS(fmt.Sprintf(`window.__streams.every((s) => s.events > 0) && window.__streams.length === %d`, eventSources)))
	if proto := mustRun(t, ctx, pageProtocol()); proto != "h2" {
		t.Errorf("the page came over %q, want h2", proto)
	}
	t.Logf("events per stream: %v", mustRun(t, ctx, streamCounts()))
}

// TestBrowserEventSourcesOverHTTP1: the same page over plain HTTP/1.1 gets
// 6 streams; the other 4 receive nothing while the 6 stream on, the limit
// server.tls lifts. The wait is bounded by events, not by a sleep: it lasts
// until each of the 6 has received 40 more (2s at 50ms).
func TestBrowserEventSourcesOverHTTP1(t *testing.T) {
	const limit = 6 // Chromium's connections per origin over HTTP/1.1
	base, _ := startMain(t, config.Default())
	ctx := newBrowser(t)
	runPage(t, ctx, base+"/", openEventSources(eventSources),
		waitJS(fmt.Sprintf(`window.__streams.filter((s) => s.events > 0).length === %d`, limit)))
	if proto := mustRun(t, ctx, pageProtocol()); proto != "http/1.1" {
		t.Errorf("the page came over %q, want http/1.1", proto)
	}
	runActions(t, ctx,
		callJS[chromedp.Void](`() => { window.__first = window.__streams.map((s) => s.events); }`),
		waitJS(`window.__streams.every((s, i) => window.__first[i] === 0 || s.events >= window.__first[i] + 40)`))
	counts := mustRun(t, ctx, streamCounts())
	open, waiting := 0, 0
	for _, c := range counts {
		switch {
		case c > 0:
			open++
		default:
			waiting++
		}
	}
	if open != limit || waiting != eventSources-limit {
		t.Errorf("events per stream %v: want %d streams receiving and %d with nothing", counts, limit, eventSources-limit)
	}
	states := mustRun(t, ctx, callJS[[]int](`() => window.__streams.map((s) => s.es.readyState)`))
	for i, c := range counts {
		if c == 0 && states[i] != 0 {
			t.Errorf("stream %d received nothing but its readyState is %d, want 0 (connecting, no error)", i, states[i])
		}
	}
}

// TestBrowserClosedEventSourcesFreeTheirStreamsOverHTTP2: Chromium closes
// an EventSource on an HTTP/2 connection by resetting its stream
// (RST_STREAM), the connection staying open; the server ends each such
// stream and drops its subscription.
func TestBrowserClosedEventSourcesFreeTheirStreamsOverHTTP2(t *testing.T) {
	pki := testpki.New(t)
	base, _ := startMain(t, tlsTestConfig(pki))
	client := testClient(t, pki.Roots, (*http.Protocols).SetHTTP2)
	ctx := newBrowser(t, chromedp.Flag("ignore-certificate-errors", true))
	runPage(t, ctx, base+"/",
		callJS[chromedp.Void](`(n) => {
			window.__sources = [];
			for (let i = 0; i < n; i++) {
				const es = new EventSource("/api/v1/events?topic=t" + i);
				es.__positions = 0;
				es.addEventListener("position", () => { es.__positions++; });
				window.__sources.push(es);
			}
		}`, eventSources),
		waitJS(`window.__sources.every((es) => es.__positions > 0)`))
	if proto := mustRun(t, ctx, pageProtocol()); proto != "h2" {
		t.Fatalf("the page came over %q, want h2", proto)
	}
	waitStreams(t, client, base, eventSources)
	runActions(t, ctx, callJS[chromedp.Void](`() => window.__sources.forEach((es) => es.close())`))
	waitStreams(t, client, base, 0)
}
