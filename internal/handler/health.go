package handler

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// healthz answers while the process serves requests at all.
func (h *Handler) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz answers 200 while the handler takes new streams, and 503 once
// Close has been called, so a load balancer stops sending clients here
// during shutdown.
func (h *Handler) readyz(c *gin.Context) {
	if h.closing() {
		h.abortWithError(c, errShuttingDown)
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}
