package handler

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode"

	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/jwtauth"
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

// checkPublishToken requires, to publish to topic, one of the publish
// tokens or a JWT granting topic, in the Authorization header (never the
// query, nor a cookie a page across the web could make a browser send).
// With neither configured, publishing is off. A topic open to all
// (openToAll) needs none, and its Authorization header is not looked at.
func (h *Handler) checkPublishToken(c *gin.Context, topic string) error {
	if h.openToAll(topic) {
		return nil
	}
	if len(h.hub.PublishTokens) == 0 && h.hub.JWT == nil {
		if h.demo.Enabled {
			return fmt.Errorf("%w (only %s is open without one)", errPublishingOff, DemoTopics)
		}
		return errPublishingOff
	}
	token, err := bearerToken(c)
	if err != nil {
		return err
	}
	if token == "" {
		return h.noPublishToken(c)
	}
	if h.publishTokens.allows(token) {
		return nil
	}
	if h.subscribeTokens.allows(token) {
		return errSubscribeTokenPublishing
	}
	claims, err := h.verifyJWT(token)
	if err != nil {
		return err
	}
	if !jwtauth.Allows(claims.SSEHub.Publish, topic) {
		return fmt.Errorf("publishing to %s: %w", stream.Quote(topic), errNotGranted)
	}
	return nil
}

// noPublishToken is the error of a publish without a bearer token. When
// the request has the access_token query parameter or the token cookie,
// where a subscriber may send one, it says those are not read for a
// publish: "a bearer token is required" alone read as if none was sent.
func (h *Handler) noPublishToken(c *gin.Context) error {
	place := ""
	switch {
	case c.Request.URL.Query().Has("access_token"):
		place = "the access_token query parameter"
	case len(c.Request.CookiesNamed(h.hub.TokenCookie)) > 0:
		place = "the " + h.hub.TokenCookie + " cookie"
	default:
		return errNoToken
	}
	return fmt.Errorf("%w in the Authorization header: a publish does not read %s", errNoToken, place)
}

// A static token of one kind used for the other is valid, but not for
// this: 403 with error="insufficient_scope" (RFC 6750 §3.1), as a JWT
// that does not grant the topic, not 401 "not valid", which sent its
// holder looking for a typo.
var (
	errPublishTokenSubscribing  = fmt.Errorf("subscribing: %w: a publish token does not allow subscribing", errNotGranted)
	errSubscribeTokenPublishing = fmt.Errorf("publishing: %w: a subscribe token does not allow publishing", errNotGranted)
)

// subscribingGuarded reports whether subscribing needs a token: subscribe
// tokens or JWTs are configured.
func (h *Handler) subscribingGuarded() bool {
	return len(h.hub.SubscribeTokens) > 0 || h.hub.JWT != nil
}

// checkSubscribeToken requires, when subscribing is guarded, a subscribe
// token, or a JWT granting every topic (">"): GET /api/v1/topics names
// them all.
func (h *Handler) checkSubscribeToken(c *gin.Context) error {
	_, err := h.authorizeSubscription(c, []string{">"})
	return err
}

// checkSubscriptionToken authorizes a subscription to patterns. One whose
// every pattern is open to all (openToAll) needs no token; one that names
// any other pattern, when subscribing is guarded, needs a subscribe token
// or a JWT granting each such pattern. It returns the claims of the JWT
// that allowed it, which expires; nil when none did.
func (h *Handler) checkSubscriptionToken(c *gin.Context, patterns []string) (*jwtauth.Claims, error) {
	i := slices.IndexFunc(patterns, func(p string) bool { return !h.openToAll(p) })
	if i < 0 {
		return nil, nil
	}
	claims, err := h.authorizeSubscription(c, patterns[i:])
	if errors.Is(err, errNoToken) && h.demo.Enabled {
		return nil, fmt.Errorf("%w for %s (only %s is open without one)", err, stream.Quote(patterns[i]), DemoTopics)
	}
	return claims, err
}

