package handler

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

// TestReadmeRouteTable keeps the README's HTTP API table, the user's list
// of routes, in step with the router: every method and path it names is
// a route (the demo page's, GET / and HEAD /, are its files), and every
// route is named. A row's "(and `HEAD`)" adds HEAD beside its GETs.
func TestReadmeRouteTable(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(data), "\n## HTTP API\n")
	if !ok {
		t.Fatal("README has no HTTP API section")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	route := regexp.MustCompile("`(GET|POST|HEAD|PUT|PATCH|DELETE) (/[^`?]*)[^`]*`")
	var documented []string
	for row := range strings.SplitSeq(table, "\n") {
		first, _, _ := strings.Cut(strings.TrimPrefix(row, "| "), " |")
		for _, m := range route.FindAllStringSubmatch(first, -1) {
			path := strings.ReplaceAll(m[2], "{topic}", ":topic")
			documented = append(documented, m[1]+" "+path)
			if m[1] == http.MethodGet && strings.Contains(row, "(and `HEAD`") {
				documented = append(documented, "HEAD "+path)
			}
		}
	}
	if len(documented) == 0 {
		t.Fatal("README's HTTP API table names no route: update this test with the README")
	}

	ts := newHubServer(t)
	routes := []string{"GET /", "HEAD /"} // the demo page's files
	for _, r := range ts.h.engine.Routes() {
		routes = append(routes, r.Method+" "+r.Path)
	}
	slices.Sort(documented)
	slices.Sort(routes)
	if !slices.Equal(documented, routes) {
		t.Errorf("README's HTTP API table names\n%v\nthe router has\n%v", documented, routes)
	}
}

// TestReadmeRouteBounds keeps the bounds that the README's HTTP API table
// gives the demo streams' and the topic list's parameters the ones the
// handlers enforce.
func TestReadmeRouteBounds(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(data), "\n## HTTP API\n")
	if !ok {
		t.Fatal("README has no HTTP API section")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	row := func(route string) string {
		t.Helper()
		for line := range strings.SplitSeq(table, "\n") {
			if strings.HasPrefix(line, "| `"+route+"`") || strings.HasPrefix(line, "| `"+route+"?") {
				return line
			}
		}
		t.Fatalf("README's HTTP API table has no row for %s: update this test with the README", route)
		return ""
	}
	for _, c := range []struct {
		route, written, want string
	}{
		{"GET /stream", "`count` (", fmt.Sprintf("`count` (1–%d)", maxTickerCount)},
		{"GET /stream", "`interval` (", fmt.Sprintf("`interval` (0s–%s)", shortDuration(maxTickerInterval))},
		{"POST /stream", "(`interval` ", fmt.Sprintf("(`interval` 0s–%s, default %s", shortDuration(maxTokenInterval), shortDuration(defaultTokenInterval))},
		{"POST /stream", "; at most ", fmt.Sprintf("; at most %d KiB;", maxTokenBody>>10)},
		{"GET /api/v1/topics", "`limit` (", fmt.Sprintf("`limit` (1–%d)", maxTopicsLimit)},
	} {
		line := row(c.route)
		if !strings.Contains(line, c.written) {
			t.Errorf("README: the row of %s does not say %q: update this test with the README", c.route, c.written)
		} else if !strings.Contains(line, c.want) {
			t.Errorf("README: the row of %s should say %q, as the handler has it", c.route, c.want)
		}
	}
}

// shortDuration writes d as the README does, in whole seconds or
// milliseconds: 60s, 5s, 50ms.
func shortDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

// TestReadmeDemoPolicy keeps the README's account of the demo files'
// Content-Security-Policy in step with the policy: every source it allows
// beyond the page's own origin is named there, so a reader who says
// "own origin only" of a directive is not contradicted by the header.
func TestReadmeDemoPolicy(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(data)), " ")
	_, text, ok := strings.Cut(text, "and a `Content-Security-Policy`: ")
	if !ok {
		t.Fatal("README does not describe the demo files' Content-Security-Policy: update this test with the README")
	}
	text, _, ok = strings.Cut(text, "`frame-ancestors 'none'`")
	if !ok {
		t.Fatal("README's account of the demo files' policy does not end at frame-ancestors: update this test with the README")
	}
	// How the README writes each source the policy allows past 'self'.
	written := map[string]string{
		"'unsafe-eval'": "`'unsafe-eval'`",
		"data:":         "`data:`",
		"http:":         "http(s) origin",
		"https:":        "http(s) origin",
	}
	for directive := range strings.SplitSeq(demoContentSecurityPolicy, ";") {
		fields := strings.Fields(directive)
		for _, source := range fields[1:] {
			if source == "'self'" || source == "'none'" {
				continue
			}
			w, ok := written[source]
			if !ok {
				t.Errorf("the policy's %s allows %s, which this test does not know: say it in the README, and here how", fields[0], source)
				continue
			}
			if !strings.Contains(text, w) {
				t.Errorf("README's account of the demo files' policy does not say that %s allows %s (%q)", fields[0], source, w)
			}
		}
	}
}

