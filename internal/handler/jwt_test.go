package handler

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/ssehub/ssehub/internal/jwtauth"
	"github.com/ssehub/ssehub/internal/stream"
	"github.com/ssehub/ssehub/internal/testlog"
)

// jwtTestSecret is the HMAC secret of the JWT test servers.
const jwtTestSecret = "0123456789abcdef0123456789abcdef"

// jwtOptions are hub Options that accept HS256/384/512 JWTs from issuer
// https://auth.test for audience ssehub.test, with the demo off (no topic
// open to all) and no subscribe tokens: subscribing needs a JWT.
func jwtOptions(t *testing.T) Options {
	t.Helper()
	opts, _ := hubOptions(t, stream.MemoryOptions{FirstID: 1})
	opts.Demo.Enabled = false
	v, err := jwtauth.New(jwtauth.Options{HMACSecret: []byte(jwtTestSecret), Issuer: "https://auth.test", Audience: "ssehub.test"})
	if err != nil {
		t.Fatal(err)
	}
	opts.Hub.JWT = v
	return opts
}

// grant returns claims that the JWT test servers accept, granting sub and
// pub, expiring ttl from now.
func grant(sub, pub []string, ttl time.Duration) jwtauth.Claims {
	c := jwtauth.Claims{SSEHub: jwtauth.Grants{Subscribe: sub, Publish: pub}}
	c.Issuer, c.Audience = "https://auth.test", jwt.ClaimStrings{"ssehub.test"}
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(ttl))
	return c
}