// authorizeSubscription checks the request's token for patterns, none of
// them open to all: a subscribe token allows any, a JWT those it grants.
// The claims are those of the JWT that allowed them, nil for none. Of
// several token cookies (requestTokens), the first that allows patterns
// does; when none does, the error names each one's reason, with the
// status of the first's.
func (h *Handler) authorizeSubscription(c *gin.Context, patterns []string) (*jwtauth.Claims, error) {
	if !h.subscribingGuarded() {
		return nil, nil
	}
	tokens, err := h.requestTokens(c)
	if err != nil {
		return nil, err
	}
	if len(tokens) == 0 {
		return nil, errNoToken
	}
	errs := make([]error, 0, len(tokens))
	for _, token := range tokens {
		claims, err := h.authorizeToken(token, patterns)
		if err == nil {
			return claims, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	var rest strings.Builder
	for i, err := range errs[1:] {
		fmt.Fprintf(&rest, "; cookie %d: %v", i+2, err)
	}
	return nil, fmt.Errorf("%d %s cookies, none accepted: cookie 1: %w%s", len(errs), h.hub.TokenCookie, errs[0], rest.String())
}

// authorizeToken checks one token for patterns, as authorizeSubscription.
func (h *Handler) authorizeToken(token string, patterns []string) (*jwtauth.Claims, error) {
	if h.subscribeTokens.allows(token) {
		return nil, nil
	}
	if h.publishTokens.allows(token) {
		return nil, errPublishTokenSubscribing
	}
	claims, err := h.verifyJWT(token)
	if err != nil {
		return nil, err
	}
	for _, p := range patterns {
		if !h.openToAll(p) && !jwtauth.Allows(claims.SSEHub.Subscribe, p) {
			return nil, fmt.Errorf("subscribing to %s: %w", stream.Quote(p), errNotGranted)
		}
	}
	return claims, nil
}

// verifyJWT checks token as a JWT; without JWTs configured, it is simply
// not a valid token.
func (h *Handler) verifyJWT(token string) (*jwtauth.Claims, error) {
	if h.hub.JWT == nil {
		return nil, errBadToken
	}
	claims, err := h.hub.JWT.Verify(token)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadToken, err)
	}
	return claims, nil
}

// maxTokenCookies bounds the token cookies of one request: each may cost
// a signature check. A browser sends one per Domain and Path it was set
// with, a host-only one and one for the parent domain most often.
const maxTokenCookies = 4

// requestTokens returns a subscriber's token: from the Authorization
// header, else the access_token query parameter (EventSource cannot set
// headers), else the JWT cookie (a cross-origin EventSource sends it with
// withCredentials). Of the cookie it returns every value, up to
// maxTokenCookies: a browser sends each cookie of the name whose Domain
// and Path match, one of them perhaps stale, in an order the server
// cannot rely on. None is no token. The access log records neither query
// nor cookies. A header or parameter given twice, or given empty
// (errQueryTokenEmpty, errAuthorizationEmpty), a query token with white
// space in it (errQueryTokenWhiteSpace), a bearer token in both the
// header and the query (errTokenInHeaderAndQuery), more cookies than
// maxTokenCookies, or a cookie on a request a page of another origin
// makes outside CORS (outsideCORS), is a 400 (see queryParam).
func (h *Handler) requestTokens(c *gin.Context) ([]string, error) {
	header, err := bearerToken(c)
	if err != nil {
		return nil, err
	}
	// Not c.Query: see subscribe.
	token, inQuery, err := queryParam(c.Request.URL.Query(), "access_token")
	switch {
	case err != nil:
		return nil, invalidRequest{err}
	case inQuery && token == "":
		return nil, invalidRequest{errQueryTokenEmpty}
	case strings.ContainsFunc(token, unicode.IsSpace):
		return nil, invalidRequest{errQueryTokenWhiteSpace}
	case header != "" && inQuery:
		return nil, invalidRequest{errTokenInHeaderAndQuery}
	case header != "":
		return []string{header}, nil
	case token != "":
		return []string{token}, nil
	}
	cookies := c.Request.CookiesNamed(h.hub.TokenCookie)
	if len(cookies) > 0 && outsideCORS(c.Request) {
		return nil, invalidRequest{badRequest("the %s cookie is not read for a request that a page of another origin makes outside CORS, "+
			"such as a script's, an image's or a frame's: subscribe with EventSource or fetch", h.hub.TokenCookie)}
	}
	if len(cookies) > maxTokenCookies {
		return nil, invalidRequest{badRequest("%d %s cookies: at most %d are read", len(cookies), h.hub.TokenCookie, maxTokenCookies)}
	}
	var tokens []string
	for _, cookie := range cookies {
		if token := h.cookieToken(cookie.Value); token != "" {
			tokens = append(tokens, token)
		}
	}
	return tokens, nil
}

// outsideCORS reports whether r is, by its fetch metadata, a browser's
// request from another origin's page that is not CORS and no top-level
// navigation: a <script>'s, an <img>'s (Sec-Fetch-Mode: no-cors), an
// <iframe>'s. The page reads nothing of the answer, but sees whether it
// ends (the element's error or load event): a refusal does, a stream does
// not. Were the token cookie, which the browser sends with it, read, that
// would tell the page whether the visitor's token grants a topic. A
// request without fetch metadata is no browser's, or an old one's.
func outsideCORS(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
	default: // same-origin, none (the user's own), or no metadata
		return false
	}
	switch r.Header.Get("Sec-Fetch-Mode") {
	case "cors":
		return false
	case "navigate":
		return r.Header.Get("Sec-Fetch-Dest") != "document"
	}
	return true
}

