package handler

import (
	"net/http"
	"strings"
	"testing"
)

// TestADemoFilesPathWithATrailingSlashIsNoFile: a demo file's path with
// a slash after it names no file, a 404 in JSON as /healthz/ is, not
// net/http's redirect to "../LICENSE". That redirect is relative to the
// path as sent: after "/vendor/LICENSE%2F", whose slash is encoded, or
// "/vendor%2FLICENSE/", it pointed at /LICENSE, which is no file.
func TestADemoFilesPathWithATrailingSlashIsNoFile(t *testing.T) {
	ts := newTestServer(t, testOptions())
	client := ts.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, sent := range []string{"/vendor/LICENSE%2F", "/vendor%2FLICENSE/", "/app.js/"} {
		req, err := http.NewRequestWithContext(t.Context(), "GET", ts.URL+sent, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d to %q, want 404", sent, resp.StatusCode, resp.Header.Get("Location"))
			continue
		}
		if msg := wantJSONError(t, resp, http.StatusNotFound); !strings.Contains(msg, `"`+sent+`"`) {
			t.Errorf("GET %s: 404 %q does not name the path as sent", sent, msg)
		}
	}
	// The page itself, and its canonical redirect, stay.
	if resp := ts.do(t, "GET", "/", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /: %d", resp.StatusCode)
	}
}