// TestReadmeParametersGivenTwice keeps the README's list of the query
// parameters that are a 400 when given twice the one the handlers
// enforce: each parameter a route reads, sent twice, is refused exactly
// when the list names it.
func TestReadmeParametersGivenTwice(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(data)), " ")
	_, list, ok := strings.Cut(text, "So is a parameter given twice where ssehub reads it (")
	if !ok {
		t.Fatal("README does not list the parameters refused when given twice: update this test with the README")
	}
	list, _, _ = strings.Cut(list, ";")
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(list, -1) {
		listed[m[1]] = true
	}

	opts, _ := hubOptions(t, stream.MemoryOptions{FirstID: 1})
	opts.Hub.SubscribeTokens = []string{testToken} // so that access_token is read
	ts := newTestServer(t, opts)
	read := map[string]bool{}
	for _, c := range []struct{ path, param, value string }{
		{"/stream?interval=0s", "count", "1"},
		{"/stream?count=1", "interval", "0s"},
		{"/api/v1/events?topic=a&access_token=" + testToken, "last_event_id", "1"},
		{"/api/v1/events?topic=a", "access_token", testToken},
		{"/api/v1/topics?access_token=" + testToken, "limit", "1"},
		{"/api/v1/topics?access_token=" + testToken, "after", "a"},
		{"/api/v1/topics?limit=1", "access_token", testToken},
	} {
		resp := ts.do(t, http.MethodGet, c.path+"&"+c.param+"="+c.value+"&"+c.param+"="+c.value, nil, nil)
		body := make([]byte, 512)
		n, _ := resp.Body.Read(body)
		resp.Body.Close()
		twice := resp.StatusCode == http.StatusBadRequest && strings.Contains(string(body[:n]), c.param+" given 2 times")
		if twice {
			read[c.param] = true
		}
		if twice != listed[c.param] {
			t.Errorf("GET %s with %s twice: %d %s; the README's list %s it", c.path, c.param, resp.StatusCode, body[:n],
				map[bool]string{true: "names", false: "does not name"}[listed[c.param]])
		}
	}
	for name := range listed {
		if !read[name] {
			t.Errorf("README lists %s among the parameters refused when given twice, but no route here refuses it: update this test with the README", name)
		}
	}
}

// TestReadmeEmptyEventType keeps the README's word on a publish's empty
// "event": it is the event left out, sent without an event line (so a
// message), and the same event to an Idempotency-Key's retry.
func TestReadmeEmptyEventType(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(data)), " ")
	if !strings.Contains(text, "`event`, the event type (left out or `\"\"`: `message`;") {
		t.Error("README should say that an empty event type is as one left out")
	}
	ts := newHubServer(t)
	sub := ts.subscribe(t, "topic=a", nil)
	if ev, err := sub.Next(); err != nil || ev.Type != "position" {
		t.Fatalf("first event %+v, %v; want the position", ev, err)
	}
	post := func(body string) *http.Response {
		t.Helper()
		resp := ts.do(t, http.MethodPost, "/api/v1/topics/a/events", strings.NewReader(body), map[string]string{
			"Authorization": "Bearer " + testToken, "Content-Type": "application/json", "Idempotency-Key": "k1",
		})
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("publish %s: %d", body, resp.StatusCode)
		}
		return resp
	}
	post(`{"event": "", "data": 1}`)
	if ev, err := sub.Next(); err != nil || ev.Type != "" || ev.Data != "1" {
		t.Fatalf("event %+v, %v; want data 1 without an event line", ev, err)
	}
	if resp := post(`{"data": 1}`); resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Error(`a retry without "event" of a publish with "event": "" was stored again: not the same event`)
	}
}

// TestReadmeHalfCloseRace keeps the README's word on a client that
// half-closes after its request (nc -N) in step with what such a client
// gets: its half-close races the stream's first write, and when it is
// seen first, even /stream?count=1 is cut after its head with no line of
// it sent. TestAOneStepStreamEndsCleanlyWhenItsClientHalfCloses allows
// that; the README says so, so that a reader does not take it for a loss.
func TestReadmeHalfCloseRace(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(data)), " ")
	want := "even one sent in a single write (`/stream?count=1`), but for a half-close that the server sees before that write, which cuts the stream with nothing of it sent"
	if !strings.Contains(text, want) {
		t.Errorf("README should say %q", want)
	}
}
