package handler

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"math"
	"net/http"
	"net/textproto"
	"path"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
)

// staticFiles serves the demo page's files for GET and HEAD requests that
// no route matched. Another method on a file's path is 405 with Allow:
// GET, HEAD, OPTIONS (a plain OPTIONS 204 with it: methodNotAllowed), as
// on the API's routes (its metrics route is "other", as
// for every request without a route); a path that is no file falls
// through to the next handler. A CORS preflight from an allowed origin
// never gets here: the CORS middleware answers it first, with the same
// Allow.
func (h *Handler) staticFiles(files fs.FS) gin.HandlerFunc {
	if files == nil {
		return func(*gin.Context) {}
	}
	server := http.FileServerFS(files)
	etags := fileETags(files)
	return func(c *gin.Context) {
		r := c.Request
		name, ok := demoFileName(files, r.URL.Path)
		if !ok {
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			c.Header("Allow", demoFileMethods)
			h.methodNotAllowed(c)
			return
		}
		// The page holds the hub's tokens and a Publish button: no
		// other site may frame it (clickjacking), and it runs the
		// scripts of its own origin only, never an inline one.
		c.Header("Content-Security-Policy", demoContentSecurityPolicy)
		c.Header("X-Content-Type-Options", "nosniff")
		if tag := etags[name]; tag != "" {
			// The files are embedded, with no modification time: without
			// a validator a browser fetched each of them again on every
			// load. It asks again (no-cache), and a file unchanged since
			// is a 304 without a body (net/http's, of If-None-Match).
			c.Header("ETag", tag)
			c.Header("Cache-Control", "no-cache")
		}
		if typ, ok := demoFileTypes[path.Ext(name)]; ok && !strings.HasSuffix(r.URL.Path, "/index.html") {
			// The file server keeps a Content-Type already set (but
			// for a 304, and a multipart range's own); the path of
			// index.html by its name is its redirect to "./", with none.
			c.Header("Content-Type", typ)
		}
		dropManyRanges(r.Header)
		dropEmptySuffixRanges(r.Header)
		w := &fileErrorWriter{ResponseWriter: c.Writer}
		server.ServeHTTP(w, r)
		c.Abort()
		if w.status != 0 {
			// net/http's answer is text/plain (416) or empty (412).
			c.Writer.Header().Del("Content-Type")
			abortJSON(c, w.status, cmp.Or(strings.TrimSpace(w.text.String()), strings.ToLower(http.StatusText(w.status))))
		}
	}
}

// demoContentSecurityPolicy is the Content-Security-Policy of the demo
// files. Everything comes from the page's own origin but its requests
// (connect-src): the Cross-origin and Hub panels stream from any service
// URL the reader gives them. Vue's global build compiles the panels'
// templates with new Function ('unsafe-eval'); no inline script or style
// runs. The favicon is a data: URL.
const demoContentSecurityPolicy = "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self' http: https:; object-src 'none'; base-uri 'none'; " +
	"form-action 'none'; frame-ancestors 'none'"

// demoFileTypes are the Content-Types of the demo files, by extension:
// those of Go's own table, pinned, as deploy/nginx-demo.conf's types
// block gives them. net/http's file server asks mime.TypeByExtension,
// which takes a host's /etc/mime.types over Go's table where the host has
// no shared-mime-info database; an older one says application/javascript,
// with no charset. A file of another extension (vendor's LICENSE-vue) is
// the file server's to type.
var demoFileTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
}

// maxDemoFileRanges is the most ranges a request for a demo file may ask
// for, as nginx's max_ranges 16 in deploy/nginx-demo.conf.
const maxDemoFileRanges = 16

// dropManyRanges takes the Range out of a request that asks for more than
// maxDemoFileRanges byte ranges: the file is served whole, 200, once, as
// nginx serves it past max_ranges. net/http's file server took any number
// of ranges while they added up to less than the file, each part of its
// multipart answer with a head of its own: a request of thousands of
// one-byte ranges asked for an answer dozens of times the file's size.
// Empty elements of the list ("0-1,,2-3") are no ranges, as net/http
// counts them.
func dropManyRanges(h http.Header) {
	specs, ok := strings.CutPrefix(h.Get("Range"), "bytes=")
	if !ok || strings.Count(specs, ",") < maxDemoFileRanges {
		return
	}
	n := 0
	for spec := range strings.SplitSeq(specs, ",") {
		if strings.TrimSpace(spec) != "" {
			n++
		}
	}
	if n > maxDemoFileRanges {
		h.Del("Range")
	}
}

