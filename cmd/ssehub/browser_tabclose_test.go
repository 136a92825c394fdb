package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/testpki"
)

// openTabStreams opens, in a page, the streams a tab may hold: hub
// subscriptions with EventSource, a ticker with EventSource, and a hub
// subscription read with fetch and a stream reader. Each counts what it
// receives; window.__ready() is true once each has received something.
// Each then stays silent for seconds (the ticker's next line is 30s away;
// tabConfig's heartbeats a minute): a stream freed before then was freed
// because its client went, not because a write to it failed.
var openTabStreams = callJS[chromedp.Void](`() => {
	const got = [];
	for (const topic of ["tab.a", "tab.b", "tab.c"]) {
		const i = got.push(0) - 1;
		const es = new EventSource("/api/v1/events?topic=" + topic);
		es.addEventListener("position", () => { got[i]++; });
	}
	const t = got.push(0) - 1;
	new EventSource("/stream?interval=30s&count=10").onmessage = () => { got[t]++; };
	const f = got.push(0) - 1;
	fetch("/api/v1/events?topic=tab.d").then(async (res) => {
		const reader = res.body.getReader();
		for (;;) {
			const { done } = await reader.read();
			if (done) return;
			got[f]++;
		}
	});
	window.__ready = () => got.every((n) => n > 0);
}`)

// tabStreams and tabSubscribers are the streams and hub subscriptions
// openTabStreams opens.
const (
	tabStreams     = 5
	tabSubscribers = 4
)

// tabConfig is hubTestConfig with heartbeats a minute apart.
func tabConfig() config.Config {
	cfg := hubTestConfig()
	cfg.Stream.HeartbeatInterval = time.Minute
	return cfg
}

// waitStreamsAndSubscribers waits, 10s at most, until base has streams
// open and subscribers in its hub.
func waitStreamsAndSubscribers(t *testing.T, client *http.Client, base string, streams, subscribers float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		gotStreams := metricWith(t, client, base, "ssehub_streams_active")
		gotSubscribers := metricWith(t, client, base, "ssehub_subscribers")
		if gotStreams == streams && gotSubscribers == subscribers {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v streams, %v subscribers; want %v and %v", gotStreams, gotSubscribers, streams, subscribers)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBrowserClosingATabFreesItsStreams: a tab holds hub subscriptions and
// a ticker, with EventSource and with fetch, and is closed, the browser
// staying open, as a user closes a tab. The server ends every stream and
// drops every subscription, with either broker, over HTTP/1.1 (the browser
// closes each stream's connection) and over HTTP/2 (it resets each stream
// on the one connection it keeps).
func TestBrowserClosingATabFreesItsStreams(t *testing.T) {
	for _, broker := range []string{"memory", "nats"} {
		for _, proto := range []string{"http/1.1", "h2"} {
			t.Run(fmt.Sprintf("%s %s", broker, proto), func(t *testing.T) {
				closingATabFreesItsStreams(t, broker, proto)
			})
		}
	}
}

func closingATabFreesItsStreams(t *testing.T, broker, proto string) {
	cfg := tabConfig()
	client := http.DefaultClient
	var opts []chromedp.ExecAllocatorOption
	if proto == "h2" {
		pki := testpki.New(t)
		cfg.Server.TLS = config.TLSConfig{CertFile: pki.CertFile, KeyFile: pki.KeyFile}
		client = testClient(t, pki.Roots)
		opts = append(opts, chromedp.Flag("ignore-certificate-errors", true))
	}
	if broker == "nats" {
		cfg.Hub.Broker = "nats"
		cfg.NATS.URL = []string{startNATSServer(t).ClientURL()}
	}
	base, _ := startMain(t, cfg)
	browser := newBrowser(t, opts...)

	tab, closeTab := chromedp.NewContext(browser)
	t.Cleanup(closeTab)
	runPage(t, tab, base+"/", openTabStreams, waitJS(`window.__ready()`))
	if got := mustRun(t, tab, pageProtocol()); got != proto {
		t.Fatalf("the page came over %q, want %s", got, proto)
	}
	waitStreamsAndSubscribers(t, client, base, tabStreams, tabSubscribers)

	closeTab()
	waitStreamsAndSubscribers(t, client, base, 0, 0)
}

// TestBrowserClosingATabBehindNginxFreesItsStreams: the same tab, served
// and streaming through the README's nginx recipe, over HTTP/1.1 and over
// HTTP/2 with the README's lines for it. nginx ends its requests to
// ssehub as the browser goes, and ssehub ends every stream and drops
// every subscription: a proxy in between holds none of them open.
func TestBrowserClosingATabBehindNginxFreesItsStreams(t *testing.T) {
	for _, proto := range []string{"http/1.1", "h2"} {
		t.Run(proto, func(t *testing.T) {
			requireNginx(t)
			pki := testpki.New(t)
			// runNginx scales nginx's proxy_read_timeout to a heartbeat
			// of 1s: nginx would give up on these silent streams after it
			// (4s), and end them within the wait below even if it kept
			// them open past the tab's close (proxy_ignore_client_abort
			// on). Scaled to their heartbeat (a minute), only the close
			// can end them in time.
			recipe := readmeNginxRecipe(t)
			edits := []nginxEdit{{
				nginxReadTimeoutScaled(t, recipe).new,
				nginxReadTimeoutFor(t, recipe, tabConfig().Stream.HeartbeatInterval).new,
			}}
			if proto == "h2" {
				edits = append(edits, nginxEdit{"    large_client_header_buffers", readmeNginxTLSLines(t, "NGINX_TLS_PORT", pki) + "    large_client_header_buffers"})
			}
			p := startBehindNginxEdited(t, tabConfig(), edits)
			page := p.url
			var opts []chromedp.ExecAllocatorOption
			if proto == "h2" {
				page = "https://" + p.tlsAddr
				opts = append(opts, chromedp.Flag("ignore-certificate-errors", true))
			}
			browser := newBrowser(t, opts...)

			tab, closeTab := chromedp.NewContext(browser)
			t.Cleanup(closeTab)
			runPage(t, tab, page+"/", openTabStreams, waitJS(`window.__ready()`))
			if got := mustRun(t, tab, pageProtocol()); got != proto {
				t.Fatalf("the page came over %q, want %s", got, proto)
			}
			waitStreamsAndSubscribers(t, http.DefaultClient, p.upstream, tabStreams, tabSubscribers)

			closeTab()
			waitStreamsAndSubscribers(t, http.DefaultClient, p.upstream, 0, 0)
		})
	}
}
