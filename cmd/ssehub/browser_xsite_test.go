package main

// A browser test of a subscriber's token across sites: the page on one
// site, ssehub on another, over HTTPS, as README's "Where the token comes
// from" describes them.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/ssehub/ssehub/internal/testpki"
	"github.com/ssehub/ssehub/static"
)

// TestBrowserXSiteEventSourceToken: a page on https://app.example.com
// subscribes to ssehub on https://events.example.net, another site, with a
// JWT in the cookie auth.jwt.cookie_name, set on ssehub's site (as a login
// there would) with `SameSite=None; Secure`.
//
// In a browser that lets third-party cookies through, `new
// EventSource(url, {withCredentials: true})` sends it, and with
// cors.allow_credentials the stream opens; without withCredentials no
// cookie goes (401); without cors.allow_credentials the browser refuses
// the answer. The same cookie with `SameSite=Lax` (on lax.example.org, a
// third site) is not sent across sites (401). The access_token query needs
// no cookie: the stream opens with or without cors.allow_credentials,
// unless withCredentials asks for what the service does not allow; a bad
// token in the query is refused even with a good cookie, which comes
// after it.
//
// In a browser that blocks third-party cookies (this Chromium does, with a
// new profile), the `SameSite=None; Secure` cookie is not sent either
// (401), and the access_token query still opens the stream.
//
// Either way, with ssehub on the page's own site (events.example.com), a
// cookie the page's site set for it (`Domain=example.com`, no SameSite) is
// no third-party cookie: withCredentials sends it.
func TestBrowserXSiteEventSourceToken(t *testing.T) {
	pki := testpki.New(t)
	pageSrv := httptest.NewUnstartedServer(http.FileServerFS(static.FS))
	pageSrv.EnableHTTP2 = true
	pageSrv.StartTLS()
	t.Cleanup(pageSrv.Close)
	page := "https://app.example.com:" + urlPort(t, pageSrv.URL)

	// Two services, one with cors.allow_credentials, one without; each
	// answers as events.example.net and as lax.example.org, and a cookie
	// of either host holds for both ports.
	services := map[bool]string{}
	for _, allow := range []bool{true, false} {
		cfg := tlsTestConfig(pki)
		cfg.Auth.JWT = tokenConfig(t).Auth.JWT
		cfg.CORS.AllowedOrigins = []string{page}
		cfg.CORS.AllowCredentials = allow
		base, _ := startMain(t, cfg)
		services[allow] = urlPort(t, base)
	}
	jwt := mintToken(t, "--subscribe", "orders.>", "--ttl", "10m")

	// A profile whose user lets third-party cookies through (Chromium's
	// cookie_controls_mode 0); the test blocks them later, over DevTools.
	profile := t.TempDir()
	if err := os.Mkdir(filepath.Join(profile, "Default"), 0o700); err != nil {
		t.Fatal(err)
	}
	prefs := []byte(`{"profile": {"cookie_controls_mode": 0}}`)
	if err := os.WriteFile(filepath.Join(profile, "Default", "Preferences"), prefs, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := newBrowser(t, chromedp.UserDataDir(profile), chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("host-resolver-rules", "MAP app.example.com 127.0.0.1, MAP events.example.com 127.0.0.1, MAP events.example.net 127.0.0.1, MAP lax.example.org 127.0.0.1"))
	for host, sameSite := range map[string]string{"events.example.net": "None", "lax.example.org": "Lax"} {
		runPage(t, ctx, "https://"+host+":"+services[true]+"/",
			callJS[chromedp.Void](`(cookie) => { document.cookie = cookie; }`,
				"ssehub_token="+jwt+"; Path=/; Secure; SameSite="+sameSite))
		if got := mustRun(t, ctx, callJS[string](`() => document.cookie`)); got != "ssehub_token="+jwt {
			t.Fatalf("%s holds the cookies %q, want the token's", host, got)
		}
	}
	requests := watchRequests(t, ctx)
	// The page's own site sets its cookie for every host of it, with no
	// SameSite (Lax to the browser).
	runPage(t, ctx, page+"/",
		callJS[chromedp.Void](`(cookie) => { document.cookie = cookie; }`,
			"ssehub_token="+jwt+"; Domain=example.com; Path=/; Secure"))

	const (
		none = "events.example.net" // the cookie says SameSite=None
		lax  = "lax.example.org"    // the cookie says SameSite=Lax
		own  = "events.example.com" // the page's site, whose cookie has no SameSite
	)
	blocking := false
	for i, tt := range []struct {
		name             string
		blocked          bool   // the browser blocks third-party cookies
		host             string // ssehub's
		allowCredentials bool
		withCredentials  bool
		accessToken      string // the access_token query parameter, if any
		open             bool
		sentCookie       bool
		status           int64 // of the answer the browser saw, 0 when it refused it
	}{
		{"same site, with credentials, allowed", false, own, true, true, "", true, true, http.StatusOK},
		{"same site, without credentials", false, own, true, false, "", false, false, http.StatusUnauthorized},
		{"SameSite=None, with credentials, allowed", false, none, true, true, "", true, true, http.StatusOK},
		{"SameSite=None, without credentials", false, none, true, false, "", false, false, http.StatusUnauthorized},
		{"SameSite=None, with credentials, not allowed", false, none, false, true, "", false, true, 0},
		{"SameSite=Lax, with credentials, allowed", false, lax, true, true, "", false, false, http.StatusUnauthorized},
		{"query, without credentials, allowed", false, none, true, false, jwt, true, false, http.StatusOK},
		{"query, without credentials, not allowed", false, none, false, false, jwt, true, false, http.StatusOK},
		{"query, SameSite=Lax, with credentials, allowed", false, lax, true, true, jwt, true, false, http.StatusOK},
		{"query, with credentials, not allowed", false, none, false, true, jwt, false, true, 0},
		{"bad query before a good cookie", false, none, true, true, "not-a-token", false, true, http.StatusUnauthorized},
		{"third-party cookies blocked: SameSite=None, with credentials, allowed", true, none, true, true, "", false, false, http.StatusUnauthorized},
		{"third-party cookies blocked: query, with credentials, allowed", true, none, true, true, jwt, true, false, http.StatusOK},
		{"third-party cookies blocked: query, without credentials, not allowed", true, none, false, false, jwt, true, false, http.StatusOK},
		{"third-party cookies blocked: same site, with credentials, allowed", true, own, true, true, "", true, true, http.StatusOK},
	} {
		if tt.blocked && !blocking {
			blocking = true
			params := network.SetCookieControlsParams{EnableThirdPartyCookieRestriction: true}
			if _, err := chromedp.Call(ctx, network.SetCookieControls, params); err != nil {
				t.Fatalf("blocking third-party cookies: %v", err)
			}
			runPage(t, ctx, page+"/") // the new controls hold from the next load on
		}
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{"topic": {fmt.Sprintf("orders.x%d", i)}}
			if tt.accessToken != "" {
				q.Set("access_token", tt.accessToken)
			}
			target := "https://" + tt.host + ":" + services[tt.allowCredentials] + "/api/v1/events?" + q.Encode()
			runActions(t, ctx,
				callJS[chromedp.Void](`(url, withCredentials) => {
					const s = { es: new EventSource(url, { withCredentials }), positions: 0, errors: 0 };
					s.es.addEventListener("position", () => { s.positions++; });
					s.es.onerror = () => { s.errors++; };
					window.__xsite = s;
				}`, target, tt.withCredentials),
				waitJS(`window.__xsite.positions > 0 || window.__xsite.es.readyState === EventSource.CLOSED`),
			)
			got := mustRun(t, ctx, callJS[[]int](`() => {
				const s = window.__xsite;
				const got = [s.positions, s.errors, s.es.readyState];
				s.es.close();
				return got;
			}`))
			if open := got[0] > 0 && got[1] == 0 && got[2] == 1; open != tt.open {
				t.Errorf("positions, errors, readyState %v; want the stream open: %v", got, tt.open)
			}
			var subs []request
			for _, r := range requests.all(ctx) {
				if r.URL == target {
					subs = append(subs, r)
				}
			}
			if len(subs) != 1 {
				t.Fatalf("requests to %s: %+v, want one", target, subs)
			}
			sub := subs[0]
			wantSite := "cross-site"
			if tt.host == own {
				wantSite = "same-site"
			}
			if site := sub.Headers["Sec-Fetch-Site"]; site != wantSite {
				t.Errorf("Sec-Fetch-Site %q, want %s", site, wantSite)
			}
			if tt.status == 0 && !strings.Contains(sub.Failed, "CORS") {
				t.Errorf("the subscribe failed %q, want for CORS", sub.Failed)
			}
			sentCookie := strings.Contains(sub.Headers["Cookie"], "ssehub_token="+jwt)
			if sentCookie != tt.sentCookie || sub.Status != tt.status {
				t.Errorf("the subscribe sent the cookie: %v (blocked: %q), answered %d; want %v, %d (%+v)",
					sentCookie, sub.BlockedCookies, sub.Status, tt.sentCookie, tt.status, sub)
			}
		})
	}
}

// urlPort returns the port of the URL rawURL.
func urlPort(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}
