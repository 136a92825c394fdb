package handler

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// healthz answers while the process serves requests at all. Neither it
// nor readyz may be stored (noStore).
func (h *Handler) healthz(c *gin.Context) {
	noStore(c)
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readiness is what a broker that depends on a server (NATS) adds to
// /readyz: Ready returns an error while that server is unreachable.
type readiness interface {
	Ready() error
}

// readyz answers 200 while the handler takes new streams, and 503 once
// Close has been called, or while the broker says it is not ready. A
// server that calls Close from its shutdown (cmd/ssehub does) has closed
// its listener first: the 503 then reaches only a request already under
// way, and a load balancer learns of the shutdown from refused connections.
func (h *Handler) readyz(c *gin.Context) {
	noStore(c)
	if h.closing() {
		h.abortWithError(c, errShuttingDown)
		return
	}
	if r, ok := h.hub.Broker.(readiness); ok {
		if err := r.Ready(); err != nil {
			abortUnavailable(c, err)
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

// noStore says a health answer is not to be stored: a 200 is cacheable by
// default (RFC 9111, heuristic freshness), and a cache between a load
// balancer and ssehub would answer its checks with a stale 200 after the
// instance began to fail them.
func noStore(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
}
