package handler

import (
	"context"
	"net/url"
	"strconv"

	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/jwtauth"
	"github.com/ssehub/ssehub/internal/stream"
)

// Broker is what the hub routes need of a broker. The in-memory broker
// (stream.Memory) is one; a NATS JetStream broker shared by several
// instances is the other this seam is for.
type Broker interface {
	// Publish assigns the event its id, encodes it once and hands it to
	// every matching subscriber without waiting for any. A publish whose
	// p.Key its topic saw within stream.IdempotencyWindow stores nothing:
	// it returns the first event's Message with replayed true when p is
	// the same event, else an error wrapping stream.ErrKeyReused.
	Publish(p stream.Publication) (msg *stream.Message, replayed bool, err error)
	// Subscribe registers a subscription to patterns, resuming after
	// lastEventID ("" for live only). Closing the broker ends it: its
	// Ready channel is closed, Take reports it no longer open once what
	// was queued is taken, and Err returns stream.ErrClosed.
	Subscribe(patterns []string, lastEventID string) (stream.Subscription, error)
	// Resubscribe is Subscribe in place of old, a subscription of the
	// broker that ended with stream.ErrResumeOvertaken: the new one takes
	// over the place old keeps among the subscriptions the broker allows
	// (hub.max_subscribers), so that a full broker does not refuse it,
	// and old no longer holds one. ctx bounds what the broker waits for,
	// as the request's context does a NATS broker's Subscribe.
	Resubscribe(ctx context.Context, old stream.Subscription, patterns []string, lastEventID string) (stream.Subscription, error)
	// TopicsPage lists the active topics whose names sort after after,
	// by name, limit of them at most (all for limit 0), and, when more
	// follow, the name to give as after for the next page.
	TopicsPage(after string, limit int) (page []stream.TopicInfo, next string)
	// Stats returns running totals, cheaply.
	Stats() stream.Stats
}

// HubOptions configures the pub/sub hub routes. A nil Broker leaves them
// out.
type HubOptions struct {
	Broker Broker
	// MaxEventBytes caps a publish request body; default 64 KiB.
	MaxEventBytes int
	// MaxTopicsPerSubscription caps the topic parameters of one
	// subscription; default 32.
	MaxTopicsPerSubscription int
	// PublishTokens are the bearer tokens allowed to publish; none means
	// publishing is off. With Demo.Enabled, topics under DemoTopics need
	// none.
	PublishTokens []string
	// SubscribeTokens, when any, are required to subscribe and to list
	// topics. With Demo.Enabled, a subscription whose every pattern lies
	// within DemoTopics needs none.
	SubscribeTokens []string
	// JWT, when set, verifies JSON Web Tokens, accepted beside the static
	// tokens: a JWT grants the topics of its "ssehub" claim, and a stream
	// it allowed ends with `event: expired` when it expires. With JWT set,
	// subscribing needs a token even without SubscribeTokens.
	JWT *jwtauth.Verifier
	// TokenCookie is the cookie a subscriber's token may come in, besides
	// the Authorization header and the access_token query parameter;
	// default "ssehub_token".
	TokenCookie string
}

func (o *HubOptions) setDefaults() {
	if o.TokenCookie == "" {
		o.TokenCookie = "ssehub_token"
	}
	if o.MaxEventBytes <= 0 {
		o.MaxEventBytes = 64 << 10
	}
	if o.MaxTopicsPerSubscription <= 0 {
		o.MaxTopicsPerSubscription = 32
	}
}

// hubRoutes adds the hub's routes to r.
func (h *Handler) hubRoutes(r *gin.Engine) {
	api := r.Group("/api/v1")
	api.POST("/topics/:topic/events", h.publish)
	api.GET("/events", h.discardBody, h.subscribe)
	api.GET("/topics", h.topics)
	api.HEAD("/topics", h.topics)
}

// maxTopicsLimit bounds GET /api/v1/topics' limit: a page's answer stays
// within a few hundred kilobytes.
const maxTopicsLimit = 1000

// topics serves GET /api/v1/topics: the active topics with their
// subscriber counts and last event ids, sorted by name. The query's limit
// (1 to maxTopicsLimit) asks for a page, and after for the topics past a
// name; a page followed by more says so with next, the name to give as
// after. Without limit the answer lists every topic, as it always has.
// With subscribe tokens or JWTs configured it needs a subscribe token or
// a JWT granting ">", demo or not: it names every topic, and the demo
// page does not use it. The answer says Cache-Control: no-store: it
// changes from one moment to the next, and a 200 is cacheable by default
// (RFC 9111), so a shared cache could give the list of a caller whose
// token is in a cookie (no part of a cache's key) to a caller without
// one.
func (h *Handler) topics(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	if err := h.checkSubscribeToken(c); err != nil {
		h.abortWithError(c, err)
		return
	}
	after, limit, err := topicsParams(c.Request.URL.Query())
	if err != nil {
		h.abortWithError(c, err)
		return
	}
	type topicJSON struct {
		Topic       string `json:"topic"`
		Subscribers int    `json:"subscribers"`
		LastEventID string `json:"last_event_id"`
	}
	page, next := h.hub.Broker.TopicsPage(after, limit)
	list := make([]topicJSON, 0, len(page))
	for _, t := range page {
		list = append(list, topicJSON{t.Topic, t.Subscribers, t.LastEventID})
	}
	answer := gin.H{"topics": list}
	if next != "" {
		answer["next"] = next
	}
	c.JSON(200, answer)
}

// topicsParams reads GET /api/v1/topics' after and limit (0 without one).
// after is a topic name, a page's next, or empty for none: one that is no
// topic (a NUL, 5000 bytes, a wildcard) is a 400 naming it, not a bound
// every name is compared with.
func topicsParams(q url.Values) (after string, limit int, err error) {
	if after, _, err = queryParam(q, "after"); err != nil {
		return "", 0, err
	}
	if after != "" {
		if err := stream.ValidateTopic(after); err != nil {
			return "", 0, badRequest("query parameter after: %v: give a topic name, such as a page's next", err)
		}
	}
	v, ok, err := queryParam(q, "limit")
	if err != nil || !ok {
		return after, 0, err
	}
	limit, err = strconv.Atoi(v)
	if err != nil || limit < 1 || limit > maxTopicsLimit || strconv.Itoa(limit) != v {
		return "", 0, badRequest("limit %s: want a whole number from 1 to %d", stream.Quote(v), maxTopicsLimit)
	}
	return after, limit, nil
}
