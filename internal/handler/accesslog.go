package handler

import (
	"context"
	"time"

	"github.com/gin-gonic/gin"
)

// accessLog writes one line per request once it is answered; for a stream
// that is when the stream ends. A detached stream writes its own line when
// it ends (sseStream.close), since its handler returns at the start.
func (h *Handler) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	if _, detached := c.Get(detachedKey); detached {
		return
	}
	if !h.log.Enabled(context.Background(), accessLevel(c.Writer.Status())) {
		return // spare ClientIP and the rest when the line is not written
	}
	h.logAccess(accessInfo{method: c.Request.Method, path: c.Request.URL.Path, remote: c.ClientIP()},
		c.Writer.Status(), c.Writer.Size(), time.Since(start))
}
