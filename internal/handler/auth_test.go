package handler

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

// demoHubServer is a hub server with the demo on or off, publish tokens
// configured or not, and subscribe token "reader" when readers is true.
func demoHubServer(t *testing.T, demo, publishTokens, readers bool) *testServer {
	t.Helper()
	opts, _ := hubOptions(t, stream.MemoryOptions{})
	opts.Demo.Enabled = demo
	if !publishTokens {
		opts.Hub.PublishTokens = nil
	}
	if readers {
		opts.Hub.SubscribeTokens = []string{"reader"}
	}
	return newTestServer(t, opts)
}

// publishWith posts {"data": 1} to topic with the Authorization header
// auth ("" for none).
func (ts *testServer) publishWith(t *testing.T, topic, auth string) *http.Response {
	t.Helper()
	header := map[string]string{"Content-Type": "application/json"}
	if auth != "" {
		header["Authorization"] = auth
	}
	return ts.do(t, "POST", "/api/v1/topics/"+topic+"/events", strings.NewReader(`{"data":1}`), header)
}

func TestDemoTopicsPublishWithoutToken(t *testing.T) {
	tests := []struct {
		name                string
		demo, publishTokens bool
		topic, auth         string
		status              int
		mentions            string
	}{
		{"demo on", true, true, "demo.chat", "", 201, ""},
		{"demo on, deeper", true, true, "demo.a.b", "", 201, ""},
		{"demo on, publishing off", true, false, "demo.chat", "", 201, ""},
		{"demo on, a wrong token is not looked at", true, true, "demo.chat", "Bearer wrong", 201, ""},
		{"demo on, another topic", true, true, "orders.x", "", 401, "token"},
		{"demo on, the topic demo itself", true, true, "demo", "", 401, "token"},
		{"demo on, a look-alike", true, true, "demos.chat", "", 401, "token"},
		{"demo on, another topic, publishing off", true, false, "orders.x", "", 403, "demo.>"},
		{"demo on, a wildcard is still no topic", true, true, "demo.*", "", 400, "demo.*"},
		{"demo off", false, true, "demo.chat", "", 401, "token"},
		{"demo off, publishing off", false, false, "demo.chat", "", 403, "publish_tokens"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := demoHubServer(t, tt.demo, tt.publishTokens, false)
			resp := ts.publishWith(t, tt.topic, tt.auth)
			if tt.status == http.StatusCreated {
				if resp.StatusCode != http.StatusCreated {
					t.Fatalf("publish to %s: %d, want 201", tt.topic, resp.StatusCode)
				}
				return
			}
			if msg := wantJSONError(t, resp, tt.status); !strings.Contains(msg, tt.mentions) {
				t.Errorf("error %q does not mention %q", msg, tt.mentions)
			}
			if got := ts.h.hub.Broker.Stats().Published; got != 0 {
				t.Errorf("a refused publish changed the hub: %d published", got)
			}
		})
	}
	t.Run("a token still publishes anywhere", func(t *testing.T) {
		ts := demoHubServer(t, true, true, false)
		ts.publish(t, "orders.x", `{"data":1}`)
		ts.publish(t, "demo.chat", `{"data":1}`)
	})
}

