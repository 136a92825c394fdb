package handler

import (
	"crypto/subtle"
	"strings"

	"github.com/gin-gonic/gin"
)

// checkPublishToken requires one of the publish tokens in the
// Authorization header; with none configured, publishing is off.
func (h *Handler) checkPublishToken(c *gin.Context) error {
	if len(h.hub.PublishTokens) == 0 {
		return errPublishingOff
	}
	token := bearerToken(c)
	if token == "" {
		return errNoToken
	}
	if !tokenAllowed(token, h.hub.PublishTokens) {
		return errBadToken
	}
	return nil
}

// checkSubscribeToken requires a subscribe token when any is configured:
// in the Authorization header, or in the access_token query parameter for
// EventSource, which cannot set headers.
func (h *Handler) checkSubscribeToken(c *gin.Context) error {
	if len(h.hub.SubscribeTokens) == 0 {
		return nil
	}
	token := bearerToken(c)
	if token == "" {
		token = c.Query("access_token")
	}
	if token == "" {
		return errNoToken
	}
	if !tokenAllowed(token, h.hub.SubscribeTokens) {
		return errBadToken
	}
	return nil
}

// bearerToken returns the token of an `Authorization: Bearer` header.
func bearerToken(c *gin.Context) string {
	scheme, token, ok := strings.Cut(c.GetHeader("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// tokenAllowed compares token with every allowed token in constant time.
func tokenAllowed(token string, allowed []string) bool {
	ok := 0
	for _, a := range allowed {
		ok |= subtle.ConstantTimeCompare([]byte(token), []byte(a))
	}
	return token != "" && ok == 1
}
