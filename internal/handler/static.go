package handler

import (
	"io/fs"
	"net/http"
	"path"
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
	return func(c *gin.Context) {
		r := c.Request
		if !demoFile(files, r.URL.Path) {
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			c.Header("Allow", demoFileMethods)
			h.methodNotAllowed(c)
			return
		}
		server.ServeHTTP(c.Writer, r)
		c.Abort()
	}
}

// demoFileMethods is the Allow of a demo file's path, but for OPTIONS
// (allowOptions adds it).
const demoFileMethods = "GET, HEAD"

// demoFile reports whether urlPath names one of files' files (index.html
// for "/"), as staticFiles serves them; files may be nil: none.
func demoFile(files fs.FS, urlPath string) bool {
	if files == nil || !strings.HasPrefix(urlPath, "/") { // CONNECT host:port names no file
		return false
	}
	name := path.Clean(urlPath)[1:]
	if name == "" {
		name = "index.html"
	}
	st, err := fs.Stat(files, name)
	return err == nil && !st.IsDir()
}