// TestDemoTopicsSubscribeWithoutToken subscribes, with subscribe tokens
// configured and no token sent, to patterns in and out of demo.>: only a
// subscription whose every pattern is under demo.> is let in, and only
// while the demo is on.
func TestDemoTopicsSubscribeWithoutToken(t *testing.T) {
	tests := []struct {
		query string
		open  bool // with the demo on
	}{
		{"topic=demo.>", true},
		{"topic=demo.chat", true},
		{"topic=demo.*", true},
		{"topic=demo.*&topic=demo.a.>", true},
		{"topic=demo.>&access_token=wrong", true},
		{"topic=>", false},
		{"topic=*", false},
		{"topic=*.chat", false},
		{"topic=*.>", false},
		{"topic=demo", false},
		{"topic=demos.chat", false},
		{"topic=orders.x", false},
		{"topic=demo.>&topic=orders.x", false},
		{"topic=demo.chat&topic=>", false},
	}
	for _, demo := range []bool{true, false} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("demo %v %s", demo, tt.query), func(t *testing.T) {
				ts := demoHubServer(t, demo, true, true)
				resp := ts.do(t, "GET", "/api/v1/events?"+tt.query, nil, nil)
				if demo && tt.open {
					wantStreamHeaders(t, resp)
					return
				}
				msg := wantJSONError(t, resp, http.StatusUnauthorized)
				if !strings.Contains(msg, "token") {
					t.Errorf("error %q does not mention the token", msg)
				}
				if demo && !strings.Contains(msg, "demo.>") {
					t.Errorf("error %q does not say demo.> is open", msg)
				}
			})
		}
	}
	t.Run("a token still subscribes to anything", func(t *testing.T) {
		ts := demoHubServer(t, true, true, true)
		ts.subscribe(t, "topic=demo.>&topic=orders.x&access_token=reader", nil)
		ts.subscribe(t, "topic=>", map[string]string{"Authorization": "Bearer reader"})
	})
}

// TestDemoTopicsListNeedsTheToken: the topic list names every topic, so it
// keeps needing the subscribe token with the demo on.
func TestDemoTopicsListNeedsTheToken(t *testing.T) {
	ts := demoHubServer(t, true, true, true)
	wantJSONError(t, ts.do(t, "GET", "/api/v1/topics", nil, nil), http.StatusUnauthorized)
	if resp := ts.do(t, "GET", "/api/v1/topics", nil, map[string]string{"Authorization": "Bearer reader"}); resp.StatusCode != http.StatusOK {
		t.Errorf("topics with the token: %d", resp.StatusCode)
	}
}

// TestDemoHubWithoutAnyToken is the demo page's round trip on a hub with
// tokens configured: subscribe to demo.> and publish to demo.chat, neither
// with a token, and the event arrives.
func TestDemoHubWithoutAnyToken(t *testing.T) {
	ts := demoHubServer(t, true, true, true)
	p := ts.subscribe(t, "topic=demo.>", nil)
	resp := ts.publishWith(t, "demo.chat", "")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("publish: %d", resp.StatusCode)
	}
	if got := next(t, p); got.Data != "1" {
		t.Errorf("event %+v, want data 1", got)
	}
}

