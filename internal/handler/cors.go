package handler

import (
	"fmt"
	"io/fs"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-contrib/cors"
	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/stream"
)

// newCORS builds the CORS middleware. An allowed origin gets
// Access-Control-Allow-Origin echoing it, with Vary: Origin; any other
// origin gets no CORS headers at all, so the browser withholds the response
// from the page, and its preflight is refused with 403. Same-origin
// requests, and requests without Origin, pass, with Vary: Origin as every
// answer.
//
// gin-contrib/cors does the header work for allowed origins. It is not
// handed the refusals: it panics on an empty origin list and answers a
// refused simple request with a bare 403, which would also refuse
// same-origin pages behind a proxy that rewrites Host.
//
// files are the demo page's files (nil: none), whose paths a preflight's
// Allow names GET and HEAD for, as staticFiles does for a plain OPTIONS.
func (h *Handler) newCORS(o CORSOptions, files fs.FS) gin.HandlerFunc {
	allow := o.AllowOrigin
	if allow == nil {
		allow = func(string) bool { return false }
	}
	apply := cors.New(cors.Config{
		AllowOriginFunc:  allow,
		AllowMethods:     []string{http.MethodGet, http.MethodPost, http.MethodOptions},
		AllowHeaders:     allowedHeaders(o.AllowedHeaders),
		ExposeHeaders:    o.ExposedHeaders,
		AllowCredentials: o.AllowCredentials,
		MaxAge:           o.MaxAge,
	})
	return func(c *gin.Context) {
		// Every answer varies on Origin, even to a request without it: a
		// cache must not serve one without CORS headers to an allowed
		// origin (Fetch, "CORS protocol and HTTP caches").
		c.Header("Vary", "Origin")
		origin := c.GetHeader("Origin")
		if origin != "" && allow(origin) {
			if c.Request.Method == http.MethodOptions {
				// apply answers it, with the Allow Gin set for a route
				preflightAllow(c, files)
			}
			apply(c)
			return
		}
		if origin != "" && isPreflight(c.Request) && !sameOrigin(c.Request, origin) {
			preflightAllow(c, files) // the refusal's Allow is a plain OPTIONS's too
			h.abortWithError(c, fmt.Errorf("%w: %s", errOriginNotAllowed, stream.Quote(origin)))
		}
	}
}

// preflightAllow sets the Allow of a preflight's answer to the one a plain
// OPTIONS to its path gets: the methods Gin set for a route, or a demo
// file's, with OPTIONS.
func preflightAllow(c *gin.Context, files fs.FS) {
	if c.Writer.Header().Get("Allow") == "" && demoFile(files, c.Request.URL.Path) {
		c.Header("Allow", demoFileMethods)
	}
	allowOptions(c)
}

// allowedHeaders returns headers, with Authorization added beside "*":
// browsers never count Authorization as covered by "*" (Fetch: it is the
// CORS non-wildcard request-header name), and the publish token comes in
// it, so "*" alone let a page send any header but that one.
func allowedHeaders(headers []string) []string {
	if !slices.Contains(headers, "*") || slices.ContainsFunc(headers, func(h string) bool { return strings.EqualFold(h, "Authorization") }) {
		return headers
	}
	return append(slices.Clip(headers), "Authorization")
}

func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
}

func sameOrigin(r *http.Request, origin string) bool {
	return origin == "http://"+r.Host || origin == "https://"+r.Host
}
