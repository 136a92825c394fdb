package main

import (
	"testing"
)

// TestBrowserPublishWhileSsehubIsDownBehindNginx: a page on another origin
// publishes through the README's nginx recipe while ssehub is down. Its
// fetch, with Authorization and a JSON body, is preceded by a CORS
// preflight, which nginx answers in ssehub's place; the page then reads
// nginx's JSON 502, as the README says. nginx's 502 to the preflight had
// the browser refuse the publish unsent: the page saw a network error.
func TestBrowserPublishWhileSsehubIsDownBehindNginx(t *testing.T) {
	requireNginx(t)
	page := newSecondOrigin(t)
	n := runNginx(t, refusingAddr(t)) // nothing listens there
	ctx := newBrowser(t)
	runPage(t, ctx, page+"/")
	got := mustRun(t, ctx, callJS[string](`async (url) => {
		try {
			const resp = await fetch(url, {
				method: "POST",
				headers: { "Authorization": "Bearer tok", "Content-Type": "application/json", "Idempotency-Key": "order-42" },
				body: '{"data": "order 42"}',
			});
			return resp.status + " " + (await resp.json()).error;
		} catch (e) {
			return "network error: " + e;
		}
	}`, n.url+"/api/v1/topics/orders/events"))
	if want := "502 ssehub is unreachable: try again in a moment"; got != want {
		t.Errorf("a publish from another origin through nginx while ssehub is down: %q, want %q", got, want)
	}
}