// sign signs c with method and key.
func sign(t testing.TB, method jwt.SigningMethod, key any, c jwtauth.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// mint signs c with the test servers' secret, HS256.
func mint(t testing.TB, c jwtauth.Claims) string {
	return sign(t, jwt.SigningMethodHS256, []byte(jwtTestSecret), c)
}

func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

func TestJWTClaimRules(t *testing.T) {
	user42 := []string{"user.42.>", "orders.eu.*"}
	good := grant(user42, nil, time.Hour)
	tests := []struct {
		name   string
		token  func(t *testing.T) string
		query  string
		status int
		says   string // in the error
	}{
		{"granted within a wildcard", func(t *testing.T) string { return mint(t, good) }, "topic=user.42.inbox&topic=user.42.*&topic=orders.eu.fr", 200, ""},
		{"a wider pattern is refused", func(t *testing.T) string { return mint(t, good) }, "topic=user.>", 403, `subscribing to "user.>": not granted by the token`},
		{"the first refused topic is named", func(t *testing.T) string { return mint(t, good) }, "topic=user.42.inbox&topic=user.43.x&topic=user.44", 403, `"user.43.x"`},
		{"a single-segment grant does not cover more", func(t *testing.T) string { return mint(t, good) }, "topic=orders.eu.fr.paris", 403, `"orders.eu.fr.paris"`},
		{"no ssehub claim grants nothing", func(t *testing.T) string { return mint(t, grant(nil, nil, time.Hour)) }, "topic=user.42.inbox", 403, `"user.42.inbox"`},
		{"expired", func(t *testing.T) string { return mint(t, grant(user42, nil, -time.Minute)) }, "topic=user.42.inbox", 401, "expired"},
		{"wrong issuer", func(t *testing.T) string {
			c := grant(user42, nil, time.Hour)
			c.Issuer = "https://evil.test"
			return mint(t, c)
		}, "topic=user.42.inbox", 401, "wrong issuer"},
		{"wrong audience", func(t *testing.T) string {
			c := grant(user42, nil, time.Hour)
			c.Audience = jwt.ClaimStrings{"other.test"}
			return mint(t, c)
		}, "topic=user.42.inbox", 401, "wrong audience"},
		{"missing exp", func(t *testing.T) string {
			c := grant(user42, nil, time.Hour)
			c.ExpiresAt = nil
			return mint(t, c)
		}, "topic=user.42.inbox", 401, "missing (exp)"},
		// Both were said to be "missing (exp)", with exp there.
		{"missing issuer", func(t *testing.T) string {
			c := grant(user42, nil, time.Hour)
			c.Issuer = ""
			return mint(t, c)
		}, "topic=user.42.inbox", 401, "missing (iss)"},
		{"missing audience", func(t *testing.T) string {
			c := grant(user42, nil, time.Hour)
			c.Audience = nil
			return mint(t, c)
		}, "topic=user.42.inbox", 401, "missing (aud)"},
		{"alg none", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good)
		}, "topic=user.42.inbox", 401, "not valid"},
		{"another secret", func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), good)
		}, "topic=user.42.inbox", 401, "signature"},
		{"not a JWT", func(t *testing.T) string { return "opaque" }, "topic=user.42.inbox", 401, "malformed"},
		// The signature's last character with its unused low bits set
		// was taken as the token's own.
		{"a signature spelled another way", func(t *testing.T) string {
			token := mint(t, good)
			const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			return token[:len(token)-1] + string(alphabet[strings.IndexByte(alphabet, token[len(token)-1])^1])
		}, "topic=user.42.inbox", 401, "malformed: a segment that is not base64url in its one canonical form"},
		// golang-jwt read it as a time before 1970: "expired".
		{"exp out of range", func(t *testing.T) string {
			token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
				"exp": 1e300, "iss": "https://auth.test", "aud": "ssehub.test", "ssehub": map[string]any{"subscribe": user42},
			}).SignedString([]byte(jwtTestSecret))
			if err != nil {
				t.Fatal(err)
			}
			return token
		}, "topic=user.42.inbox", 401, "malformed"},
		// It was "malformed" alone, as for a token that does not decode.
		{"a list of topics written as one string", func(t *testing.T) string {
			token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
				"exp": time.Now().Add(time.Hour).Unix(), "iss": "https://auth.test", "aud": "ssehub.test", "ssehub": map[string]any{"subscribe": "user.42.>"},
			}).SignedString([]byte(jwtTestSecret))
			if err != nil {
				t.Fatal(err)
			}
			return token
		}, "topic=user.42.inbox", 401, "malformed: claim ssehub.subscribe is a string, not a list of strings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, jwtOptions(t))
			token := tt.token(t)
			resp := ts.do(t, "GET", "/api/v1/events?"+tt.query, nil, bearer(token))
			if tt.status == 200 {
				wantStreamHeaders(t, resp)
				return
			}
			msg := wantJSONError(t, resp, tt.status)
			if !strings.Contains(msg, tt.says) {
				t.Errorf("error %q does not say %q", msg, tt.says)
			}
			want := `error="invalid_token"`
			if tt.status == http.StatusForbidden {
				want = `error="insufficient_scope"` // RFC 6750 §3.1
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, want) {
				t.Errorf("WWW-Authenticate %q, want %s", got, want)
			}
			if strings.Contains(msg, token) {
				t.Errorf("error %q repeats the token", msg)
			}
		})
	}
}

