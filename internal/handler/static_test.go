package handler

import (
	"fmt"
	"io"
	"mime"
	"mime/multipart"
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

// TestDemoFilesSayNosniffAndTheirPolicy: every demo file, and its 304,
// says X-Content-Type-Options: nosniff and the page's
// Content-Security-Policy. Without them the page that holds the hub's
// tokens could be framed by any site (clickjacking its Publish), and it
// ran any inline script an injection might add.
func TestDemoFilesSayNosniffAndTheirPolicy(t *testing.T) {
	ts := newTestServer(t, testOptions())
	for _, path := range []string{"/", "/index.html", "/app.js", "/vendor/LICENSE"} {
		resp := ts.do(t, "GET", path, nil, nil)
		again := ts.do(t, "GET", path, nil, map[string]string{"If-None-Match": resp.Header.Get("ETag")})
		if again.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %d, want 304", path, again.StatusCode)
		}
		for _, r := range []*http.Response{resp, again} {
			if got := r.Header.Values("X-Content-Type-Options"); len(got) != 1 || got[0] != "nosniff" {
				t.Errorf("GET %s (%d): X-Content-Type-Options %q, want nosniff", path, r.StatusCode, got)
			}
			if got := r.Header.Get("Content-Security-Policy"); got != demoContentSecurityPolicy {
				t.Errorf("GET %s (%d): Content-Security-Policy %q, want %q", path, r.StatusCode, got, demoContentSecurityPolicy)
			}
		}
	}
	for _, directive := range []string{"default-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"} {
		if !strings.Contains(demoContentSecurityPolicy, directive) {
			t.Errorf("the policy %q lacks %s", demoContentSecurityPolicy, directive)
		}
	}
	if strings.Contains(demoContentSecurityPolicy, "unsafe-inline") {
		t.Errorf("the policy %q allows inline scripts or styles", demoContentSecurityPolicy)
	}
}

// TestDemoFileManyRangesGetTheFileOnce: a Range of more than 16 ranges
// of a demo file is answered with the whole file, 200, as nginx's
// max_ranges 16 does (deploy/nginx-demo.conf, the demo's second origin);
// 16 are still a multipart 206. net/http's file server took any number
// while they added up to less than the file, each part with a head of its
// own: one-byte ranges, thousands to a request, asked for an answer dozens
// of times the file's size.
func TestDemoFileManyRangesGetTheFileOnce(t *testing.T) {
	ts := newTestServer(t, testOptions())
	const file = "console.log('demo')" // testOptions' app.js
	ranges := func(n int) string {
		specs := make([]string, n)
		for i := range specs {
			specs[i] = fmt.Sprintf("%d-%d", i, i)
		}
		return "bytes=" + strings.Join(specs, ",")
	}

	resp := ts.do(t, "GET", "/app.js", nil, map[string]string{"Range": ranges(maxDemoFileRanges)})
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusPartialContent || err != nil || mt != "multipart/byteranges" {
		t.Fatalf("%d ranges: %d %q, want a multipart 206", maxDemoFileRanges, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	parts := multipart.NewReader(resp.Body, params["boundary"])
	for i := range maxDemoFileRanges {
		p, err := parts.NextPart()
		if err != nil {
			t.Fatalf("%d ranges: part %d: %v", maxDemoFileRanges, i, err)
		}
		if b, _ := io.ReadAll(p); string(b) != file[i:i+1] {
			t.Errorf("%d ranges: part %d %q, want %q", maxDemoFileRanges, i, b, file[i:i+1])
		}
	}
	if _, err := parts.NextPart(); err != io.EOF {
		t.Errorf("%d ranges: a part past the last (%v)", maxDemoFileRanges, err)
	}

	for _, rng := range []string{ranges(maxDemoFileRanges + 1), ranges(len(file) - 1), "bytes=0-0," + strings.Repeat(" 1-1 ,", 16)} {
		resp := ts.do(t, "GET", "/app.js", nil, map[string]string{"Range": rng})
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(b) != file || resp.Header.Get("Content-Range") != "" {
			t.Errorf("Range %s: %d of %d bytes (Content-Type %q, Content-Range %q), want 200 and the file once, %d bytes",
				rng, resp.StatusCode, len(b), resp.Header.Get("Content-Type"), resp.Header.Get("Content-Range"), len(file))
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != demoContentSecurityPolicy {
			t.Errorf("Range %s: Content-Security-Policy %q, want the demo files'", rng, got)
		}
	}
}

// TestDemoFileTypesAreNotTheHosts: each demo file's Content-Type is Go's
// own, text/javascript; charset=utf-8 for a script, whatever the host's
// MIME tables say. mime.TypeByExtension, which net/http's file server asks,
// takes a host's /etc/mime.types over Go's table when the host has no
// shared-mime-info database, and an older one says application/javascript,
// with no charset: ssehub then answered as the host said, no longer as
// deploy/nginx-demo.conf's types, which are Go's. The test puts such a
// line in the process's table, as mime reads it from the file, and takes
// it back after.
func TestDemoFileTypesAreNotTheHosts(t *testing.T) {
	const want = "text/javascript; charset=utf-8"
	was := mime.TypeByExtension(".js")
	if err := mime.AddExtensionType(".js", "application/javascript"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := mime.AddExtensionType(".js", was); err != nil {
			t.Error(err)
		}
	})
	ts := newTestServer(t, testOptions())
	for _, path := range []string{"/app.js", "/vendor/vue.js"} {
		resp := ts.do(t, "GET", path, nil, nil)
		if got := resp.Header.Values("Content-Type"); resp.StatusCode != http.StatusOK || len(got) != 1 || got[0] != want {
			t.Errorf("GET %s: %d, Content-Type %q, want 200 and %q", path, resp.StatusCode, got, want)
		}
		head := ts.do(t, "HEAD", path, nil, nil)
		if got := head.Header.Values("Content-Type"); len(got) != 1 || got[0] != want {
			t.Errorf("HEAD %s: Content-Type %q, want %q", path, got, want)
		}
	}
}
