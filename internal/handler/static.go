package handler

import (
	"io/fs"
	"net/http"
	"path"

	"github.com/gin-gonic/gin"
)

// staticFiles serves the demo page's files for GET and HEAD requests that
// no route matched; anything else falls through to the next handler.
func staticFiles(files fs.FS) gin.HandlerFunc {
	if files == nil {
		return func(*gin.Context) {}
	}
	server := http.FileServerFS(files)
	return func(c *gin.Context) {
		r := c.Request
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return
		}
		name := path.Clean(r.URL.Path)[1:]
		if name == "" {
			name = "index.html"
		}
		if st, err := fs.Stat(files, name); err != nil || st.IsDir() {
			return
		}
		server.ServeHTTP(c.Writer, r)
		c.Abort()
	}
}