// A static token used for the other action is valid, but not for this:
// 403 insufficient_scope saying so (RFC 6750 §3.1), as a JWT that does not
// grant the topic is, not 401 "not valid". A token the server does not
// know stays 401 invalid_token. With JWTs configured too, the same.
func TestStaticTokenOfTheOtherKindIs403(t *testing.T) {
	for _, withJWT := range []bool{false, true} {
		t.Run(fmt.Sprintf("jwt %v", withJWT), func(t *testing.T) {
			opts, _ := hubOptions(t, stream.MemoryOptions{}) // publish tokens "other" and testToken
			opts.Hub.SubscribeTokens = []string{"reader"}
			if withJWT {
				opts.Hub.JWT = jwtOptions(t).Hub.JWT
			}
			ts := newTestServer(t, opts)
			check := func(what string, resp *http.Response, status int, says, challenge string) {
				t.Helper()
				msg := wantJSONError(t, resp, status)
				if !strings.Contains(msg, says) {
					t.Errorf("%s: error %q, want it to say %q", what, msg, says)
				}
				if strings.Contains(msg, testToken) || strings.Contains(msg, "reader") {
					t.Errorf("%s: error %q repeats the token", what, msg)
				}
				if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="ssehub", error="`+challenge+`"` {
					t.Errorf("%s: WWW-Authenticate %q, want error=%q", what, got, challenge)
				}
			}
			const noSub = "a publish token does not allow subscribing"
			check("subscribe, publish token in the header", ts.do(t, "GET", "/api/v1/events?topic=a", nil, bearer(testToken)), 403, noSub, "insufficient_scope")
			check("subscribe, publish token in the query", ts.do(t, "GET", "/api/v1/events?topic=a&access_token=other", nil, nil), 403, noSub, "insufficient_scope")
			check("topics, publish token", ts.do(t, "GET", "/api/v1/topics", nil, bearer(testToken)), 403, noSub, "insufficient_scope")
			check("publish, subscribe token", ts.publishWith(t, "a", "Bearer reader"), 403, "a subscribe token does not allow publishing", "insufficient_scope")
			check("subscribe, unknown token", ts.do(t, "GET", "/api/v1/events?topic=a", nil, bearer("wrong")), 401, "not valid", "invalid_token")
			check("publish, unknown token", ts.publishWith(t, "a", "Bearer wrong"), 401, "not valid", "invalid_token")

			// Each still does what it is for.
			ts.subscribe(t, "topic=a", bearer("reader"))
			if resp := ts.publishWith(t, "a", "Bearer "+testToken); resp.StatusCode != http.StatusCreated {
				t.Errorf("publish with a publish token: %d", resp.StatusCode)
			}
		})
	}
}

// A token in the cookie is taken as the client sent it: a static token
// (base64 has '+', '/' and '=', all valid in a cookie's value) sent raw
// must not have its '+' read as a space, as form decoding does; one that
// a page percent-encoded (encodeURIComponent) still works. So does a
// token holding what reads as an escape ("%41"), sent raw.
func TestTokenCookieIsTakenAsSent(t *testing.T) {
	opts, _ := hubOptions(t, stream.MemoryOptions{})
	opts.Hub.SubscribeTokens = []string{"r+e/a=d", "p%41ss"}
	ts := newTestServer(t, opts)
	for _, cookie := range []string{
		"ssehub_token=r+e/a=d", "ssehub_token=r%2Be%2Fa%3Dd", `ssehub_token="r+e/a=d"`,
		"ssehub_token=p%41ss", "ssehub_token=p%2541ss",
	} {
		resp := ts.do(t, "GET", "/api/v1/events?topic=a", nil, map[string]string{"Cookie": cookie})
		if resp.StatusCode != http.StatusOK {
			t.Errorf("Cookie: %s: status %d, want the stream", cookie, resp.StatusCode)
		}
		resp.Body.Close()
	}
	resp := ts.do(t, "GET", "/api/v1/events?topic=a", nil, map[string]string{"Cookie": "ssehub_token=r e/a=d"})
	wantJSONError(t, resp, http.StatusUnauthorized)
}

// TestBadTopicIs400BeforeTheToken: a topic or pattern that can never be
// one is a 400 naming it, whatever the token and whether publishing is on,
// on publish as on subscribe: whether a token is needed at all depends on
// the topic (the demo topics), so it is read first. A client that mistyped
// a topic was told "publishing is off" or "a token is required", and fixed
// the wrong thing.
func TestBadTopicIs400BeforeTheToken(t *testing.T) {
	for _, demo := range []bool{true, false} {
		for _, publishTokens := range []bool{true, false} {
			for _, auth := range []string{"", "Bearer wrong"} {
				for _, topic := range []string{"", "a..b", "orders.*", "demo..chat", "demo.chat.", "%20"} {
					t.Run(fmt.Sprintf("demo %v, publish tokens %v, auth %q, publish to %q", demo, publishTokens, auth, topic), func(t *testing.T) {
						ts := demoHubServer(t, demo, publishTokens, true)
						msg := wantJSONError(t, ts.publishWith(t, topic, auth), http.StatusBadRequest)
						if !strings.Contains(msg, "topic") {
							t.Errorf("error %q does not name the topic", msg)
						}
					})
				}
				t.Run(fmt.Sprintf("demo %v, publish tokens %v, auth %q, subscribe", demo, publishTokens, auth), func(t *testing.T) {
					ts := demoHubServer(t, demo, publishTokens, true)
					header := map[string]string{}
					if auth != "" {
						header["Authorization"] = auth
					}
					wantJSONError(t, ts.do(t, "GET", "/api/v1/events?topic=a..b", nil, header), http.StatusBadRequest)
				})
			}
		}
	}
}

// A tokenSet allows a token only when it is one of those allowed, whole:
// never a prefix, an extension, another case or an empty token.
func TestTokenSetAllowsOnlyAWholeToken(t *testing.T) {
	allowed := newTokenSet([]string{"first-token", "second-token-longer"})
	for token, want := range map[string]bool{
		"first-token": true, "second-token-longer": true,
		"": false, "first": false, "first-token-x": false, "FIRST-TOKEN": false, "second-token": false,
	} {
		if got := allowed.allows(token); got != want {
			t.Errorf("allows(%q) = %v, want %v", token, got, want)
		}
	}
	if none := newTokenSet(nil); none.allows("") || none.allows("x") {
		t.Error("a token was allowed with no tokens configured")
	}
}

// An Authorization header that names the Bearer scheme but gives no token
// after a space (RFC 6750 §2.1: "Bearer" 1*SP token) is a 400
// invalid_request saying so, to a publisher and a subscriber alike. It was
// taken as no header at all: "Bearer<TAB>token" or a "Bearer" whose token
// a client left out was answered "a bearer token is required", and a
// subscriber's query or cookie was used in its place. The scheme's case
// and the number of spaces do not matter.
func TestBearerHeaderWithoutASpacedToken(t *testing.T) {
	opts := jwtOptions(t)
	opts.Hub.PublishTokens = []string{"writer"}
	ts := newTestServer(t, opts)
	good := mint(t, grant([]string{"a"}, nil, time.Hour))
	const says = `header Authorization: "Bearer" must be followed by a space and the token`
	for _, tt := range []struct {
		name, header string
		status       int
	}{
		{"a tab", "Bearer\t" + good, http.StatusBadRequest},
		{"no token", "Bearer", http.StatusBadRequest},
		{"spaces alone", "Bearer   ", http.StatusBadRequest},
		{"lower case", "bearer " + good, http.StatusOK},
		{"several spaces", "BEARER   " + good, http.StatusOK},
		{"another scheme", "Basic dXNlcjpwdw==", http.StatusOK}, // the query's token counts
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The query holds a good token, which a header of another
			// scheme leaves to count. Beside a bearer token, the query
			// would be a second one (a 400 of its own).
			query := "&access_token=" + good
			if strings.Contains(tt.header, good) {
				query = ""
			}
			resp := ts.do(t, "GET", "/api/v1/events?topic=a"+query, nil, map[string]string{"Authorization": tt.header})
			if tt.status == http.StatusOK {
				wantStreamHeaders(t, resp)
				return
			}
			msg := wantJSONError(t, resp, tt.status)
			if !strings.Contains(msg, says) {
				t.Errorf("subscribing: %q does not say %q", msg, says)
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_request"`) {
				t.Errorf("WWW-Authenticate %q, want invalid_request", got)
			}
			pub := strings.Replace(tt.header, good, "writer", 1)
			if msg := wantJSONError(t, ts.publishWith(t, "a", pub), tt.status); !strings.Contains(msg, says) {
				t.Errorf("publishing: %q does not say %q", msg, says)
			}
		})
	}
}

