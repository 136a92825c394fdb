package handler

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func corsOptions(credentials bool, origins ...string) Options {
	opts := testOptions()
	opts.CORS = CORSOptions{
		AllowOrigin: func(o string) bool {
			for _, a := range origins {
				if a == o {
					return true
				}
			}
			return false
		},
		AllowCredentials: credentials,
		AllowedHeaders:   []string{"Content-Type", "Authorization", "Last-Event-ID", "Cache-Control"},
		ExposedHeaders:   []string{"X-Request-Id"},
		MaxAge:           12 * time.Hour,
	}
	return opts
}

func TestCORSAllowedOriginIsEchoed(t *testing.T) {
	ts := newTestServer(t, corsOptions(false, "http://app.test"))
	resp := ts.do(t, "GET", "/stream?count=1", nil, map[string]string{"Origin": "http://app.test"})
	wantStreamHeaders(t, resp)
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "http://app.test" {
		t.Errorf("Access-Control-Allow-Origin %q", got)
	}
	if got := resp.Header.Values("Vary"); !contains(got, "Origin") {
		t.Errorf("Vary %q, want Origin", got)
	}
	if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != "" {
		t.Errorf("credentials header %q without allow_credentials", got)
	}
	if got := resp.Header.Get("Access-Control-Expose-Headers"); got != "X-Request-Id" {
		t.Errorf("Access-Control-Expose-Headers %q", got)
	}
	if _, events := readAll(t, resp.Body); len(events) != 2 {
		t.Errorf("%d events, want a line and close", len(events))
	}
}

func TestCORSCredentialsOnlyWhenConfigured(t *testing.T) {
	ts := newTestServer(t, corsOptions(true, "http://app.test"))
	resp := ts.do(t, "GET", "/healthz", nil, map[string]string{"Origin": "http://app.test"})
	if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != "true" {
		t.Errorf("Access-Control-Allow-Credentials %q, want true", got)
	}
}

func TestCORSOtherOriginsGetNoCORSHeaders(t *testing.T) {
	for name, opts := range map[string]Options{
		"listed":           corsOptions(false, "http://app.test"),
		"same-origin only": testOptions(),
	} {
		t.Run(name, func(t *testing.T) {
			ts := newTestServer(t, opts)
			resp := ts.do(t, "GET", "/healthz", nil, map[string]string{"Origin": "http://evil.test"})
			for k := range resp.Header {
				if strings.HasPrefix(k, "Access-Control-") {
					t.Errorf("refused origin got %s: %q", k, resp.Header.Get(k))
				}
			}
			// Else a shared cache could serve this answer, without
			// CORS headers, to an allowed origin.
			if got := resp.Header.Values("Vary"); !varies(got, "Origin") {
				t.Errorf("refused origin got Vary %q, want Origin", got)
			}
		})
	}
}

// TestCORSAnswersWithoutCORSHeadersVaryOnOrigin checks that an answer to
// a request without Origin, or from the same origin, says Vary: Origin
// too (Fetch, "CORS protocol and HTTP caches"): it lacks the CORS headers
// an allowed origin gets, and a cache that kept it, the browser's or a
// shared one, served it to that origin's page, which could not read it.
func TestCORSAnswersWithoutCORSHeadersVaryOnOrigin(t *testing.T) {
	ts := newTestServer(t, corsOptions(false, "http://app.test"))
	for name, header := range map[string]map[string]string{
		"no Origin":   nil,
		"same origin": {"Origin": ts.URL},
	} {
		t.Run(name, func(t *testing.T) {
			resp := ts.do(t, "GET", "/healthz", nil, header)
			if got := resp.Header.Values("Vary"); !varies(got, "Origin") {
				t.Errorf("Vary %q, want Origin", got)
			}
		})
	}
}

// varies reports whether the Vary values name header.
func varies(values []string, header string) bool {
	for _, v := range values {
		for _, name := range strings.Split(v, ",") {
			if http.CanonicalHeaderKey(strings.TrimSpace(name)) == header {
				return true
			}
		}
	}
	return false
}

