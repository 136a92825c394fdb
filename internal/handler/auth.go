package handler

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/stream"
)

// DemoTopics is the pattern of the topics open to anyone, with no token,
// while the demo is on: the demo page publishes and subscribes there.
const DemoTopics = "demo.>"

// openToAll reports whether pattern names only topics under DemoTopics
// with the demo on, so that it needs no token. A wildcard that can match a
// topic outside DemoTopics (">", "*.chat", "demo") is not open.
func (h *Handler) openToAll(pattern string) bool {
	return h.demo.Enabled && stream.Covers(DemoTopics, pattern)
}

// checkPublishToken requires one of the publish tokens in the
// Authorization header to publish to topic; with none configured,
// publishing is off. A topic open to all (openToAll) needs none, and its
// Authorization header is not looked at.
func (h *Handler) checkPublishToken(c *gin.Context, topic string) error {
	if h.openToAll(topic) {
		return nil
	}
	if len(h.hub.PublishTokens) == 0 {
		if h.demo.Enabled {
			return fmt.Errorf("%w (only %s is open without one)", errPublishingOff, DemoTopics)
		}
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

// checkSubscriptionToken is checkSubscribeToken for a subscription to
// patterns: one whose every pattern is open to all (openToAll) needs no
// token; one that names any other pattern does, next to open ones too.
func (h *Handler) checkSubscriptionToken(c *gin.Context, patterns []string) error {
	for _, p := range patterns {
		if h.openToAll(p) {
			continue
		}
		err := h.checkSubscribeToken(c)
		if errors.Is(err, errNoToken) && h.demo.Enabled {
			return fmt.Errorf("%w for %.64q (only %s is open without one)", err, p, DemoTopics)
		}
		return err
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
