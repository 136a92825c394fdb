package handler

import (
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
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
