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
		// What a handler around this one said Vary (a compressor's
		// Accept-Encoding, once and for all before it called this one)
		// stays: Vary is set in its place here, and gin-contrib/cors
		// sets its own in place of that.
		hdr := c.Writer.Header()
		outer := hdr.Values("Vary")
		// Every answer varies on Origin, even to a request without it: a
		// cache must not serve one without CORS headers to an allowed
		// origin (Fetch, "CORS protocol and HTTP caches").
		c.Header("Vary", "Origin")
		if len(outer) > 0 {
			keepVary(hdr, outer)
		}
		origin := c.GetHeader("Origin")
		if origin != "" && allow(origin) {
			if c.Request.Method == http.MethodOptions {
				// apply answers it, with the Allow Gin set for a route
				preflightAllow(c, files)
			}
			if len(outer) == 0 {
				apply(c)
				return
			}
			// apply sends a preflight's head itself (AbortWithStatus):
			// Vary is kept as it goes.
			w := c.Writer
			c.Writer = varyKeeper{w, outer}
			apply(c)
			c.Writer = w
			keepVary(hdr, outer)
			return
		}
		if origin != "" && isPreflight(c.Request) && !sameOrigin(c.Request, origin) {
			preflightAllow(c, files) // the refusal's Allow is a plain OPTIONS's too
			h.abortWithError(c, fmt.Errorf("%w: %s", errOriginNotAllowed, stream.Quote(origin)))
		}
	}
}

// keepVary sets hdr's Vary to outer, followed by those of its values
// that outer does not name. Neither slice is written to: outer is the
// header's as it was, and the values gin-contrib/cors sets are its
// configuration's, shared by every request.
func keepVary(hdr http.Header, outer []string) {
	vary := slices.Clip(outer)
	for _, v := range hdr.Values("Vary") {
		if !slices.ContainsFunc(vary, func(o string) bool { return varyNames(o, v) }) {
			vary = append(vary, v)
		}
	}
	hdr["Vary"] = vary
}

// varyKeeper keeps the Vary values of outer (keepVary) when the head is
// sent.
type varyKeeper struct {
	gin.ResponseWriter
	outer []string
}

func (w varyKeeper) WriteHeaderNow() {
	keepVary(w.Header(), w.outer)
	w.ResponseWriter.WriteHeaderNow()
}

// varyNames reports whether the Vary value list names field,
// case-insensitively.
func varyNames(list, field string) bool {
	for name := range strings.SplitSeq(list, ",") {
		if strings.EqualFold(strings.TrimSpace(name), field) {
			return true
		}
	}
	return false
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
