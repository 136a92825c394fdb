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
// never gets here: the CORS middleware answers it first.
func (h *Handler) staticFiles(files fs.FS) gin.HandlerFunc {
	if files == nil {
		return func(*gin.Context) {}
	}
	server := http.FileServerFS(files)
	return func(c *gin.Context) {
		r := c.Request
		if !strings.HasPrefix(r.URL.Path, "/") { // CONNECT host:port names no file
			return
		}
		name := path.Clean(r.URL.Path)[1:]
		if name == "" {
			name = "index.html"
		}
		if st, err := fs.Stat(files, name); err != nil || st.IsDir() {
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			c.Header("Allow", "GET, HEAD")
			h.methodNotAllowed(c)
			return
		}
		server.ServeHTTP(c.Writer, r)
		c.Abort()
	}
}
