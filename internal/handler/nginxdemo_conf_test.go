package handler

import (
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/static"
)

// nginxDemoConf is the nginx server block of docker-compose.yml's web
// service, the demo page's second origin.
const nginxDemoConf = "../../deploy/nginx-demo.conf"

// TestNginxDemoConfSendsSsehubsHeaders reads deploy/nginx-demo.conf, with
// no nginx, and checks that for each demo file the headers it has nginx
// send (its add_header lines, and the Content-Type of its types, default_type
// and charset) are the ones ssehub's router sends for that file: the page's
// Content-Security-Policy, nosniff, Cache-Control and Content-Type. The
// policy is written twice, in static.go and in the conf; where nginx is not
// installed nothing else kept the two the same (cmd/ssehub's
// TestNginxDemoServesTheFilesAsSsehub runs the conf in nginx).
func TestNginxDemoConfSendsSsehubsHeaders(t *testing.T) {
	text, err := os.ReadFile(nginxDemoConf)
	if err != nil {
		t.Fatal(err)
	}
	server := parseNginxServer(t, string(text))
	opts := testOptions()
	opts.Static = static.FS
	ts := newTestServer(t, opts)

	checked := 0
	err = fs.WalkDir(static.FS, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		urlPath := "/" + name
		if name == "index.html" {
			urlPath = "/" // its own name redirects there, on both
		}
		got, err := server.headersFor(urlPath, name)
		if err != nil {
			t.Errorf("nginx-demo.conf: GET %s: %v", urlPath, err)
			return nil
		}
		resp := ts.do(t, "GET", urlPath, nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("ssehub: GET %s: %d, want 200", urlPath, resp.StatusCode)
			return nil
		}
		checked++
		// Every header the conf sets is ssehub's ...
		for _, h := range slices.Sorted(maps.Keys(got)) {
			if g, w := got[h], resp.Header.Values(h); !slices.Equal(g, w) {
				t.Errorf("GET %s: nginx-demo.conf sends %s %q, ssehub %q", urlPath, h, g, w)
			}
		}
		// ... and every one of ssehub's the page depends on is set.
		for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "Cache-Control", "Content-Type"} {
			if _, ok := got[h]; !ok {
				t.Errorf("GET %s: nginx-demo.conf sends no %s, ssehub %q", urlPath, h, resp.Header.Values(h))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no demo file checked")
	}
}

// nginxDirective is one directive of an nginx configuration: its name, its
// arguments and, for a block ("location ... { }"), the directives inside.
type nginxDirective struct {
	name  string
	args  []string
	block []nginxDirective // nil for a simple directive
}

// nginxTokens splits an nginx configuration into its words, quoted strings
// unquoted as nginx reads them ("\." stays a backslash and a dot), and
// its ";", "{" and "}". A quoted word is marked by quoted.
func nginxTokens(t *testing.T, text string) (words []string, quoted []bool) {
	t.Helper()
	for i := 0; i < len(text); {
		switch c := text[i]; c {
		case ' ', '\t', '\r', '\n':
			i++
		case '#':
			for i < len(text) && text[i] != '\n' {
				i++
			}
		case ';', '{', '}':
			words, quoted = append(words, string(c)), append(quoted, false)
			i++
		case '"', '\'':
			var b strings.Builder
			j := i + 1
			for ; j < len(text) && text[j] != c; j++ {
				if text[j] == '\\' && j+1 < len(text) {
					switch n := text[j+1]; n {
					case '"', '\'', '\\':
						b.WriteByte(n)
					case 't':
						b.WriteByte('\t')
					case 'r':
						b.WriteByte('\r')
					case 'n':
						b.WriteByte('\n')
					default:
						b.WriteByte('\\')
						b.WriteByte(n)
					}
					j++
					continue
				}
				b.WriteByte(text[j])
			}
			if j == len(text) {
				t.Fatalf("nginx-demo.conf: a quote at byte %d is never closed", i)
			}
			words, quoted = append(words, b.String()), append(quoted, true)
			i = j + 1
		default:
			j := i
			for j < len(text) && !strings.ContainsRune(" \t\r\n;{}\"'", rune(text[j])) {
				j++
			}
			words, quoted = append(words, text[i:j]), append(quoted, false)
			i = j
		}
	}
	return words, quoted
}

// parseNginxDirectives reads directives from words until a "}" that is
// not a word of a quoted string, or the end; it returns them and the
// index past that "}".
func parseNginxDirectives(t *testing.T, words []string, quoted []bool, i int) ([]nginxDirective, int) {
	t.Helper()
	var list []nginxDirective
	var cur []string
	for i < len(words) {
		w, q := words[i], quoted[i]
		i++
		switch {
		case !q && w == ";":
			if len(cur) == 0 {
				t.Fatal("nginx-demo.conf: an empty directive")
			}
			list = append(list, nginxDirective{name: cur[0], args: cur[1:]})
			cur = nil
		case !q && w == "{":
			if len(cur) == 0 {
				t.Fatal("nginx-demo.conf: a block with no name")
			}
			var block []nginxDirective
			block, i = parseNginxDirectives(t, words, quoted, i)
			list = append(list, nginxDirective{name: cur[0], args: cur[1:], block: append([]nginxDirective{}, block...)})
			cur = nil
		case !q && w == "}":
			if len(cur) != 0 {
				t.Fatalf("nginx-demo.conf: %q ends with no ;", cur)
			}
			return list, i
		default:
			cur = append(cur, w)
		}
	}
	if len(cur) != 0 {
		t.Fatalf("nginx-demo.conf: %q ends with no ;", cur)
	}
	return list, i
}

// nginxContext is what a server or a location block says of the answers
// it serves: the directives of the nginx modules the conf uses, with
// nginx's inheritance from the server to its locations.
type nginxContext struct {
	addHeaders   [][]string        // add_header's arguments; a location's replace the server's
	types        map[string]string // extension: type; a location's replace the server's
	defaultType  string
	charset      string // "" or "off" for none
	charsetTypes []string
	returns      []string // return's arguments: the location answers no file
}

// nginxLocation is a location block: its modifier ("=", "~", "~*", "^~"
// or "" for a prefix), its path or pattern, and what it says.
type nginxLocation struct {
	modifier, pattern string
	re                *regexp.Regexp
	ctx               nginxContext
}

// nginxServer is the conf's server block.
type nginxServer struct {
	ctx       nginxContext
	locations []nginxLocation
}

// parseNginxServer reads the conf's one server block. A directive the
// test does not know fails it: what it would change of the headers is not
// checked until the test is taught it.
func parseNginxServer(t *testing.T, text string) *nginxServer {
	t.Helper()
	words, quoted := nginxTokens(t, text)
	top, end := parseNginxDirectives(t, words, quoted, 0)
	if end != len(words) {
		t.Fatal("nginx-demo.conf: a } closes no block")
	}
	if len(top) != 1 || top[0].name != "server" || top[0].block == nil {
		t.Fatalf("nginx-demo.conf: want one server block, have %d directives", len(top))
	}
	s := &nginxServer{ctx: nginxContext{defaultType: "application/octet-stream", charset: "off", charsetTypes: []string{"text/html", "text/xml", "text/plain", "text/vnd.wap.wml", "application/javascript", "application/rss+xml"}}}
	for _, d := range top[0].block {
		if d.name == "location" {
			continue
		}
		s.ctx.apply(t, d, "server")
	}
	for _, d := range top[0].block {
		if d.name != "location" {
			continue
		}
		loc := nginxLocation{ctx: s.ctx}
		loc.ctx.addHeaders, loc.ctx.returns = nil, nil
		switch len(d.args) {
		case 1:
			loc.pattern = d.args[0]
		case 2:
			loc.modifier, loc.pattern = d.args[0], d.args[1]
		default:
			t.Fatalf("nginx-demo.conf: location %q", d.args)
		}
		switch loc.modifier {
		case "", "=", "^~":
		case "~", "~*":
			expr := loc.pattern
			if loc.modifier == "~*" {
				expr = "(?i)" + expr
			}
			re, err := regexp.Compile(expr)
			if err != nil {
				t.Fatalf("nginx-demo.conf: location %s %q: %v", loc.modifier, loc.pattern, err)
			}
			loc.re = re
		default:
			t.Fatalf("nginx-demo.conf: location modifier %q", loc.modifier)
		}
		if d.block == nil {
			t.Fatalf("nginx-demo.conf: location %q has no block", d.args)
		}
		ownHeaders := false
		for _, inner := range d.block {
			if inner.name == "add_header" && !ownHeaders {
				ownHeaders = true
				loc.ctx.addHeaders = nil
			}
			loc.ctx.apply(t, inner, "location "+loc.pattern)
		}
		if !ownHeaders {
			loc.ctx.addHeaders = s.ctx.addHeaders
		}
		s.locations = append(s.locations, loc)
	}
	return s
}

// apply sets what directive d says in c, in the block named where.
func (c *nginxContext) apply(t *testing.T, d nginxDirective, where string) {
	t.Helper()
	want := func(n int) {
		if len(d.args) < n {
			t.Fatalf("nginx-demo.conf: %s: %s %q, want %d arguments", where, d.name, d.args, n)
		}
	}
	switch d.name {
	case "listen", "root", "max_ranges", "absolute_redirect", "try_files":
		// No header of a file served.
	case "add_header":
		want(2)
		if len(d.args) > 3 || (len(d.args) == 3 && d.args[2] != "always") || strings.Contains(d.args[1], "$") {
			t.Fatalf("nginx-demo.conf: %s: add_header %q: the test reads a name, a value with no variable, and always", where, d.args)
		}
		c.addHeaders = append(c.addHeaders, d.args[:2])
	case "types":
		if d.block == nil {
			t.Fatalf("nginx-demo.conf: %s: types with no block", where)
		}
		c.types = make(map[string]string)
		for _, e := range d.block {
			for _, ext := range e.args {
				c.types[strings.ToLower(ext)] = e.name
			}
		}
	case "default_type":
		want(1)
		c.defaultType = d.args[0]
	case "charset":
		want(1)
		c.charset = d.args[0]
	case "charset_types":
		want(1)
		c.charsetTypes = d.args
	case "return":
		want(1)
		c.returns = d.args
	default:
		t.Fatalf("nginx-demo.conf: %s: the test does not know %s: teach it what %s does to a file's headers", where, d.name, d.name)
	}
}

// location is the location nginx picks for urlPath: an exact match; else
// the longest prefix if it is ^~; else the first regular expression that
// matches, in the conf's order; else the longest prefix.
func (s *nginxServer) location(urlPath string) (*nginxLocation, bool) {
	var prefix *nginxLocation
	for i := range s.locations {
		l := &s.locations[i]
		switch l.modifier {
		case "=":
			if l.pattern == urlPath {
				return l, true
			}
		case "", "^~":
			if strings.HasPrefix(urlPath, l.pattern) && (prefix == nil || len(l.pattern) > len(prefix.pattern)) {
				prefix = l
			}
		}
	}
	if prefix == nil || prefix.modifier != "^~" {
		for i := range s.locations {
			if l := &s.locations[i]; l.re != nil && l.re.MatchString(urlPath) {
				return l, true
			}
		}
	}
	return prefix, prefix != nil
}

// headersFor is the headers nginx sends with file, served for GET
// urlPath, as the conf says: each add_header, and the Content-Type of the
// file's extension (or the default type) with the charset if its type is
// one of charset_types (text/html always is).
func (s *nginxServer) headersFor(urlPath, file string) (map[string][]string, error) {
	loc, ok := s.location(urlPath)
	if !ok {
		return nil, fmt.Errorf("no location")
	}
	if loc.ctx.returns != nil {
		return nil, fmt.Errorf("location %s %q answers return %q, not the file %s", loc.modifier, loc.pattern, loc.ctx.returns, file)
	}
	h := make(map[string][]string)
	for _, a := range loc.ctx.addHeaders {
		name := http.CanonicalHeaderKey(a[0])
		h[name] = append(h[name], a[1])
	}
	ct := loc.ctx.defaultType
	types := loc.ctx.types
	if types == nil {
		// The http block's, the official image's mime.types: unknown
		// here, so a file's type must come from the conf.
		return nil, fmt.Errorf("no types block: the file's type is the http block's mime.types")
	}
	if ext := path.Ext(file); ext != "" {
		if typ, ok := types[strings.ToLower(ext[1:])]; ok {
			ct = typ
		}
	}
	if cs := loc.ctx.charset; cs != "" && cs != "off" && (ct == "text/html" || slices.Contains(loc.ctx.charsetTypes, ct) || slices.Contains(loc.ctx.charsetTypes, "*")) {
		ct += "; charset=" + cs
	}
	h["Content-Type"] = append(h["Content-Type"], ct)
	return h, nil
}

// TestReadmeNginxDemoTypes keeps what the README's "With Docker" says of
// deploy/nginx-demo.conf's types in step with the file: every media type
// it names there is one that ssehub (and so the file, which
// TestNginxDemoConfSendsSsehubsHeaders holds to ssehub's) sends a demo
// file with, and it names the script's and the style sheet's.
func TestReadmeNginxDemoTypes(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, para, ok := strings.Cut(string(readme), "\nnginx serves the page with `deploy/nginx-demo.conf`")
	if !ok {
		t.Fatal("README: no paragraph starting \"nginx serves the page with `deploy/nginx-demo.conf`\": update this test with the README")
	}
	para, _, _ = strings.Cut(para, "\n\n")

	opts := testOptions()
	opts.Static = static.FS
	ts := newTestServer(t, opts)
	served := map[string]bool{}
	for _, p := range []string{"/", "/app.js", "/style.css"} {
		resp := ts.do(t, "GET", p, nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("ssehub: GET %s: %d, want 200", p, resp.StatusCode)
		}
		served[resp.Header.Get("Content-Type")] = true
	}
	mediaType := regexp.MustCompile("`((?:text|application|image|font)/[a-z0-9.+-]+(?:; ?charset=[A-Za-z0-9-]+)?)`")
	named := map[string]bool{}
	for _, m := range mediaType.FindAllStringSubmatch(para, -1) {
		named[m[1]] = true
		if !served[m[1]] {
			t.Errorf("README says of nginx-demo.conf %q, a type ssehub serves no demo file with (it serves %v)", m[1], slices.Sorted(maps.Keys(served)))
		}
	}
	for _, p := range []string{"/app.js", "/style.css"} {
		want := ts.do(t, "GET", p, nil, nil).Header.Get("Content-Type")
		if !named[want] {
			t.Errorf("README's paragraph on nginx-demo.conf does not name %s's type, %q", p, want)
		}
	}
}
