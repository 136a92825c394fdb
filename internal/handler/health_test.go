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
		if resp := ts.do(t, "HEAD", path, nil, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("HEAD %s: %d, want 200 (load balancers' checks may use HEAD)", path, resp.StatusCode)
		}
	}
	ts.h.Close()
	ts.h.Close() // idempotent
	wantJSONError(t, ts.do(t, "GET", "/readyz", nil, nil), http.StatusServiceUnavailable)
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
