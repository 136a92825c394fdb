package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/static"
)

// demoNginxConf is the nginx server block of docker-compose.yml's web
// service, the demo page's second origin; demoNginxRoot, its root there,
// is where the service mounts ./static.
const (
	demoNginxConf = "deploy/nginx-demo.conf"
	demoNginxRoot = "/usr/share/nginx/html"
)

// demoNginxHTTP is what the official nginx image's nginx.conf puts around
// conf.d's files in its http block, with the access log in the test's
// folder.
const demoNginxHTTP = `include /etc/nginx/mime.types;
default_type application/octet-stream;
access_log /var/log/nginx/demo.access.log;
`

// runDemoNginx runs nginx with deploy/nginx-demo.conf, its root the
// repository's static/, on a free loopback port until the test ends. It
// skips the test when nginx is not installed.
func runDemoNginx(t *testing.T) *nginxProcess {
	t.Helper()
	requireNginx(t)
	conf := editRecipe(t, readRepoFile(t, demoNginxConf), nginxEdit{"root " + demoNginxRoot + ";", "root " + mustAbs(t, filepath.Join(repoRoot, "static")) + ";"})
	conf = fmt.Sprintf(nginxFrame, "events {}", demoNginxHTTP+conf)
	const attempts = 5
	for attempt := 1; ; attempt++ {
		n, err := startNginx(t, conf)
		if err == nil {
			return n
		}
		if !errors.Is(err, errPortTaken) || attempt == attempts {
			t.Fatal(err)
		}
		t.Logf("trying another port after attempt %d: %v", attempt, err)
	}
}

// demoResponse is one answer for a demo file, read whole.
type demoResponse struct {
	status int
	header http.Header
	body   []byte
}

// getDemo sends a GET for path to base with the headers given as name,
// value pairs, and reads the answer.
func getDemo(t *testing.T, base, path string, header ...string) demoResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", base, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s%s: reading the body: %v", base, path, err)
	}
	return demoResponse{resp.StatusCode, resp.Header, body}
}

// demoPolicyHeaders are the headers ssehub gives each demo file, and its
// 304, that the page's second origin must give them too.
var demoPolicyHeaders = []string{"Content-Security-Policy", "X-Content-Type-Options", "Cache-Control"}