// dropEmptySuffixRanges takes the suffix ranges of length 0 (bytes=-0) out
// of a request's Range. Such a range selects no byte, and RFC 9110 §14.1.1
// counts it unsatisfiable, but net/http's file server answered it with a
// 206 of no bytes whose Content-Range ends before it starts ("bytes
// 19-18/19"), which a client cannot parse. Beside other ranges it is left
// out; alone, the header is made a range past every file's end, which the
// file server answers 416 with the file's length, as it does any range past
// the end. A range is read as the file server reads it: white space
// around the dash too ("- 0"), and a sign before the length ("-+0").
func dropEmptySuffixRanges(h http.Header) {
	rng := h.Get("Range")
	specs, ok := strings.CutPrefix(rng, "bytes=")
	if !ok || !strings.Contains(specs, "0") {
		return
	}
	kept := make([]string, 0, strings.Count(specs, ",")+1)
	for spec := range strings.SplitSeq(specs, ",") {
		if emptySuffixRange(spec) {
			continue
		}
		kept = append(kept, spec)
	}
	if strings.TrimSpace(strings.Join(kept, "")) == "" {
		kept = []string{strconv.FormatInt(math.MaxInt64, 10) + "-"}
	}
	h.Set("Range", "bytes="+strings.Join(kept, ","))
}

// emptySuffixRange reports whether spec, one range of a Range header's
// list, is a suffix range of length 0 as net/http's file server reads it
// (its parseRange): no first byte, and a last that strconv.ParseInt reads
// as 0, white space (textproto's: space, tab, CR, LF) dropped around the
// range and around each side of its dash.
func emptySuffixRange(spec string) bool {
	first, last, ok := strings.Cut(textproto.TrimString(spec), "-")
	if !ok || textproto.TrimString(first) != "" {
		return false
	}
	last = textproto.TrimString(last)
	if last == "" || last[0] == '-' {
		return false
	}
	n, err := strconv.ParseInt(last, 10, 64)
	return err == nil && n == 0
}

// fileErrorWriter is the writer staticFiles serves a file through: it
// holds back an error the file server answers, a Range past the file's end
// (416) or a precondition that fails (If-Match: 412), whose status and text
// staticFiles then answers as JSON, as every other error, not as net/http's
// text/plain.
type fileErrorWriter struct {
	http.ResponseWriter
	status int // the error's, 0 for none
	text   bytes.Buffer
}

func (w *fileErrorWriter) WriteHeader(status int) {
	if status >= http.StatusBadRequest {
		w.status = status
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *fileErrorWriter) Write(b []byte) (int, error) {
	if w.status != 0 {
		return w.text.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

// demoFileMethods is the Allow of a demo file's path, but for OPTIONS
// (allowOptions adds it).
const demoFileMethods = "GET, HEAD"

// demoFile reports whether urlPath names one of files' files (index.html
// for "/"), as staticFiles serves them; files may be nil: none.
func demoFile(files fs.FS, urlPath string) bool {
	_, ok := demoFileName(files, urlPath)
	return ok
}

// demoFileName is the name in files of the file urlPath names, and whether
// there is one. A path with a slash after a name names no file, as
// /healthz/ names no route: net/http's file server would redirect it to
// "../name", relative to the path as sent, which after an encoded slash
// ("/vendor/LICENSE%2F") points elsewhere.
func demoFileName(files fs.FS, urlPath string) (string, bool) {
	if files == nil || !strings.HasPrefix(urlPath, "/") { // CONNECT host:port names no file
		return "", false
	}
	if urlPath != "/" && strings.HasSuffix(urlPath, "/") {
		return "", false
	}
	name := path.Clean(urlPath)[1:]
	if name == "" {
		name = "index.html"
	}
	st, err := fs.Stat(files, name)
	return name, err == nil && !st.IsDir()
}

// fileETags returns a strong ETag for each of files' files, by name: a
// digest of its content. A file that cannot be read gets none (the file
// server answers for it as it can).
func fileETags(files fs.FS) map[string]string {
	etags := make(map[string]string)
	_ = fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if b, err := fs.ReadFile(files, name); err == nil {
			sum := sha256.Sum256(b)
			etags[name] = `"` + hex.EncodeToString(sum[:16]) + `"`
		}
		return nil
	})
	return etags
}
