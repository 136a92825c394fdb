package main

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// cookieProbes are the ways a page of another origin can make Chromium
// send the token cookie to ssehub and see how the answer went without
// reading it: each loads url and calls done once with what the page saw
// (an element's load or error event, an opaque body read to its end, a
// fetch or an EventSource refused by CORS). A stream never ends, so a
// probe of a granted topic, answered with one, would not call done, or
// call it otherwise than a refused topic's.
var cookieProbes = map[string]string{
	"img":      `(u, done) => { const e = document.createElement("img"); e.onload = () => done("load"); e.onerror = () => done("error"); e.src = u; document.body.append(e); }`,
	"script":   `(u, done) => { const e = document.createElement("script"); e.onload = () => done("load"); e.onerror = () => done("error"); e.src = u; document.body.append(e); }`,
	"style":    `(u, done) => { const e = document.createElement("link"); e.rel = "stylesheet"; e.onload = () => done("load"); e.onerror = () => done("error"); e.href = u; document.head.append(e); }`,
	"prefetch": `(u, done) => { const e = document.createElement("link"); e.rel = "prefetch"; e.onload = () => done("load"); e.onerror = () => done("error"); e.href = u; document.head.append(e); }`,
	"object":   `(u, done) => { const e = document.createElement("object"); e.onload = () => done("load"); e.onerror = () => done("error"); e.data = u; document.body.append(e); }`,
	"embed":    `(u, done) => { const e = document.createElement("embed"); e.onload = () => done("load"); e.onerror = () => done("error"); e.src = u; document.body.append(e); }`,
	"iframe":   `(u, done) => { const e = document.createElement("iframe"); e.onload = () => done("load"); e.src = u; document.body.append(e); }`,
	"video":    `(u, done) => { const e = document.createElement("video"); e.onloadedmetadata = () => done("metadata"); e.onerror = () => done("error"); e.src = u; document.body.append(e); }`,
	"no-cors fetch": `(u, done) => { fetch(u, { mode: "no-cors", credentials: "include" }).then((r) => r.blob())
		.then(() => done("body"), () => done("error")); }`,
	"preload as fetch": `(u, done) => { const e = document.createElement("link"); e.rel = "preload"; e.as = "fetch"; e.crossOrigin = "use-credentials";
		e.onload = () => done("load"); e.onerror = () => done("error"); e.href = u; document.head.append(e); }`,
	"fetch":       `(u, done) => { fetch(u, { credentials: "include" }).then(() => done("answer"), () => done("error")); }`,
	"EventSource": `(u, done) => { const es = new EventSource(u, { withCredentials: true }); es.onopen = () => done("open"); es.onerror = () => { es.close(); done("error"); }; }`,
}