func TestJWTPublishRules(t *testing.T) {
	ts := newTestServer(t, jwtOptions(t))
	token := mint(t, grant(nil, []string{"orders.>"}, time.Hour))
	if resp := ts.publishWith(t, "orders.eu.1", "Bearer "+token); resp.StatusCode != http.StatusCreated {
		t.Errorf("granted publish: %d", resp.StatusCode)
	}
	resp := ts.publishWith(t, "payments.1", "Bearer "+token)
	msg := wantJSONError(t, resp, http.StatusForbidden)
	if !strings.Contains(msg, `publishing to "payments.1": not granted`) {
		t.Errorf("refusal %q does not name the topic", msg)
	}
	if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="ssehub", error="insufficient_scope"` {
		t.Errorf("WWW-Authenticate %q, want insufficient_scope", got)
	}
	// A subscribe grant is no publish grant.
	reader := mint(t, grant([]string{"orders.>"}, nil, time.Hour))
	wantJSONError(t, ts.publishWith(t, "orders.eu.1", "Bearer "+reader), http.StatusForbidden)
	expired := mint(t, grant(nil, []string{"orders.>"}, -time.Minute))
	wantJSONError(t, ts.publishWith(t, "orders.eu.1", "Bearer "+expired), http.StatusUnauthorized)
	// The static publish token still publishes anywhere.
	ts.publish(t, "payments.1", `{"data": 1}`)
	// The hub's own event types cannot be published.
	resp = ts.do(t, "POST", "/api/v1/topics/orders.1/events", strings.NewReader(`{"event":"expired","data":1}`),
		map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"})
	wantJSONError(t, resp, http.StatusBadRequest)
}

// TestJWTPublicKeyOnly checks a server that has only a public key: its
// tokens pass, and an HS256 token signed with the public key's own bytes
// (which a careless verifier would take as the HMAC secret) does not.
func TestJWTPublicKeyOnly(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	key, err := jwtauth.ParsePublicKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jwtauth.New(jwtauth.Options{PublicKey: key, Algorithms: []string{"EdDSA", "HS256"}}); err == nil {
		t.Error("HS256 pinned with only a public key: accepted")
	}
	if _, err := jwtauth.New(jwtauth.Options{PublicKey: key, Algorithms: []string{"none"}}); err == nil {
		t.Error(`"none" pinned: accepted`)
	}
	opts := jwtOptions(t)
	opts.Hub.JWT, err = jwtauth.New(jwtauth.Options{PublicKey: key, Issuer: "https://auth.test", Audience: "ssehub.test"})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, opts)
	c := grant([]string{"a.>"}, nil, time.Hour)
	wantStreamHeaders(t, ts.do(t, "GET", "/api/v1/events?topic=a.b", nil, bearer(sign(t, jwt.SigningMethodEdDSA, priv, c))))
	for _, forged := range []string{
		sign(t, jwt.SigningMethodHS256, pemBytes, c),
		sign(t, jwt.SigningMethodHS256, []byte(pub), c),
	} {
		wantJSONError(t, ts.do(t, "GET", "/api/v1/events?topic=a.b", nil, bearer(forged)), http.StatusUnauthorized)
	}
}

// TestJWTPinnedAlgorithms checks that an algorithm the key fits but the
// configuration does not list is refused.
func TestJWTPinnedAlgorithms(t *testing.T) {
	opts := jwtOptions(t)
	var err error
	long := jwtTestSecret + jwtTestSecret // HS512 takes 64 bytes or more
	opts.Hub.JWT, err = jwtauth.New(jwtauth.Options{HMACSecret: []byte(long), Algorithms: []string{"HS512"}, Issuer: "https://auth.test", Audience: "ssehub.test"})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, opts)
	c := grant([]string{"a"}, nil, time.Hour)
	wantStreamHeaders(t, ts.do(t, "GET", "/api/v1/events?topic=a", nil, bearer(sign(t, jwt.SigningMethodHS512, []byte(long), c))))
	msg := wantJSONError(t, ts.do(t, "GET", "/api/v1/events?topic=a", nil, bearer(mint(t, c))), http.StatusUnauthorized)
	if !strings.Contains(msg, "algorithm") {
		t.Errorf("refusal %q does not blame the algorithm", msg)
	}
}

// TestJWTTokenSources subscribes with the token in the header, the query
// and the cookie, and checks that no log line holds it.
func TestJWTTokenSources(t *testing.T) {
	var logs testlog.Buffer
	opts := jwtOptions(t)
	opts.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Hub.TokenCookie = "hub_jwt"
	ts := newTestServer(t, opts)
	for _, source := range []string{"header", "query", "cookie"} {
		token := mint(t, grant([]string{"a." + source}, nil, time.Hour))
		query, header := "topic=a."+source, map[string]string{}
		switch source {
		case "header":
			header["Authorization"] = "Bearer " + token
		case "query":
			query += "&access_token=" + url.QueryEscape(token)
		case "cookie":
			header["Cookie"] = "other=1; hub_jwt=" + token
		}
		p := ts.subscribe(t, query, header)
		id := ts.publish(t, "a."+source, `{"data": "`+source+`"}`)
		if ev := next(t, p); ev.ID != id || ev.Data != source {
			t.Errorf("%s: got %+v, want id %s", source, ev, id)
		}
		// The same token in the default cookie's name is not read.
		if source == "cookie" {
			resp := ts.do(t, "GET", "/api/v1/events?topic=a.cookie", nil, map[string]string{"Cookie": "ssehub_token=" + token})
			wantJSONError(t, resp, http.StatusUnauthorized)
		}
	}
	ts.h.Close() // end the streams: their access lines are written then
	ts.Close()
	waitDrained(t, ts.h)
	out := logs.String()
	if n := strings.Count(out, "msg=request") + strings.Count(out, `msg="stream ended"`); n < 6 {
		t.Errorf("%d access and stream lines, want at least 6:\n%s", n, out)
	}
	if strings.Contains(out, "eyJ") {
		t.Errorf("a token reached the log:\n%s", out)
	}
}

// TestTokenSourcesPrecedence: a subscriber's token is the Authorization
// header's or the access_token query parameter's, else the cookie's: the
// cookie is not looked at beside either, so a bad one there refuses the
// request and a good one there does not save it. A token in both the
// header and the query is a 400 (TestEmptyOrDoubledTokenIsInvalidRequest).
func TestTokenSourcesPrecedence(t *testing.T) {
	opts := jwtOptions(t)
	ts := newTestServer(t, opts)
	good := url.QueryEscape(mint(t, grant([]string{"a"}, nil, time.Hour)))
	const bad = "not-a-token"
	tests := []struct {
		name, query, header, cookie string
		want                        int
	}{
		{"header and query", bad, good, "", http.StatusBadRequest},
		{"header over cookie", "", good, bad, http.StatusOK},
		{"query over cookie", good, "", bad, http.StatusOK},
		{"a bad header", "", bad, good, http.StatusUnauthorized},
		{"a bad query", bad, "", good, http.StatusUnauthorized},
		{"a header of another scheme", good, "Basic dXNlcjpwdw==", "", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			query, header := "/api/v1/events?topic=a", map[string]string{}
			if tt.query != "" {
				query += "&access_token=" + tt.query
			}
			switch {
			case strings.HasPrefix(tt.header, "Basic "):
				header["Authorization"] = tt.header
			case tt.header != "":
				header["Authorization"] = "Bearer " + tt.header
			}
			if tt.cookie != "" {
				header["Cookie"] = "ssehub_token=" + tt.cookie
			}
			resp := ts.do(t, "GET", query, nil, header)
			defer resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

// TestJWTBesideStaticTokens checks that the static tokens and the demo's
// open topics keep working when JWTs are on.
func TestJWTBesideStaticTokens(t *testing.T) {
	opts := jwtOptions(t)
	opts.Demo.Enabled = true
	opts.Hub.SubscribeTokens = []string{"reader"}
	ts := newTestServer(t, opts)
	ts.subscribe(t, "topic=anything.at.all", bearer("reader"))
	ts.subscribe(t, "topic=demo.>", nil)
	ts.publish(t, "anything", `{"data": 1}`) // the static publish token
	if resp := ts.publishWith(t, "demo.chat", ""); resp.StatusCode != http.StatusCreated {
		t.Errorf("demo publish without a token: %d", resp.StatusCode)
	}
	// A JWT for one topic, next to a demo pattern that needs none.
	token := mint(t, grant([]string{"a"}, nil, time.Hour))
	ts.subscribe(t, "topic=demo.chat&topic=a", bearer(token))
	msg := wantJSONError(t, ts.do(t, "GET", "/api/v1/events?topic=demo.chat&topic=b", nil, bearer(token)), http.StatusForbidden)
	if !strings.Contains(msg, `"b"`) {
		t.Errorf("refusal %q does not name b", msg)
	}
	// Listing every topic needs a static token or a grant of ">".
	wantJSONError(t, ts.do(t, "GET", "/api/v1/topics", nil, bearer(token)), http.StatusForbidden)
	if resp := ts.do(t, "GET", "/api/v1/topics", nil, bearer(mint(t, grant([]string{">"}, nil, time.Hour)))); resp.StatusCode != 200 {
		t.Errorf("topics with a grant of >: %d", resp.StatusCode)
	}
	// Without subscribe tokens, JWTs still guard subscribing.
	wantJSONError(t, newTestServer(t, jwtOptions(t)).do(t, "GET", "/api/v1/events?topic=a", nil, nil), http.StatusUnauthorized)
}

// TestJWTStreamEndsAtExpiryAndResumes runs a subscription until its token
// expires, on fake time: the stream's last event is `event: expired` at
// the expiry, and a new token resumes it with Last-Event-ID, nothing lost.
func TestJWTStreamEndsAtExpiryAndResumes(t *testing.T) {
	skipOnNATS(t, synctestWhy)
	synctest.Test(t, func(t *testing.T) {
		opts := jwtOptions(t)
		var err error
		opts.Hub.JWT, err = jwtauth.New(jwtauth.Options{HMACSecret: []byte(jwtTestSecret), Leeway: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		h, start := New(opts), time.Now()
		defer h.Close()
		client, returned := bubbleServerTimed(t, h)
		// get subscribes and reads the stream as it comes (a pipe holds
		// nothing: a write waits for its reader), until it ends.
		get := func(token, lastID string) <-chan stream.Event {
			req, _ := http.NewRequest("GET", "http://ssehub/api/v1/events?topic=a", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			if lastID != "" {
				req.Header.Set("Last-Event-ID", lastID)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			wantStreamHeaders(t, resp)
			events := make(chan stream.Event, 16)
			go func() {
				defer resp.Body.Close()
				defer close(events)
				p := stream.NewParser(resp.Body)
				for {
					ev, err := nextEvent(p)
					if err != nil {
						return
					}
					events <- ev
				}
			}()
			return events
		}
		publish := func(data string) {
			req, _ := http.NewRequest("POST", "http://ssehub/api/v1/topics/a/events", strings.NewReader(`{"data": "`+data+`"}`))
			req.Header.Set("Authorization", "Bearer "+testToken)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil || resp.StatusCode != http.StatusCreated {
				t.Fatalf("publish %s: %v %v", data, resp, err)
			}
			resp.Body.Close()
		}
		c := grant([]string{"a"}, nil, time.Minute)
		events := get(sign(t, jwt.SigningMethodHS256, []byte(jwtTestSecret), c), "")
		time.Sleep(40 * time.Second) // two heartbeats on the way
		publish("one")
		first := <-events
		if first.Data != "one" {
			t.Fatalf("got %+v, want one", first)
		}
		// The stream ends when the token is no longer accepted: exp plus
		// the leeway, 65s after it opened; the timer that wakes it is the
		// heartbeat's.
		time.Sleep(25*time.Second - time.Nanosecond)
		synctest.Wait()
		select {
		case got := <-returned:
			t.Fatalf("stream ended after %v, before 65s", got)
		default:
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		select {
		case got := <-returned:
			if got != 65*time.Second {
				t.Errorf("stream ended after %v, want 65s", got)
			}
		default:
			t.Fatal("stream still running at 65s")
		}
		publish("two") // while the client has no stream
		var last stream.Event
		for ev := range events {
			last = ev
		}
		if want := start.Add(time.Minute).UTC().Format(time.RFC3339); last.Type != "expired" || last.Data != want {
			t.Errorf("last event %+v, want expired with data %s", last, want)
		}
		events = get(sign(t, jwt.SigningMethodHS256, []byte(jwtTestSecret), grant([]string{"a"}, nil, time.Hour)), first.ID)
		if ev := <-events; ev.Data != "two" || ev.ID == first.ID {
			t.Errorf("after the resume: %+v, want two", ev)
		}
		// An expired token does not open a stream.
		req, _ := http.NewRequest("GET", "http://ssehub/api/v1/events?topic=a", nil)
		req.Header.Set("Authorization", "Bearer "+sign(t, jwt.SigningMethodHS256, []byte(jwtTestSecret), c))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("the expired token: %d, want 401", resp.StatusCode)
		}
	})
}

// TestJWTStreamSendsNothingPastExpiry: a stream ends when its token stops
// being accepted, to the instant, though stream timers fire on a grid
// (grid.go): with a leeway of 100ms that puts the end between two of its
// steps (250ms), an event published 200ms after exp is not sent: the
// stream has already ended with `event: expired`.
func TestJWTStreamSendsNothingPastExpiry(t *testing.T) {
	skipOnNATS(t, synctestWhy)
	synctest.Test(t, func(t *testing.T) {
		opts := jwtOptions(t)
		var err error
		opts.Hub.JWT, err = jwtauth.New(jwtauth.Options{HMACSecret: []byte(jwtTestSecret), Leeway: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		h := New(opts)
		defer h.Close()
		client, returned := bubbleServerTimed(t, h)
		req, _ := http.NewRequest("GET", "http://ssehub/api/v1/events?topic=a", nil)
		req.Header.Set("Authorization", "Bearer "+mint(t, grant([]string{"a"}, nil, time.Minute)))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		wantStreamHeaders(t, resp)
		events := make(chan stream.Event, 16)
		go func() {
			defer close(events)
			p := stream.NewParser(resp.Body)
			for {
				ev, err := nextEvent(p)
				if err != nil {
					return
				}
				events <- ev
			}
		}()
		time.Sleep(time.Minute + 200*time.Millisecond)
		req, _ = http.NewRequest("POST", "http://ssehub/api/v1/topics/a/events", strings.NewReader(`{"data": "late"}`))
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		pub, err := client.Do(req)
		if err != nil || pub.StatusCode != http.StatusCreated {
			t.Fatalf("publish: %v %v", pub, err)
		}
		pub.Body.Close()
		var got []stream.Event
		for ev := range events {
			got = append(got, ev)
		}
		if len(got) == 0 || got[len(got)-1].Type != "expired" {
			t.Fatalf("events %+v: want the last to be expired", got)
		}
		for _, ev := range got {
			if ev.Data == "late" {
				t.Errorf("events %+v: the one published after the token's end was sent", got)
			}
		}
		if d := <-returned; d != time.Minute+100*time.Millisecond {
			t.Errorf("stream ended after %v, want 1m0.1s", d)
		}
	})
}

// TestTokenCookieSentTwice: a browser sends every cookie of the name that
// matches the request, a host-only one and one set with Domain= (or
// another Path) alike, in an order the server cannot rely on. A stale
// token in one of them must not refuse the request when another holds
// one that allows it; with none that does, the answer names each.
func TestTokenCookieSentTwice(t *testing.T) {
	ts := newTestServer(t, jwtOptions(t))
	good := mint(t, grant([]string{"a"}, nil, time.Hour))
	expired := mint(t, grant([]string{"a"}, nil, -time.Hour))
	other := mint(t, grant([]string{"b"}, nil, time.Hour)) // valid, but not for a
	for _, cookie := range []string{
		"ssehub_token=" + expired + "; ssehub_token=" + good,
		"ssehub_token=" + good + "; ssehub_token=" + expired,
		"ssehub_token=" + other + "; x=1; ssehub_token=" + good,
		"ssehub_token=garbage; ssehub_token=" + good,
	} {
		p := ts.subscribe(t, "topic=a", map[string]string{"Cookie": cookie})
		id := ts.publish(t, "a", `{"data": "x"}`)
		if ev := next(t, p); ev.ID != id {
			t.Errorf("Cookie %.40s…: got %+v, want id %s", cookie, ev, id)
		}
	}

	resp := ts.do(t, "GET", "/api/v1/events?topic=a", nil, map[string]string{"Cookie": "ssehub_token=" + expired + "; ssehub_token=garbage"})
	msg := wantJSONError(t, resp, http.StatusUnauthorized)
	if !strings.Contains(msg, "expired") || !strings.Contains(msg, "malformed") || !strings.Contains(msg, "2 ssehub_token cookies") {
		t.Errorf("refusal %q does not name both cookies' reasons", msg)
	}
	if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, "invalid_token") {
		t.Errorf("WWW-Authenticate %q, want invalid_token", got)
	}

	// Each cookie costs a signature check: a request with many is refused
	// before any is checked.
	many := strings.Repeat("ssehub_token="+expired+"; ", maxTokenCookies) + "ssehub_token=" + good
	resp = ts.do(t, "GET", "/api/v1/events?topic=a", nil, map[string]string{"Cookie": many})
	if msg := wantJSONError(t, resp, http.StatusBadRequest); !strings.Contains(msg, "ssehub_token") {
		t.Errorf("refusal %q does not name the cookie", msg)
	}
}

// A publisher's token is read from the Authorization header alone. One
// sent in the access_token query or the token cookie, which a subscriber
// may use, was answered "a bearer token is required", as if none had
// been sent: the answer now says where the token goes, and that the
// place it came in is not read for a publish. It is still 401.
func TestPublishTokenInTheQueryOrCookieSaysWhereItGoes(t *testing.T) {
	ts := newTestServer(t, jwtOptions(t))
	token := mint(t, grant(nil, []string{"a"}, time.Hour))
	for _, tt := range []struct {
		name, query, cookie, says string
	}{
		{"query", "?access_token=" + token, "", "a publish does not read the access_token query parameter"},
		{"cookie", "", "ssehub_token=" + token, "a publish does not read the ssehub_token cookie"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			header := map[string]string{"Content-Type": "application/json"}
			if tt.cookie != "" {
				header["Cookie"] = tt.cookie
			}
			resp := ts.do(t, "POST", "/api/v1/topics/a/events"+tt.query, strings.NewReader(`{"data":1}`), header)
			msg := wantJSONError(t, resp, http.StatusUnauthorized)
			for _, want := range []string{"a bearer token is required in the Authorization header", tt.says} {
				if !strings.Contains(msg, want) {
					t.Errorf("%q does not say %q", msg, want)
				}
			}
			if strings.Contains(msg, token) {
				t.Errorf("%q repeats the token", msg)
			}
		})
	}
}

// A page of another origin can make a browser send the token cookie outside
// CORS: a <script> or <img> (Sec-Fetch-Mode: no-cors), an <iframe>. The
// page reads nothing of the answer, but sees whether it ends: a refusal
// fires the element's error or load event, a stream never does. So the
// answer told that page whether the visitor's cookie grants a topic. Such
// a request is now refused before the cookie is read, the same for any
// cookie; an EventSource or fetch (cors), a top-level navigation and a
// request without fetch metadata read it as before.
func TestTokenCookieUnreadForAnotherSitesNoCORSRequest(t *testing.T) {
	ts := newTestServer(t, jwtOptions(t))
	good := mint(t, grant([]string{"a"}, nil, time.Hour))
	request := func(t *testing.T, cookie, site, mode, dest string) *http.Response {
		header := map[string]string{"Cookie": "ssehub_token=" + cookie}
		if site != "" {
			header["Sec-Fetch-Site"], header["Sec-Fetch-Mode"], header["Sec-Fetch-Dest"] = site, mode, dest
		}
		return ts.do(t, "GET", "/api/v1/events?topic=a", nil, header)
	}
	for _, tt := range []struct{ site, mode, dest string }{
		{"cross-site", "no-cors", "script"},
		{"cross-site", "no-cors", "image"},
		{"same-site", "no-cors", "script"},
		{"cross-site", "navigate", "iframe"},
	} {
		t.Run("refused: "+tt.site+" "+tt.mode+" "+tt.dest, func(t *testing.T) {
			var answers []string
			for _, cookie := range []string{good, "not-a-token"} {
				msg := wantJSONError(t, request(t, cookie, tt.site, tt.mode, tt.dest), http.StatusBadRequest)
				answers = append(answers, msg)
			}
			if answers[0] != answers[1] || !strings.Contains(answers[0], "ssehub_token cookie is not read") {
				t.Errorf("answers %q, want the same, saying the cookie is not read", answers)
			}
			// A same-site page is of another origin, not another site:
			// the answer named a site its own developer found it on.
			if !strings.Contains(answers[0], "a page of another origin") || strings.Contains(answers[0], "site") {
				t.Errorf("answer %q, want it to say a page of another origin, naming no site", answers[0])
			}
		})
	}
	for _, tt := range []struct{ site, mode, dest string }{
		{"cross-site", "cors", "empty"},      // EventSource, withCredentials
		{"same-site", "cors", "empty"},       // the same, from the site's other origin
		{"same-origin", "no-cors", "script"}, // the page could read it anyway
		{"cross-site", "navigate", "document"},
		{"none", "navigate", "document"}, // typed in the address bar
		{"", "", ""},                     // no browser's
	} {
		t.Run("read: "+tt.site+" "+tt.mode+" "+tt.dest, func(t *testing.T) {
			wantStreamHeaders(t, request(t, good, tt.site, tt.mode, tt.dest))
		})
	}
}

// A token was accepted until its exp however far it was, and a stream it
// opened lasted as long: ssehub revokes nothing. With a maximum lifetime
// (auth.jwt.max_lifetime), one that lasts longer from its iat to its exp,
// or has no iat, is a 401 saying so, to a subscriber and a publisher.
func TestJWTMaximumLifetime(t *testing.T) {
	opts := jwtOptions(t)
	var err error
	opts.Hub.JWT, err = jwtauth.New(jwtauth.Options{
		HMACSecret: []byte(jwtTestSecret), Issuer: "https://auth.test", Audience: "ssehub.test", MaxLifetime: 24 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, opts)
	issued := func(ttl time.Duration, iat bool) string {
		c := grant([]string{"a"}, []string{"a"}, ttl)
		if iat {
			c.IssuedAt = jwt.NewNumericDate(time.Now())
		}
		return mint(t, c)
	}
	wantStreamHeaders(t, ts.do(t, "GET", "/api/v1/events?topic=a", nil, bearer(issued(time.Hour, true))))
	for _, tt := range []struct{ name, token, says string }{
		{"a century", issued(100*365*24*time.Hour, true), "lasts too long"},
		{"no iat", issued(time.Hour, false), "a required claim is missing (iat)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			msg := wantJSONError(t, ts.do(t, "GET", "/api/v1/events?topic=a", nil, bearer(tt.token)), http.StatusUnauthorized)
			if !strings.Contains(msg, tt.says) {
				t.Errorf("subscribing: %q does not say %q", msg, tt.says)
			}
			msg = wantJSONError(t, ts.publishWith(t, "a", "Bearer "+tt.token), http.StatusUnauthorized)
			if !strings.Contains(msg, tt.says) {
				t.Errorf("publishing: %q does not say %q", msg, tt.says)
			}
		})
	}
}
