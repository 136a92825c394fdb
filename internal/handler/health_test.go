package handler

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestHealthAndReadiness(t *testing.T) {
	ts := newTestServer(t, testOptions())
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready"} {
		resp := ts.do(t, "GET", path, nil, nil)
		var body struct{ Status string }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || body.Status != want {
			t.Errorf("%s: %d %+v %v, want 200 %q", path, resp.StatusCode, body, err, want)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp := ts.do(t, "HEAD", path, nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("HEAD %s: %d, want 200 (load balancers' checks may use HEAD)", path, resp.StatusCode)
		}
		// A 200 is cacheable by default: a cache before ssehub would
		// answer a failing instance's checks with a stored one.
		if got := resp.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("HEAD %s: Cache-Control %q, want no-store", path, got)
		}
	}
	ts.h.Close()
	ts.h.Close() // idempotent
	resp := ts.do(t, "GET", "/readyz", nil, nil)
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("/readyz during shutdown: Cache-Control %q, want no-store", got)
	}
	wantJSONError(t, resp, http.StatusServiceUnavailable)
	if resp := ts.do(t, "HEAD", "/readyz", nil, nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("HEAD /readyz during shutdown: %d, want 503", resp.StatusCode)
	}
	if resp := ts.do(t, "GET", "/healthz", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz during shutdown: %d, want 200", resp.StatusCode)
	}
}

