package handler

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/stream"
)

// long is 10 KB of input, the size that came back whole before.
var long = strings.Repeat("a", 10240)

// maxEchoingAnswer bounds an error message that quotes one input.
const maxEchoingAnswer = 300

func TestErrorsQuoteAtMost64BytesOfInput(t *testing.T) {
	opts, _ := hubOptions(t, stream.MemoryOptions{})
	ts := newTestServer(t, opts)
	jsonBody := map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + testToken}
	tests := []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
		input                    string // what the answer quotes
	}{
		{"subscription topic", "GET", "/api/v1/events?topic=a." + long, "", nil, 400, "a." + long},
		{"publish topic", "POST", "/api/v1/topics/" + long + "/events", `{"data": 1}`, jsonBody, 400, long},
		{"ticker count", "GET", "/stream?count=" + long, "", nil, 400, long},
		{"ticker interval", "GET", "/stream?interval=" + long, "", nil, 400, long},
		{"token interval", "POST", "/stream", `{"text": "a", "interval": "` + long + `"}`, jsonBody, 400, long},
		{"unknown field", "POST", "/stream", `{"text": "a", "` + long + `": 1}`, jsonBody, 400, long},
		{"Content-Type", "POST", "/stream", `{"text": "a"}`, map[string]string{"Content-Type": long}, 415, long},
		{"path not found", "GET", "/" + long, "", nil, 404, "/" + long},
		{"method not allowed", "GET", "/api/v1/topics/" + long + "/events", "", nil, 405, "/api/v1/topics/" + long + "/events"},
		{"method", strings.Repeat("X", 10240), "/healthz", "", nil, 405, strings.Repeat("X", 10240)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ts.do(t, tt.method, tt.path, strings.NewReader(tt.body), tt.header)
			msg := wantJSONError(t, resp, tt.status)
			if want := stream.Quote(tt.input); !strings.Contains(msg, want) || len(msg) > maxEchoingAnswer {
				t.Errorf("%d-byte answer %.200q…, want the input quoted as %s", len(msg), msg, want)
			}
		})
	}
}

func TestCORSRefusalQuotesAtMost64BytesOfTheOrigin(t *testing.T) {
	ts := newTestServer(t, corsOptions(false, "http://app.test"))
	origin := "http://" + long
	resp := ts.do(t, "OPTIONS", "/stream", nil, map[string]string{"Origin": origin, "Access-Control-Request-Method": "GET"})
	msg := wantJSONError(t, resp, http.StatusForbidden)
	if !strings.Contains(msg, stream.Quote(origin)) || len(msg) > maxEchoingAnswer {
		t.Errorf("%d-byte answer %.200q…, want the origin quoted in at most %d bytes", len(msg), msg, stream.MaxQuoted)
	}
}

func TestResetEventsQuoteAtMost64BytesOfLastEventID(t *testing.T) {
	lastID := strings.Repeat("9", 500<<10) // 500 KB, under net/http's 1 MB of headers
	t.Run("ticker", func(t *testing.T) {
		ts := newTestServer(t, testOptions())
		resp := ts.do(t, "GET", "/stream?count=2", nil, map[string]string{"Last-Event-ID": lastID})
		_, events := readAll(t, resp.Body)
		if len(events) == 0 || events[0].Type != "reset" {
			t.Fatalf("events %.200v, want a reset first", events)
		}
		if !strings.Contains(events[0].Data, stream.Quote(lastID)) || len(events[0].Data) > maxEchoingAnswer {
			t.Errorf("%d-byte reset %.200q…, want the id quoted in at most %d bytes", len(events[0].Data), events[0].Data, stream.MaxQuoted)
		}
	})
	t.Run("hub", func(t *testing.T) {
		ts := newHubServer(t)
		p := ts.subscribe(t, "topic=a", map[string]string{"Last-Event-ID": lastID})
		reset := next(t, p)
		if reset.Type != "reset" || len(reset.Data) > maxEchoingAnswer {
			t.Errorf("first event %.200v (%d bytes of data), want a reset of at most %d bytes", reset, len(reset.Data), maxEchoingAnswer)
		}
	})
}

// A query string that does not parse is a 400 on every route: Go's Query
// drops what it cannot parse, so a resume from a mistyped id would have
// been live only, without a reset, and a mistyped count the default.
func TestMalformedQueryIs400(t *testing.T) {
	ts := newHubServer(t)
	for _, path := range []string{
		"/stream?count=5%zz",
		"/stream?count=3;interval=0s",
		"/api/v1/events?topic=t&last_event_id=17%",
		"/api/v1/events?topic=a&topic=%zz",
		"/api/v1/events?" + strings.Repeat("topic=a&", 20000) + "topic=a",
		"/healthz?x=%",
	} {
		msg := wantJSONError(t, ts.do(t, "GET", path, nil, nil), http.StatusBadRequest)
		if !strings.HasPrefix(msg, "bad request: malformed query string: ") || len(msg) > maxEchoingAnswer {
			t.Errorf("%.80s: %q, want a malformed query string named", path, msg)
		}
	}
}