// A bearer token holds no white space (RFC 6750 §2.1, b64token), and no
// token ssehub accepts can: a static one with any is refused at load
// (auth.*_tokens), a JWT is base64url and dots. A header whose token has
// a tab or a space in it, after the spaces that follow "Bearer", is
// malformed: 400 invalid_request saying so, to a publisher and a
// subscriber alike. It was checked as a token and answered 401 "not
// valid", which sent its holder looking for a wrong token rather than a
// client that builds the header wrong.
func TestBearerTokenWithWhiteSpace(t *testing.T) {
	opts := jwtOptions(t)
	opts.Hub.PublishTokens = []string{"writer"}
	ts := newTestServer(t, opts)
	good := mint(t, grant([]string{"a"}, []string{"a"}, time.Hour))
	const says = `header Authorization: the bearer token holds white space, which no token has`
	for _, tt := range []struct {
		name   string
		header func(token string) string
		status int
	}{
		{"a tab after the space", func(tok string) string { return "Bearer \t" + tok }, http.StatusBadRequest},
		{"a tab after spaces", func(tok string) string { return "bearer   \t" + tok }, http.StatusBadRequest},
		{"a space inside", func(tok string) string { return "Bearer " + tok[:3] + " " + tok[3:] }, http.StatusBadRequest},
		{"a tab inside", func(tok string) string { return "Bearer " + tok[:3] + "\t" + tok[3:] }, http.StatusBadRequest},
		{"a word after", func(tok string) string { return "Bearer " + tok + " extra" }, http.StatusBadRequest},
		{"lower case", func(tok string) string { return "bearer " + tok }, http.StatusOK},
		{"several spaces", func(tok string) string { return "Bearer    " + tok }, http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := ts.do(t, "GET", "/api/v1/events?topic=a", nil, map[string]string{"Authorization": tt.header(good)})
			if tt.status == http.StatusOK {
				wantStreamHeaders(t, resp)
			} else {
				msg := wantJSONError(t, resp, tt.status)
				if !strings.Contains(msg, says) {
					t.Errorf("subscribing: %q does not say %q", msg, says)
				}
				if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_request"`) {
					t.Errorf("WWW-Authenticate %q, want invalid_request", got)
				}
			}
			for _, token := range []string{good, "writer"} {
				resp := ts.publishWith(t, "a", tt.header(token))
				if tt.status == http.StatusOK {
					if resp.StatusCode/100 != 2 {
						t.Errorf("publishing with %q: status %d", tt.header(token), resp.StatusCode)
					}
					resp.Body.Close()
					continue
				}
				if msg := wantJSONError(t, resp, tt.status); !strings.Contains(msg, says) {
					t.Errorf("publishing with %q: %q does not say %q", tt.header(token), msg, says)
				}
			}
		})
	}
}

