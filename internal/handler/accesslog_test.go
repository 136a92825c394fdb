package handler

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/testlog"
)

func TestOneAccessLineAndAStreamEndLinePerStream(t *testing.T) {
	var logs testlog.Buffer
	opts := testOptions()
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	ts := newTestServer(t, opts)
	readAll(t, ts.do(t, "GET", "/stream?count=2&access_token=secret", nil, nil).Body)
	ts.waitReturned(t, "/stream")
	ts.do(t, "GET", "/missing", nil, nil)
	ts.waitReturned(t, "/missing")
	// A detached stream can end before its handler, which returned when
	// it handed the stream over, has had its access line written.
	waitFor(t, func() bool { return strings.Count(logs.String(), "msg=request ") >= 2 })

	var access, ends []string
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		switch {
		case strings.Contains(line, "msg=request "):
			access = append(access, line)
		case strings.Contains(line, `msg="stream ended"`):
			ends = append(ends, line)
		}
	}
	// In either order: a detached stream's line may be written after the
	// next request's, its goroutine descheduled between the two.
	slices.SortFunc(access, func(a, b string) int { return strings.Compare(pathOf(a), pathOf(b)) })
	if len(access) != 2 || !strings.Contains(access[0], "path=/missing status=404") || !strings.Contains(access[1], "path=/stream status=200") {
		t.Errorf("access lines %q, want one per request with path and status", access)
	}
	for _, line := range access {
		if !strings.Contains(line, "remote=127.0.0.1") {
			t.Errorf("access line %q lacks the client's address", line)
		}
	}
	if len(ends) != 1 || !strings.Contains(ends[0], "events=3") || !strings.Contains(ends[0], "duration=") || !strings.Contains(ends[0], "reason=completed") {
		t.Errorf("stream end lines %q, want one with events=3, duration and reason", ends)
	}
	if strings.Contains(logs.String(), "secret") {
		t.Error("a query token reached the logs")
	}
}

// pathOf is the path an access line names.
func pathOf(line string) string {
	_, rest, _ := strings.Cut(line, " path=")
	path, _, _ := strings.Cut(rest, " ")
	return path
}

func TestAccessLineBelievesForwardingHeadersOnlyFromTrustedProxies(t *testing.T) {
	tests := []struct {
		name    string
		proxies []string
		want    string // the remote the access line names
	}{
		{"nil: none trusted", nil, "127.0.0.1"},
		{"empty: none trusted", []string{}, "127.0.0.1"},
		{"another network", []string{"10.0.0.0/8", "::1"}, "127.0.0.1"},
		{"the peer's address", []string{"127.0.0.1"}, "6.6.6.6"},
		{"the peer's network", []string{"10.0.0.0/8", "127.0.0.0/8"}, "6.6.6.6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, header := range []string{"X-Forwarded-For", "X-Real-IP"} {
				var logs testlog.Buffer
				opts := testOptions()
				opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
				opts.TrustedProxies = tt.proxies
				ts := newTestServer(t, opts)
				ts.do(t, "GET", "/healthz", nil, map[string]string{header: "6.6.6.6"})
				ts.waitReturned(t, "/healthz")
				if line := logs.String(); !strings.Contains(line, "remote="+tt.want+"\n") {
					t.Errorf("%s: 6.6.6.6 from 127.0.0.1, trusted %q: access line %q, want remote=%s", header, tt.proxies, line, tt.want)
				}
			}
		})
	}
}

func TestUnparsableTrustedProxiesTrustNone(t *testing.T) {
	var logs testlog.Buffer
	opts := testOptions()
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	opts.TrustedProxies = []string{"127.0.0.1", "fe80::1%eth0"}
	ts := newTestServer(t, opts)
	ts.do(t, "GET", "/healthz", nil, map[string]string{"X-Forwarded-For": "6.6.6.6"})
	ts.waitReturned(t, "/healthz")
	if got := logs.String(); !strings.Contains(got, "trusted proxies ignored") || !strings.Contains(got, "remote=127.0.0.1\n") {
		t.Errorf("logs %q, want the bad list named and the peer as the client", got)
	}
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A request's method and path are the client's to choose, up to
// net/http's 1 MB of header: the access line keeps at most a few hundred
// bytes of each, and says how long they were.
func TestAccessLineClipsMethodAndPath(t *testing.T) {
	var logs testlog.Buffer
	opts := testOptions()
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	ts := newTestServer(t, opts)
	method, path := strings.Repeat("M", 100<<10), "/"+strings.Repeat("p", 100<<10)
	ts.do(t, method, path, nil, nil).Body.Close()
	ts.waitReturned(t, path)
	line := strings.TrimSpace(logs.String())
	if strings.Count(line, "\n") != 0 || !strings.Contains(line, "msg=request ") {
		t.Fatalf("want one access line, got:\n%.500s", line)
	}
	if len(line) > 2048 || !strings.Contains(line, "(102400 bytes)") || !strings.Contains(line, "(102401 bytes)") {
		t.Errorf("%d-byte access line %.300q…, want method and path clipped with their lengths", len(line), line)
	}
}

// A request whose handler panicked has its access line too, saying 500 at
// error level, as the metrics count it: the client got Gin's recovery's
// 500, and an operator looking for 500s in the access lines finds it.
func TestAPanicHasItsAccessLine(t *testing.T) {
	var logs testlog.Buffer
	opts := testOptions()
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	ts := newTestServer(t, opts)
	ts.h.engine.GET("/boom", func(*gin.Context) { panic("boom") })
	wantJSONError(t, ts.do(t, "GET", "/boom", nil, nil), http.StatusInternalServerError)
	waitFor(t, func() bool { return logs.Count("handler panicked") > 0 })
	if n := logs.Count("level=ERROR msg=request method=GET path=/boom status=500 bytes=33 "); n != 1 {
		t.Errorf("%d access lines saying 500 for /boom, want 1:\n%s", n, logs.String())
	}
}

// A HEAD request is answered without a body (net/http drops what the
// handler writes): its access line says so, bytes=0, not the size of the
// body a GET would have had.
func TestHeadAccessLineCountsNoBody(t *testing.T) {
	var logs testlog.Buffer
	opts := testOptions()
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	ts := newTestServer(t, opts)
	for _, path := range []string{"/metrics", "/healthz", "/readyz", "/app.js", "/missing"} {
		resp := ts.do(t, "HEAD", path, nil, nil)
		resp.Body.Close()
		ts.waitReturned(t, path)
		line := grepLines(logs.String(), "path="+path+" ")
		if !strings.Contains(line, "method=HEAD") || !strings.Contains(line, " bytes=0 ") {
			t.Errorf("HEAD %s: access line %q, want bytes=0: no body was sent", path, line)
		}
	}
}