func TestCORSPreflight(t *testing.T) {
	ts := newTestServer(t, corsOptions(false, "http://app.test"))
	resp := ts.do(t, "OPTIONS", "/stream", nil, map[string]string{
		"Origin":                         "http://app.test",
		"Access-Control-Request-Method":  "POST",
		"Access-Control-Request-Headers": "content-type, last-event-id, authorization",
	})
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("preflight status %d, want 204", resp.StatusCode)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "http://app.test" {
		t.Errorf("Access-Control-Allow-Origin %q", got)
	}
	allowed := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"content-type", "last-event-id", "authorization"} {
		if !strings.Contains(allowed, h) {
			t.Errorf("Access-Control-Allow-Headers %q lacks %s", allowed, h)
		}
	}
	if got := resp.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(got, "POST") {
		t.Errorf("Access-Control-Allow-Methods %q lacks POST", got)
	}
	if got := resp.Header.Get("Access-Control-Max-Age"); got != "43200" {
		t.Errorf("Access-Control-Max-Age %q, want 43200 (12h)", got)
	}
}

// TestCORSAnyHeaderCoversAuthorization checks that "*" in the allowed
// headers lets a page send Authorization, the publish token's header:
// browsers never count it as covered by "*" (Fetch, CORS non-wildcard
// request-header name), so answered "*" alone, a cross-origin publish
// failed its preflight.
func TestCORSAnyHeaderCoversAuthorization(t *testing.T) {
	opts := corsOptions(false, "http://app.test")
	opts.CORS.AllowedHeaders = []string{"*"}
	ts := newTestServer(t, opts)
	resp := ts.do(t, "OPTIONS", "/stream", nil, map[string]string{
		"Origin":                         "http://app.test",
		"Access-Control-Request-Method":  "POST",
		"Access-Control-Request-Headers": "authorization, x-anything",
	})
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("preflight status %d, want 204", resp.StatusCode)
	}
	got := resp.Header.Values("Access-Control-Allow-Headers")
	if !contains(got, "*") || !contains(got, "Authorization") {
		t.Errorf("Access-Control-Allow-Headers %q, want * and Authorization", got)
	}
}

func TestCORSPreflightFromRefusedOriginIs403(t *testing.T) {
	ts := newTestServer(t, corsOptions(false, "http://app.test"))
	resp := ts.do(t, "OPTIONS", "/stream", nil, map[string]string{
		"Origin":                        "http://evil.test",
		"Access-Control-Request-Method": "POST",
	})
	msg := wantJSONError(t, resp, http.StatusForbidden)
	if !strings.Contains(msg, "http://evil.test") {
		t.Errorf("error %q does not name the origin", msg)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("Access-Control-Allow-Origin %q", got)
	}
}

// A preflight from a refused origin, answered 403, carries the Allow a
// plain OPTIONS to the path gets, as one from an allowed origin does: it
// carried Gin's, without OPTIONS ("GET, HEAD" on /healthz), and none on a
// demo file.
func TestCORSRefusedPreflightAllowListsOptions(t *testing.T) {
	ts := newTestServer(t, corsOptions(false, "http://app.test"))
	for path, want := range map[string]string{"/stream": "GET, POST, OPTIONS", "/healthz": "GET, HEAD, OPTIONS", "/": "GET, HEAD, OPTIONS", "/app.js": "GET, HEAD, OPTIONS"} {
		resp := ts.do(t, "OPTIONS", path, nil, map[string]string{"Origin": "http://evil.test", "Access-Control-Request-Method": "GET"})
		wantJSONError(t, resp, http.StatusForbidden)
		if got := resp.Header.Get("Allow"); got != want {
			t.Errorf("refused preflight to %s: Allow %q, want %q", path, got, want)
		}
	}
}

func TestCORSSameOriginRequestWithOriginHeaderPasses(t *testing.T) {
	ts := newTestServer(t, testOptions())
	// Browsers send Origin on same-origin POSTs.
	resp := ts.do(t, "POST", "/stream", strings.NewReader(`{"text":"a b","interval":"0s"}`),
		map[string]string{"Origin": ts.URL, "Content-Type": "application/json"})
	wantStreamHeaders(t, resp)
	if _, events := readAll(t, resp.Body); len(events) != 3 {
		t.Errorf("%d events, want 2 tokens and [DONE]", len(events))
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		for _, part := range strings.Split(v, ",") {
			if strings.TrimSpace(part) == s {
				return true
			}
		}
	}
	return false
}

