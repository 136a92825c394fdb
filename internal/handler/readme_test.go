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