// A malformed query refused on a path whose method Gin answers 405 (or
// a plain OPTIONS) keeps the Allow that the 405 would carry, OPTIONS among
// the methods: Gin sets it before the query is checked, and it said
// "GET" alone, as if the path took no OPTIONS.
func TestMalformedQueryKeepsTheFullAllow(t *testing.T) {
	ts := newHubServer(t)
	for _, r := range []struct{ method, path, allow string }{
		{"OPTIONS", "/api/v1/events?a;b", "GET, OPTIONS"},
		{"PUT", "/api/v1/events?x=%zz", "GET, OPTIONS"},
		{"DELETE", "/stream?a;b", "GET, POST, OPTIONS"},
	} {
		resp := ts.do(t, r.method, r.path, nil, nil)
		wantJSONError(t, resp, http.StatusBadRequest)
		if got := resp.Header.Values("Allow"); len(got) != 1 || got[0] != r.allow {
			t.Errorf("%s %s: Allow %q, want %q", r.method, r.path, got, r.allow)
		}
	}
}

// An error names a topic pattern as the client wrote it: the hub's
// wildcard ">" was written "\u003e" (Gin's c.JSON escapes <, > and & for
// HTML), so a client reading the answer, a curl or a log, read
// `pattern "a.\u003e.b": "\u003e" must be the last segment`.
func TestErrorsWriteTheirTextUnescaped(t *testing.T) {
	ts := newHubServer(t)
	resp := ts.do(t, "GET", "/api/v1/events?topic=a.%3E.b", nil, nil)
	body, _ := io.ReadAll(resp.Body)
	want := `{"error":"pattern \"a.>.b\": \">\" must be the last segment: invalid topic pattern"}`
	if resp.StatusCode != http.StatusBadRequest || string(body) != want {
		t.Errorf("%d %s\nwant 400 %s", resp.StatusCode, body, want)
	}
}

// TestErrorsAreNotSniffed: an error's text may quote the request, and
// since it is written unescaped, a path such as /<script>... comes back
// as written in a 404's JSON. Every error says nosniff, so that no
// browser takes the answer for HTML.
func TestErrorsAreNotSniffed(t *testing.T) {
	ts := newHubServer(t)
	for _, target := range []string{
		"/%3Cscript%3Ealert(1)%3C/script%3E",      // 404, its path quoted
		"/api/v1/events?topic=%3Cscript%3E",       // 400, its topic quoted
		"/api/v1/events?topic=a&%3Cscript%3E=%zz", // 400, a malformed query
	} {
		resp := ts.do(t, "GET", target, nil, nil)
		body, _ := io.ReadAll(resp.Body)
		if got := resp.Header.Get("X-Content-Type-Options"); resp.StatusCode < 400 || got != "nosniff" {
			t.Errorf("GET %s: %d %s, X-Content-Type-Options %q, want an error saying nosniff", target, resp.StatusCode, body, got)
		}
	}
}

// Options.Middleware runs for every request but a preflight: one refused
// for its query string too, which never reached it, so that timing or
// metrics of one's own missed those 400s.
func TestMiddlewareSeesARequestRefusedForItsQuery(t *testing.T) {
	opts := testOptions()
	var seen []int
	opts.Middleware = []gin.HandlerFunc{func(c *gin.Context) {
		c.Next()
		seen = append(seen, c.Writer.Status())
	}}
	ts := newTestServer(t, opts)
	wantJSONError(t, ts.do(t, "GET", "/healthz?a=%zz", nil, nil), http.StatusBadRequest)
	ts.waitReturned(t, "/healthz")
	if len(seen) != 1 || seen[0] != http.StatusBadRequest {
		t.Errorf("the middleware saw %v, want the one 400", seen)
	}
}

// A broker's publish that may have stored the event is answered 503 with
// a text that says so, not "unreachable, try again", which has a
// client's plain retry store it twice; one that did not store it says
// unreachable.
func TestUnavailablePublishSaysWhetherItMayHaveStored(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{
			fmt.Errorf("nats publish: %w: %w: context deadline exceeded", stream.ErrUnavailable, stream.ErrMaybeStored),
			`{"error":"the event store did not answer in time: the event may have been stored; a retry with the same Idempotency-Key stores it once"}`,
		},
		{fmt.Errorf("nats not connected: %w", stream.ErrUnavailable), `{"error":"the event store is unreachable: try again in a moment"}`},
		{
			fmt.Errorf("%w: %w", stream.ErrMaybeStored, stream.ErrClosed),
			`{"error":"shutting down: the event may have been stored; a retry with the same Idempotency-Key stores it once"}`,
		},
		{stream.ErrClosed, `{"error":"shutting down: try again in a moment"}`},
	} {
		rec := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(rec)
		c.Request = httptest.NewRequest("POST", "/api/v1/topics/a/events", nil)
		abortUnavailable(c, tc.err)
		if rec.Code != http.StatusServiceUnavailable || rec.Body.String() != tc.want {
			t.Errorf("%v: %d %s, want 503 %s", tc.err, rec.Code, rec.Body, tc.want)
		}
	}
}