// The access_token query parameter is form-encoded (RFC 6750 §2.3): a '+'
// in it reads as a space. A static token in base64 ("r+e/a=d") pasted
// into the query as it is arrived as "r e/a=d", and was answered 401 "not
// valid", so that its holder looked for a wrong token, not for a '+' to
// write %2B. A token in the query with white space in it, which no token
// has, is a 400 invalid_request saying so, as in the Authorization header;
// the token percent-encoded opens the stream.
func TestQueryTokenWithWhiteSpace(t *testing.T) {
	opts := jwtOptions(t)
	opts.Hub.SubscribeTokens = []string{"r+e/a=d"}
	ts := newTestServer(t, opts)
	good := mint(t, grant([]string{"a"}, nil, time.Hour))
	const says = "query parameter access_token: the token holds white space, which no token has (a + in a query reads as a space: write it %2B)"
	for _, query := range []string{
		"access_token=r+e/a=d", "access_token=r%20e/a=d", "access_token=" + good[:5] + "%09" + good[5:], "access_token=" + good + "+",
	} {
		resp := ts.do(t, "GET", "/api/v1/events?topic=a&"+query, nil, nil)
		if msg := wantJSONError(t, resp, http.StatusBadRequest); !strings.Contains(msg, says) {
			t.Errorf("%s: %q does not say %q", query, msg, says)
		}
		if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="ssehub", error="invalid_request"` {
			t.Errorf("%s: WWW-Authenticate %q, want invalid_request", query, got)
		}
		resp = ts.do(t, "GET", "/api/v1/topics?"+query, nil, nil)
		wantJSONError(t, resp, http.StatusBadRequest)
	}
	for _, query := range []string{"access_token=r%2Be%2Fa%3Dd", "access_token=" + good} {
		wantStreamHeaders(t, ts.do(t, "GET", "/api/v1/events?topic=a&"+query, nil, nil))
	}
}

// A token sent empty, or sent both in the header and in the query, is a
// malformed request (RFC 6750 §3.1, invalid_request), 400 saying which:
// an empty access_token or Authorization (a client's token variable left
// unset) was taken as none, so that the cookie answered in its place, or
// the answer said a token was required; a token in both places had the
// query's ignored without a word, though the two may differ (RFC 6750 §2:
// one method only). The cookie, which a browser adds on its own, is no
// such method: the header's or the query's token still comes before it.
func TestEmptyOrDoubledTokenIsInvalidRequest(t *testing.T) {
	opts := jwtOptions(t)
	opts.Hub.PublishTokens = []string{"writer"}
	ts := newTestServer(t, opts)
	good := mint(t, grant([]string{"a"}, nil, time.Hour))
	cookie := "ssehub_token=" + good
	for _, tt := range []struct {
		name, query string
		header      map[string]string
		says        string
	}{
		{"empty query", "&access_token=", map[string]string{"Cookie": cookie}, "query parameter access_token is empty"},
		{"empty query alone", "&access_token=", nil, "query parameter access_token is empty"},
		{"empty header", "", map[string]string{"Authorization": "", "Cookie": cookie}, "header Authorization is empty"},
		{"empty header, query token", "&access_token=" + good, map[string]string{"Authorization": ""}, "header Authorization is empty"},
		{"header and query", "&access_token=" + good, bearer(good), "a bearer token in both the Authorization header and the access_token query parameter"},
		{"header and empty query", "&access_token=", bearer(good), "query parameter access_token is empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/api/v1/events?topic=a", "/api/v1/topics?limit=5"} {
				resp := ts.do(t, "GET", path+tt.query, nil, tt.header)
				if msg := wantJSONError(t, resp, http.StatusBadRequest); !strings.Contains(msg, tt.says) {
					t.Errorf("%s: %q does not say %q", path, msg, tt.says)
				}
				if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="ssehub", error="invalid_request"` {
					t.Errorf("%s: WWW-Authenticate %q, want invalid_request", path, got)
				}
			}
		})
	}
	// A publish reads the header alone: an empty one is refused so too.
	resp := ts.do(t, "POST", "/api/v1/topics/a/events", strings.NewReader(`{"data":1}`),
		map[string]string{"Content-Type": "application/json", "Authorization": ""})
	if msg := wantJSONError(t, resp, http.StatusBadRequest); !strings.Contains(msg, "header Authorization is empty") {
		t.Errorf("publishing: %q", msg)
	}
	// The cookie still stands behind a header's or a query's token, and
	// another scheme's header beside a query token is no second token.
	for _, tt := range []struct {
		name, query string
		header      map[string]string
	}{
		{"header over cookie", "", map[string]string{"Authorization": "Bearer " + good, "Cookie": "ssehub_token=bad"}},
		{"query over cookie", "&access_token=" + good, map[string]string{"Cookie": "ssehub_token=bad"}},
		{"cookie alone", "", map[string]string{"Cookie": cookie}},
		{"basic and query", "&access_token=" + good, map[string]string{"Authorization": "Basic dXNlcjpwdw=="}},
	} {
		wantStreamHeaders(t, ts.do(t, "GET", "/api/v1/events?topic=a"+tt.query, nil, tt.header))
	}
}