// TestNginxDemoServesTheFilesAsSsehub runs deploy/nginx-demo.conf against
// static/, as docker-compose.yml's web service does, beside ssehub. Of
// the folder's files, nginx serves those ssehub embeds, byte for byte,
// and no other (static.go, the tests, package.json: 404), each with
// ssehub's Content-Security-Policy, X-Content-Type-Options and
// Cache-Control, its 304 too, and ssehub's Content-Type, to the charset:
// the page's scripts a JavaScript type, which a browser needs under
// nosniff. The compose file's nginx sent none of those headers: the page
// on http://localhost:8080 ran with no policy, and any site could frame
// it. Its scripts came as application/javascript and its page and styles
// with no charset, where ssehub says text/javascript and charset=utf-8.
func TestNginxDemoServesTheFilesAsSsehub(t *testing.T) {
	base, _ := startMain(t, config.Default())
	n := runDemoNginx(t)

	folder := os.DirFS(filepath.Join(repoRoot, "static"))
	served := 0
	err := fs.WalkDir(folder, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "node_modules" {
			// npm's, which git ignores: the folder is asked for, not each of its files.
			if got := getDemo(t, n.url, "/"+name+"/"); got.status != http.StatusNotFound {
				t.Errorf("nginx: GET /%s/: %d, want 404", name, got.status)
			}
			return fs.SkipDir
		}
		if d.IsDir() {
			return nil
		}
		path := "/" + name
		got := getDemo(t, n.url, path)
		if _, err := fs.Stat(static.FS, name); err != nil {
			if got.status != http.StatusNotFound {
				t.Errorf("nginx: GET %s (not embedded): %d, want 404", path, got.status)
			}
			if want := getDemo(t, base, path); want.status != http.StatusNotFound {
				t.Errorf("ssehub: GET %s (not embedded): %d, want 404", path, want.status)
			}
			return nil
		}
		served++
		if name == "index.html" {
			// The page is /, checked below: its file's name redirects there.
			checkRedirectsToTheRoot(t, n.url, base, path)
			return nil
		}
		checkDemoFileLikeSsehub(t, n.url, base, path, name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if embedded := countFiles(t, static.FS); served != embedded {
		t.Errorf("checked %d files of static/, want the %d embedded", served, embedded)
	}
	checkDemoFileLikeSsehub(t, n.url, base, "/", "index.html")

	// Paths that name no file, or not as a file: nothing, as from ssehub.
	for _, path := range []string{"/vendor", "/vendor/", "/app.js/", "/index.html/", "/nosuch.js", "/vendor/nosuch.js", "/../go.mod", "/%2e%2e/go.mod"} {
		if got := getDemo(t, n.url, path); got.status == http.StatusOK || got.status/100 == 3 {
			t.Errorf("nginx: GET %s: %d (Location %q), want no file", path, got.status, got.header.Get("Location"))
		}
	}
}

// checkDemoFileLikeSsehub checks that nginx at ngx answers GET path, the
// demo file name, as ssehub at base does.
func checkDemoFileLikeSsehub(t *testing.T, ngx, base, path, name string) {
	t.Helper()
	file, err := fs.ReadFile(static.FS, name)
	if err != nil {
		t.Fatal(err)
	}
	got, want := getDemo(t, ngx, path), getDemo(t, base, path)
	if got.status != http.StatusOK || want.status != http.StatusOK {
		t.Errorf("GET %s: nginx %d, ssehub %d, want 200", path, got.status, want.status)
		return
	}
	if string(got.body) != string(file) || string(want.body) != string(file) {
		t.Errorf("GET %s: nginx sent %d bytes, ssehub %d, want the %d of %s", path, len(got.body), len(want.body), len(file), name)
	}
	for _, h := range demoPolicyHeaders {
		if g, w := got.header.Values(h), want.header.Values(h); len(w) != 1 || !slices.Equal(g, w) {
			t.Errorf("GET %s: nginx's %s %q, want ssehub's %q", path, h, g, w)
		}
	}
	if g, w := got.header.Values("Content-Type"), want.header.Values("Content-Type"); len(w) != 1 || !slices.Equal(g, w) {
		t.Errorf("GET %s: nginx's Content-Type %q, want ssehub's %q", path, g, w)
	}

	// Asked again with its validator: 304, with the same headers.
	tag := got.header.Get("ETag")
	if tag == "" {
		t.Errorf("GET %s: nginx sent no ETag", path)
		return
	}
	again := getDemo(t, ngx, path, "If-None-Match", tag)
	if again.status != http.StatusNotModified {
		t.Errorf("GET %s with nginx's ETag: %d, want 304", path, again.status)
	}
	for _, h := range demoPolicyHeaders {
		if g, w := again.header.Values(h), want.header.Values(h); !slices.Equal(g, w) {
			t.Errorf("GET %s with its ETag (%d): nginx's %s %q, want ssehub's %q", path, again.status, h, g, w)
		}
	}
	if wantAgain := getDemo(t, base, path, "If-None-Match", want.header.Get("ETag")); wantAgain.status != http.StatusNotModified {
		t.Errorf("GET %s with ssehub's ETag: %d, want 304", path, wantAgain.status)
	} else if g, w := again.header.Values("Content-Type"), wantAgain.header.Values("Content-Type"); !slices.Equal(g, w) {
		t.Errorf("GET %s with its ETag (%d): nginx's Content-Type %q, want ssehub's %q", path, again.status, g, w)
	}

	// A range of it: 206, of the file's own type.
	gotPart, wantPart := getDemo(t, ngx, path, "Range", "bytes=0-0"), getDemo(t, base, path, "Range", "bytes=0-0")
	if gotPart.status != http.StatusPartialContent || wantPart.status != http.StatusPartialContent {
		t.Errorf("GET %s with a Range: nginx %d, ssehub %d, want 206", path, gotPart.status, wantPart.status)
	} else if g, w := gotPart.header.Values("Content-Type"), wantPart.header.Values("Content-Type"); len(w) != 1 || !slices.Equal(g, w) {
		t.Errorf("GET %s with a Range: nginx's Content-Type %q, want ssehub's %q", path, g, w)
	}
}

// checkRedirectsToTheRoot checks that nginx at ngx and ssehub at base
// both redirect GET path to /, with the demo files' headers.
func checkRedirectsToTheRoot(t *testing.T, ngx, base, path string) {
	t.Helper()
	got, want := getDemo(t, ngx, path), getDemo(t, base, path)
	for _, r := range []struct {
		server string
		resp   demoResponse
	}{{"nginx", got}, {"ssehub", want}} {
		u, err := url.Parse(r.resp.header.Get("Location"))
		if err != nil || r.resp.status != http.StatusMovedPermanently ||
			(&url.URL{Path: path}).ResolveReference(u).String() != "/" {
			t.Errorf("%s: GET %s: %d to %q (%v), want 301 to /", r.server, path, r.resp.status, r.resp.header.Get("Location"), err)
		}
	}
	for _, h := range demoPolicyHeaders {
		if g, w := got.header.Values(h), want.header.Values(h); !slices.Equal(g, w) {
			t.Errorf("GET %s (%d): nginx's %s %q, want ssehub's %q", path, got.status, h, g, w)
		}
	}
}

// countFiles counts the files of fsys.
func countFiles(t *testing.T, fsys fs.FS) int {
	t.Helper()
	n := 0
	err := fs.WalkDir(fsys, ".", func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// oneByteRanges is a Range header of n one-byte ranges, the first n bytes.
func oneByteRanges(n int) string {
	specs := make([]string, n)
	for i := range specs {
		specs[i] = fmt.Sprintf("%d-%d", i, i)
	}
	return "bytes=" + strings.Join(specs, ",")
}

// TestNginxDemoBoundsTheRanges: deploy/nginx-demo.conf's max_ranges 16,
// the bound of ssehub's own demo files (internal/handler's
// maxDemoFileRanges). Sixteen ranges of a demo file are a multipart
// 206 of sixteen parts; seventeen, the whole file, 200. Unbounded, a
// request of thousands of one-byte ranges asks for an answer many times
// the file's size, each part with its own head.
func TestNginxDemoBoundsTheRanges(t *testing.T) {
	n := runDemoNginx(t)
	file, err := fs.ReadFile(static.FS, "app.js")
	if err != nil {
		t.Fatal(err)
	}
	const bound = 16
	got := getDemo(t, n.url, "/app.js", "Range", oneByteRanges(bound))
	if got.status != http.StatusPartialContent {
		t.Fatalf("GET /app.js with %d ranges: %d, want 206", bound, got.status)
	}
	if parts := multipartParts(t, got); len(parts) != bound {
		t.Errorf("GET /app.js with %d ranges: %d parts, want %d", bound, len(parts), bound)
	} else {
		for i, p := range parts {
			if p != string(file[i]) {
				t.Errorf("part %d %q, want %q", i, p, file[i])
			}
		}
	}

	base, _ := startMain(t, config.Default())
	for _, server := range []struct{ name, url string }{{"nginx", n.url}, {"ssehub", base}} {
		got = getDemo(t, server.url, "/app.js", "Range", oneByteRanges(bound+1))
		if got.status != http.StatusOK || string(got.body) != string(file) || got.header.Get("Content-Range") != "" {
			t.Errorf("%s: GET /app.js with %d ranges: %d of %d bytes (Content-Range %q), want 200 and the file's %d",
				server.name, bound+1, got.status, len(got.body), got.header.Get("Content-Range"), len(file))
		}
	}
}

// multipartParts returns the bodies of a multipart/byteranges answer.
func multipartParts(t *testing.T, r demoResponse) []string {
	t.Helper()
	mt, params, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" {
		t.Fatalf("Content-Type %q (%v), want multipart/byteranges", r.header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(strings.NewReader(string(r.body)), params["boundary"])
	var parts []string
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return parts
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, string(b))
	}
}