func TestMetricsExposition(t *testing.T) {
	ts := newTestServer(t, testOptions())
	readAll(t, ts.do(t, "GET", "/stream?count=3", nil, nil).Body)
	// The client may see the end before the server has settled the
	// stream's metrics.
	ts.waitReturned(t, "/stream")
	resp := ts.do(t, "GET", "/metrics", nil, nil)
	b, _ := io.ReadAll(resp.Body)
	text := string(b)
	for _, want := range []string{
		"ssehub_streams_active 0",
		"ssehub_stream_events_sent_total 4",
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestDemoPageIsServed(t *testing.T) {
	ts := newTestServer(t, testOptions())
	resp := ts.do(t, "GET", "/", nil, nil)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "ssehub demo") {
		t.Fatalf("GET /: %d %q", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("GET / Content-Type %q", ct)
	}
	for _, path := range []string{"/app.js", "/vendor/vue.js", "/vendor/LICENSE"} {
		if resp := ts.do(t, "GET", path, nil, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}
	for _, path := range []string{"/missing.js", "/vendor/", "/../go.mod", "/vendor/../../x"} {
		wantJSONError(t, ts.do(t, "GET", path, nil, nil), http.StatusNotFound)
	}
}

// A demo file's path answers other methods than GET, HEAD and OPTIONS
// with 405 and Allow, as the API's routes do, not with 404 as if it were not there;
// a path that is no file stays 404. A CORS preflight from an allowed
// origin is answered as before, by the CORS middleware, and one from
// another origin refused.
func TestDemoFilesOtherMethodsAre405(t *testing.T) {
	ts := newTestServer(t, corsOptions(false, "http://app.test"))
	for _, path := range []string{"/", "/app.js", "/vendor/vue.js", "/vendor/../app.js"} {
		for _, method := range []string{"POST", "PUT", "DELETE", "PATCH", "BREW"} {
			resp := ts.do(t, method, path, strings.NewReader("x"), nil)
			msg := wantJSONError(t, resp, http.StatusMethodNotAllowed)
			if got := resp.Header.Get("Allow"); got != "GET, HEAD, OPTIONS" {
				t.Errorf("%s %s: Allow %q, want GET, HEAD, OPTIONS", method, path, got)
			}
			if !strings.Contains(msg, method) {
				t.Errorf("%s %s: error %q does not name the method", method, path, msg)
			}
		}
		for _, method := range []string{"GET", "HEAD"} {
			if resp := ts.do(t, method, path, nil, nil); resp.StatusCode != http.StatusOK {
				t.Errorf("%s %s: %d, want 200", method, path, resp.StatusCode)
			}
		}
	}
	for _, path := range []string{"/missing.js", "/vendor/"} {
		wantJSONError(t, ts.do(t, "POST", path, nil, nil), http.StatusNotFound)
	}

	preflight := map[string]string{"Origin": "http://app.test", "Access-Control-Request-Method": "GET"}
	resp := ts.do(t, "OPTIONS", "/app.js", nil, preflight)
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "http://app.test" {
		t.Errorf("preflight from an allowed origin: %d, Access-Control-Allow-Origin %q; want 204 and the origin",
			resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	preflight["Origin"] = "http://evil.test"
	wantJSONError(t, ts.do(t, "OPTIONS", "/app.js", nil, preflight), http.StatusForbidden)

	// The route label stays "other", as for any request without a route.
	b, _ := io.ReadAll(ts.do(t, "GET", "/metrics", nil, nil).Body)
	if want := `ssehub_http_requests_total{code="405",method="POST",route="other"} 4`; !strings.Contains(string(b), want) {
		t.Errorf("/metrics lacks %s:\n%s", want, grepLines(string(b), `code="405"`))
	}
}

func TestDemoDisabled(t *testing.T) {
	opts := testOptions()
	opts.Demo.Enabled = false
	ts := newTestServer(t, opts)
	for _, path := range []string{"/", "/app.js", "/stream"} {
		wantJSONError(t, ts.do(t, "GET", path, nil, nil), http.StatusNotFound)
	}
	if resp := ts.do(t, "GET", "/healthz", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz with the demo off: %d", resp.StatusCode)
	}
}

// HEAD is answered wherever GET answers with a document, as RFC 9110
// has every general-purpose server do (curl -I, monitors): the GET's
// status and headers, no content. A stream's routes are not among them:
// a stream's head promises a stream.
func TestHeadOfDocuments(t *testing.T) {
	ts := newHubServer(t)
	for path, contentType := range map[string]string{"/metrics": "text/plain", "/api/v1/topics": "application/json"} {
		resp := ts.do(t, "HEAD", path, nil, nil)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), contentType) || len(body) != 0 {
			t.Errorf("HEAD %s: %d %q with %d bytes, want 200 %s and none", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), contentType)
		}
	}
	for _, path := range []string{"/stream", "/api/v1/events?topic=t"} {
		if resp := ts.do(t, "HEAD", path, nil, nil); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("HEAD %s: %d, want 405", path, resp.StatusCode)
		}
	}
}

// Every reason a stream can end for is a series from the start, at 0, as
// every reason of ssehub_requests_refused_total is: Prometheus's increase()
// and rate() see nothing of a series' first sample, so an alert on the
// first panicked stream, say, would miss it if the series only appeared
// with it.
func TestStreamEndReasonsArePresentFromTheStart(t *testing.T) {
	ts := newTestServer(t, testOptions())
	b, _ := io.ReadAll(ts.do(t, "GET", "/metrics", nil, nil).Body)
	for _, reason := range []string{"completed", "client_gone", "shutting_down", "dropped", "write_failed", "token_expired", "panicked"} {
		want := `ssehub_streams_ended_total{reason="` + reason + `"} 0`
		if !strings.Contains(string(b), "\n"+want+"\n") {
			t.Errorf("/metrics of a new server lacks %s", want)
		}
	}
}

// An error the file server answers for a demo file is JSON, as every other
// error: a Range past the file's end was 416 in net/http's text/plain, a
// failed If-Match 412 with no body at all.
func TestDemoFileErrorsAreJSON(t *testing.T) {
	ts := newTestServer(t, testOptions())
	resp := ts.do(t, "GET", "/app.js", nil, map[string]string{"Range": "bytes=9999-"})
	if msg := wantJSONError(t, resp, http.StatusRequestedRangeNotSatisfiable); !strings.Contains(msg, "range") {
		t.Errorf("416: error %q, want it to say what is wrong with the range", msg)
	}
	if got := resp.Header.Get("Content-Range"); got != "bytes */19" {
		t.Errorf("416: Content-Range %q, want the file's length (RFC 9110 §15.5.17)", got)
	}
	wantJSONError(t, ts.do(t, "GET", "/app.js", nil, map[string]string{"If-Match": `"other"`}), http.StatusPreconditionFailed)
	// What is no error is served as before.
	resp = ts.do(t, "GET", "/app.js", nil, map[string]string{"Range": "bytes=0-6"})
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusPartialContent || string(b) != "console" {
		t.Errorf("Range bytes=0-6: %d %q, want 206 \"console\"", resp.StatusCode, b)
	}
}

// A suffix range of length 0 (bytes=-0, or "- 0" and "-+0", which net/http
// reads alike) selects no byte: RFC 9110 §14.1.1
// counts it unsatisfiable. net/http served it as a 206 of no bytes whose
// Content-Range, "bytes 19-18/19", ends before it starts, which a client
// cannot parse; alone it is a 416 as any range past the end, and beside a
// satisfiable range it is left out.
func TestDemoFileEmptySuffixRangeIsUnsatisfiable(t *testing.T) {
	ts := newTestServer(t, testOptions())
	for _, rng := range []string{"bytes=-0", "bytes=-000", "bytes= -0 , -0", "bytes=- 0", "bytes=-+0", "bytes=-\t00", "bytes= - +0 ,-0"} {
		resp := ts.do(t, "GET", "/app.js", nil, map[string]string{"Range": rng})
		wantJSONError(t, resp, http.StatusRequestedRangeNotSatisfiable)
		if got := resp.Header.Get("Content-Range"); got != "bytes */19" {
			t.Errorf("Range %s: 416 with Content-Range %q, want bytes */19", rng, got)
		}
	}
	for _, rng := range []string{"bytes=-0, 0-6", "bytes=0-6, -+0", "bytes=- 0,0-6"} {
		resp := ts.do(t, "GET", "/app.js", nil, map[string]string{"Range": rng})
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusPartialContent || string(b) != "console" || resp.Header.Get("Content-Range") != "bytes 0-6/19" {
			t.Errorf("Range %s: %d %q (Content-Range %q), want 206 \"console\" (bytes 0-6/19)",
				rng, resp.StatusCode, b, resp.Header.Get("Content-Range"))
		}
	}
}

// A demo file has a strong ETag, the same on every answer, and
// Cache-Control: no-cache: a browser asks again with If-None-Match and an
// unchanged file is a 304 without a body. The files are embedded, without
// a modification time, so before there was no validator and a browser
// fetched every file again on every load of the page.
func TestDemoFilesHaveAValidator(t *testing.T) {
	ts := newTestServer(t, testOptions())
	resp := ts.do(t, "GET", "/app.js", nil, nil)
	_, _ = io.Copy(io.Discard, resp.Body)
	tag := resp.Header.Get("ETag")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(tag, `"`) || len(tag) < 10 {
		t.Fatalf("GET /app.js: %d, ETag %q; want 200 with a strong ETag", resp.StatusCode, tag)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-cache" {
		t.Errorf("Cache-Control %q, want no-cache", got)
	}
	resp = ts.do(t, "GET", "/app.js", nil, map[string]string{"If-None-Match": tag})
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusNotModified || len(b) != 0 {
		t.Errorf("If-None-Match its ETag: %d with %d bytes, want 304 without a body", resp.StatusCode, len(b))
	}
	resp = ts.do(t, "GET", "/app.js", nil, map[string]string{"If-None-Match": `"other"`})
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), "console") {
		t.Errorf("If-None-Match another ETag: %d %q, want 200 with the file", resp.StatusCode, b)
	}
	if other := ts.do(t, "GET", "/", nil, nil); other.Header.Get("ETag") == tag || other.Header.Get("ETag") == "" {
		t.Errorf("GET /: ETag %q, want one of its own (app.js's is %q)", other.Header.Get("ETag"), tag)
	}
}