// A query string that does not parse is a 400 on every route; on those
// that read a token from it (a subscription, the topic list), one that
// holds access_token is a token sent malformed, and its 400 carries the
// challenge RFC 6750 §3.1 gives one, error="invalid_request", as the
// token's other 400s do. It came without any.
func TestMalformedQueryWithTheTokenIsInvalidRequest(t *testing.T) {
	opts := jwtOptions(t)
	ts := newTestServer(t, opts)
	good := mint(t, grant([]string{"a"}, nil, time.Hour))
	for _, tt := range []struct {
		path      string
		challenge bool
	}{
		{"/api/v1/events?topic=a&access_token=" + good + "%zz", true},
		{"/api/v1/events?topic=a&access_token=" + good + "&x=%zz", true},
		{"/api/v1/events?topic=a;%61ccess_token=" + good, true},
		{"/api/v1/topics?access_token=" + good + ";x=1", true},
		{"/api/v1/events?topic=a&x=%zz", false},
		{"/healthz?access_token=" + good + "%zz", false},
	} {
		resp := ts.do(t, "GET", tt.path, nil, nil)
		if msg := wantJSONError(t, resp, http.StatusBadRequest); !strings.Contains(msg, "malformed query string") {
			t.Errorf("%s: %q", tt.path, msg)
		}
		got := resp.Header.Get("WWW-Authenticate")
		if want := `Bearer realm="ssehub", error="invalid_request"`; tt.challenge && got != want {
			t.Errorf("%s: WWW-Authenticate %q, want %q", tt.path, got, want)
		}
		if !tt.challenge && got != "" {
			t.Errorf("%s: WWW-Authenticate %q, want none: no token was sent", tt.path, got)
		}
	}
}