// cookieToken returns the token of a cookie's value raw, with its percent
// escapes decoded (a page's encodeURIComponent), but not '+' as a space,
// which Gin's c.Cookie decodes as in a form: a static token in base64 has
// '+', valid as it is in a cookie. A value that is a static token as it
// is ("p%41ss") is taken so, not decoded into another; one that does not
// unescape is taken as it is too.
func (h *Handler) cookieToken(raw string) string {
	if h.subscribeTokens.allows(raw) || h.publishTokens.allows(raw) {
		return raw
	}
	if token, err := url.PathUnescape(raw); err == nil {
		return token
	}
	return raw
}

// bearerToken returns the token of an `Authorization: Bearer` header, ""
// for none or another scheme's, or a 400 (invalidRequest) when the
// request has two Authorization headers, or one that names Bearer without
// a space and a token after it (RFC 6750 §2.1): "Bearer<TAB>token", or a
// "Bearer" a client gave no token, was taken as no header, so that the
// answer said a token was required, or the query's or cookie's was used.
// So is a token with white space in it (errBearerWhiteSpace), and an
// empty header (errAuthorizationEmpty).
func bearerToken(c *gin.Context) (string, error) {
	header, given, err := oneValue("header", "Authorization", c.Request.Header.Values("Authorization"))
	if err != nil {
		return "", invalidRequest{err}
	}
	if given && header == "" {
		return "", invalidRequest{errAuthorizationEmpty}
	}
	end := strings.IndexAny(header, " \t")
	if end < 0 {
		end = len(header)
	}
	if !strings.EqualFold(header[:end], "Bearer") {
		return "", nil
	}
	rest := header[end:]
	token := strings.TrimLeft(rest, " ")
	if len(token) == len(rest) || token == "" { // no space after "Bearer", or nothing but spaces
		return "", invalidRequest{errBearerWithoutToken}
	}
	if strings.ContainsFunc(token, unicode.IsSpace) {
		return "", invalidRequest{errBearerWhiteSpace}
	}
	return token, nil
}

var (
	// errAuthorizationEmpty refuses an Authorization header with no
	// value: a client's token left unset (-H "Authorization: $TOKEN").
	// It was taken as no header, and the query's token or the cookie's
	// answered for a request whose client meant to send its own.
	errAuthorizationEmpty = badRequest("header Authorization is empty: give it a bearer token (Bearer and the token), or leave the header out")
	// errQueryTokenEmpty refuses an access_token query parameter with no
	// value, as errAuthorizationEmpty an empty header.
	errQueryTokenEmpty = badRequest("query parameter access_token is empty: give it the token, or leave it out")
	// errTokenInHeaderAndQuery refuses a bearer token sent both in the
	// Authorization header and in the access_token query parameter: a
	// client must use one method (RFC 6750 §2), and the server answers
	// one that used more invalid_request (§3.1). The header's was taken
	// and the query's ignored without a word, though the two may differ.
	// The cookie, which a browser adds on its own, is no such method: a
	// header's or query's token comes before it.
	errTokenInHeaderAndQuery = badRequest("a bearer token in both the Authorization header and the access_token query parameter: send it in one")
	// errBearerWithoutToken refuses an Authorization header that names
	// Bearer but gives no token after a space (bearerToken).
	errBearerWithoutToken = badRequest(`header Authorization: "Bearer" must be followed by a space and the token`)
	// errBearerWhiteSpace refuses a bearer token with white space in it,
	// a tab after the spaces or a second word: a b64token has none (RFC
	// 6750 §2.1), nor has any token ssehub accepts (a static token with
	// any is refused at load, a JWT is base64url and dots). It was
	// checked as a token, a 401 "not valid" for a malformed header.
	errBearerWhiteSpace = badRequest("header Authorization: the bearer token holds white space, which no token has")
	// errQueryTokenWhiteSpace refuses an access_token query parameter with
	// white space in it, as errBearerWhiteSpace a header's: the query is
	// form-encoded (RFC 6750 §2.3), so a static token in base64 pasted
	// into it as it is arrives with a space for each '+', and was answered
	// 401 "not valid", the '+' never named.
	errQueryTokenWhiteSpace = badRequest("query parameter access_token: the token holds white space, which no token has " +
		"(a + in a query reads as a space: write it %%2B)")
)

// tokenSet holds the SHA-256 digests of the allowed static tokens.
type tokenSet [][sha256.Size]byte

func newTokenSet(tokens []string) tokenSet {
	set := make(tokenSet, len(tokens))
	for i, t := range tokens {
		set[i] = sha256.Sum256([]byte(t))
	}
	return set
}

// allows compares token with every allowed token in constant time. It
// compares their SHA-256 digests, not the tokens: ConstantTimeCompare
// returns at once for lengths that differ, and its time would tell the
// length of the tokens configured.
func (set tokenSet) allows(token string) bool {
	if token == "" {
		return false
	}
	sum := sha256.Sum256([]byte(token))
	ok := 0
	for i := range set {
		ok |= subtle.ConstantTimeCompare(sum[:], set[i][:])
	}
	return ok == 1
}