// TestBrowserNoProbeOfAnotherOriginLearnsFromTheCookie: a page on another
// origin of the same site, whose visitor holds a JWT in the token cookie,
// loads a topic the token grants and one it does not in every way it can
// without CORS's consent: elements of each kind, a prefetch, a no-cors
// fetch read to its end, and a credentialed fetch, preload and EventSource
// that CORS refuses (ssehub allows no origin here). Chromium sends the
// cookie with each. Every probe must end the same for both topics: an
// <object>, <embed> or <iframe> of the granted one, answered with a
// stream, never fired load, and its prefetch fired load where the other's
// fired error, until the cookie was no longer read for a request another
// origin makes outside CORS (Sec-Fetch-Mode and -Dest); a request in CORS
// mode reads it, and its answer is withheld from the page at its headers,
// a stream's as a refusal's.
func TestBrowserNoProbeOfAnotherOriginLearnsFromTheCookie(t *testing.T) {
	page := newSecondOrigin(t)
	cfg := hubTestConfig()
	cfg.Auth.JWT = tokenConfig(t).Auth.JWT
	base, _ := startMain(t, cfg)
	jwt := mintToken(t, "--subscribe", "orders.>", "--ttl", "10m")
	ctx := newBrowser(t)
	topics := []string{"orders.eu", "payments.x"} // granted, not granted
	runPage(t, ctx, page+"/", callJS[chromedp.Void](`() => { window.__probes = {}; }`))
	setPageCookie(t, ctx, "ssehub_token="+jwt+"; path=/", base+"/")
	for _, name := range slices.Sorted(maps.Keys(cookieProbes)) {
		runActions(t, ctx, callJS[chromedp.Void](`(name, base, topics) => {
			const probe = `+cookieProbes[name]+`;
			for (const topic of topics) {
				const url = base + "/api/v1/events?topic=" + topic + "&probe=" + encodeURIComponent(name);
				probe(url, (how) => { window.__probes[name + " " + topic] ??= how; });
			}
		}`, name, base, topics))
	}
	var seen map[string]string
	for deadline := time.Now().Add(pollTimeout); ; {
		seen = mustRun(t, ctx, callJS[map[string]string](`() => window.__probes`))
		if len(seen) == len(cookieProbes)*len(topics) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, name := range slices.Sorted(maps.Keys(cookieProbes)) {
		granted, ok1 := seen[name+" "+topics[0]]
		refused, ok2 := seen[name+" "+topics[1]]
		if !ok1 || !ok2 || granted != refused {
			t.Errorf("%s: the granted topic's probe ended %q (%v), the other's %q (%v): the page learns what the cookie grants",
				name, granted, ok1, refused, ok2)
		}
	}
}

// TestBrowserSameOriginPageSubscribesWithTheCookie: the page ssehub serves
// itself reads a topic with the token cookie alone, with EventSource (no
// withCredentials needed on its own origin) and with fetch, and so does a
// frame of it (Sec-Fetch-Site: same-origin): what keeps another origin's
// requests from the cookie refuses none of these. A topic the token does
// not grant is a 403 to each.
func TestBrowserSameOriginPageSubscribesWithTheCookie(t *testing.T) {
	cfg := hubTestConfig()
	cfg.Auth.JWT = tokenConfig(t).Auth.JWT
	base, _ := startMain(t, cfg)
	jwt := mintToken(t, "--subscribe", "orders.>", "--ttl", "10m")
	ctx := newBrowser(t)
	runPage(t, ctx, base+"/")
	setPageCookie(t, ctx, "ssehub_token="+jwt+"; path=/", base+"/")
	runActions(t, ctx,
		callJS[chromedp.Void](`() => {
			window.__got = {};
			for (const topic of ["orders.eu", "payments.x"]) {
				const url = "/api/v1/events?topic=" + topic;
				const es = new EventSource(url);
				es.addEventListener("position", () => { window.__got["EventSource " + topic] ??= "position"; es.close(); });
				es.onerror = () => { window.__got["EventSource " + topic] ??= "error"; es.close(); };
				const stop = new AbortController();
				fetch(url, { signal: stop.signal }).then((r) => { window.__got["fetch " + topic] = r.status; stop.abort(); },
					(e) => { window.__got["fetch " + topic] = String(e); });
				const f = document.createElement("iframe");
				f.src = url;
				document.body.append(f);
				const seen = () => { const t = f.contentDocument?.body?.textContent ?? ""; if (t.includes("event: position")) return "position"; if (t.includes("error")) return t; return ""; };
				const poll = setInterval(() => { const s = seen(); if (s !== "") { window.__got["iframe " + topic] = s; clearInterval(poll); f.remove(); } }, 20);
			}
		}`),
		waitJS(`Object.keys(window.__got).length === 6`),
	)
	got := mustRun(t, ctx, callJS[map[string]any](`() => window.__got`))
	want := map[string]any{
		"EventSource orders.eu": "position", "EventSource payments.x": "error",
		"fetch orders.eu": float64(200), "fetch payments.x": float64(403),
		"iframe orders.eu":  "position",
		"iframe payments.x": `{"error":"subscribing to \"payments.x\": not granted by the token"}`,
	}
	if !maps.Equal(got, want) {
		t.Errorf("the page's own subscriptions with the cookie got %v, want %v", got, want)
	}
}