// A plain OPTIONS, without Origin (curl -X OPTIONS, a monitor asking what
// a path takes), is answered on every route and demo file as RFC 9110
// §9.3.7 has it: 204 with Allow listing the path's methods, OPTIONS among
// them, as it is among the methods of every path's 405, since a preflight
// to the same path is answered too.
func TestPlainOptionsListsTheMethods(t *testing.T) {
	ts := newHubServer(t)
	allow := map[string]string{
		"/healthz":                "GET, HEAD, OPTIONS",
		"/readyz":                 "GET, HEAD, OPTIONS",
		"/metrics":                "GET, HEAD, OPTIONS",
		"/stream":                 "GET, POST, OPTIONS",
		"/api/v1/events":          "GET, OPTIONS",
		"/api/v1/topics":          "GET, HEAD, OPTIONS",
		"/api/v1/topics/t/events": "POST, OPTIONS",
		"/":                       "GET, HEAD, OPTIONS",
		"/app.js":                 "GET, HEAD, OPTIONS",
	}
	for path, want := range allow {
		resp := ts.do(t, "OPTIONS", path, nil, nil)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
			t.Errorf("OPTIONS %s: %d with %q, want 204 and no body", path, resp.StatusCode, body)
		}
		if got := resp.Header.Get("Allow"); got != want {
			t.Errorf("OPTIONS %s: Allow %q, want %q", path, got, want)
		}
		resp = ts.do(t, "DELETE", path, nil, nil)
		wantJSONError(t, resp, http.StatusMethodNotAllowed)
		if got := resp.Header.Get("Allow"); got != want {
			t.Errorf("DELETE %s: Allow %q, want %q", path, got, want)
		}
	}
	wantJSONError(t, ts.do(t, "OPTIONS", "/missing", nil, nil), http.StatusNotFound)
}

// A preflight from an allowed origin, answered by the CORS middleware,
// carries the same Allow as a plain OPTIONS to the path: OPTIONS among
// them. It carried Gin's, which left OPTIONS out.
func TestCORSPreflightAllowListsOptions(t *testing.T) {
	ts := newTestServer(t, corsOptions(false, "http://app.test"))
	for path, want := range map[string]string{"/stream": "GET, POST, OPTIONS", "/healthz": "GET, HEAD, OPTIONS"} {
		resp := ts.do(t, "OPTIONS", path, nil, map[string]string{"Origin": "http://app.test", "Access-Control-Request-Method": "GET"})
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Allow") != want {
			t.Errorf("preflight to %s: %d, Allow %q; want 204 and %q", path, resp.StatusCode, resp.Header.Get("Allow"), want)
		}
	}
}

// A preflight from an allowed origin to a demo file carries the Allow a
// plain OPTIONS to it gets, as on the API's routes: it carried none, the
// CORS middleware answering before the demo files' handler set it.
func TestCORSPreflightToADemoFileListsItsMethods(t *testing.T) {
	ts := newTestServer(t, corsOptions(false, "http://app.test"))
	for _, path := range []string{"/", "/app.js"} {
		resp := ts.do(t, "OPTIONS", path, nil, map[string]string{"Origin": "http://app.test", "Access-Control-Request-Method": "GET"})
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Allow") != "GET, HEAD, OPTIONS" {
			t.Errorf("preflight to %s: %d, Allow %q; want 204 and %q", path, resp.StatusCode, resp.Header.Get("Allow"), "GET, HEAD, OPTIONS")
		}
	}
	resp := ts.do(t, "OPTIONS", "/missing", nil, map[string]string{"Origin": "http://app.test", "Access-Control-Request-Method": "GET"})
	if got := resp.Header.Get("Allow"); got != "" {
		t.Errorf("preflight to a path that is no route nor file: Allow %q, want none", got)
	}
}
