package jwtauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzVerify verifies tokens signed with the verifier's secret over a
// fuzzed header and fuzzed claims, so that the claims' checks are reached
// past the signature, and a fuzzed token as it is. A token refused is
// refused with an error that wraps ErrInvalidToken, in UTF-8, without the
// token in it; one accepted has an exp in the future, in the years 1 to
// 9999, given as a number, and grants what its last ssehub claim lists.
func FuzzVerify(f *testing.F) {
	v, _ := hmacVerifier(f)
	exp := time.Now().Add(time.Hour).Unix()
	for _, s := range []struct{ header, payload string }{
		{`{"alg":"HS256","typ":"JWT"}`, fmt.Sprintf(`{"exp": %d, "ssehub": {"subscribe": ["a.>"], "publish": ["a.b"]}}`, exp)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"exp": %d.5, "iat": %d, "nbf": 0}`, exp, exp-10)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"exp": %d, "ssehub": {"subscribe": ["a"]}, "ssehub": null}`, exp)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"exp": "%d"}`, exp)},
		{`{"alg":"HS256"}`, `{"exp": 1e300}`},
		{`{"alg":"HS256"}`, `{"exp": 1e400}`},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"EXP": %d}`, exp)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"exp": %d, "ssehub": {"Subscribe": ["a"]}}`, exp)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"exp": %d, "ssehub": {"subscribe": "a"}}`, exp)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"exp": %d, "ssehub": [1]}`, exp)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"exp": %d, "aud": ["x", 1], "iss": 2}`, exp)},
		{`{"alg":"HS256","crit":["b64"]}`, fmt.Sprintf(`{"exp": %d}`, exp)},
		{`{"alg":"none"}`, fmt.Sprintf(`{"exp": %d}`, exp)},
		{`{"alg":"HS512"}`, fmt.Sprintf(`{"exp": %d}`, exp)},
		{`[]`, `[]`},
		{`{"alg":"HS256"}`, `null`},
	} {
		f.Add(s.header, s.payload, signRawHeader(s.header, s.payload))
	}
	f.Add("", "", "a.b.c")
	f.Add("", "", "eyJhbGciOiJIUzI1NiJ9.e30.\r\nx")
	f.Fuzz(func(t *testing.T, header, payload, raw string) {
		token := signRawHeader(header, payload)
		c, err := v.Verify(token)
		checkVerified(t, token, payload, c, err)
		c, err = v.Verify(raw)
		checkVerified(t, raw, "", c, err)
	})
}

// checkVerified holds Verify's answer for token, whose claims are
// payload ("" when not known), to FuzzVerify's properties.
func checkVerified(t *testing.T, token, payload string, c *Claims, err error) {
	t.Helper()
	if err != nil {
		if c != nil || !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("refused with claims %v, or an error that is not ErrInvalidToken: %v", c, err)
		}
		if msg := err.Error(); !utf8.ValidString(msg) || len(token) > 8 && strings.Contains(msg, token) {
			t.Fatalf("an error not UTF-8, or naming the token: %q", msg)
		}
		return
	}
	if c.ExpiresAt == nil || !c.ExpiresAt.After(time.Now()) || c.ExpiresAt.Unix() > maxNumericDate {
		t.Fatalf("accepted with exp %v", c.ExpiresAt)
	}
	if payload == "" {
		return
	}
	var claims map[string]json.RawMessage
	if err := json.Unmarshal([]byte(payload), &claims); err != nil {
		t.Fatalf("accepted claims that are no JSON object: %v", err)
	}
	if e := claims["exp"]; len(e) == 0 || e[0] != '-' && (e[0] < '0' || e[0] > '9') {
		t.Fatalf("accepted an exp written %s", e)
	}
	var grants struct{ Subscribe, Publish []string }
	if raw, ok := claims["ssehub"]; ok && string(raw) != "null" {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil {
			t.Fatalf("accepted ssehub %s: %v", raw, err)
		}
		for name, dst := range map[string]*[]string{"subscribe": &grants.Subscribe, "publish": &grants.Publish} {
			if f, ok := fields[name]; ok {
				if err := json.Unmarshal(f, dst); err != nil {
					t.Fatalf("accepted ssehub.%s %s: %v", name, f, err)
				}
			}
		}
	}
	if !slices.Equal(c.SSEHub.Subscribe, grants.Subscribe) || !slices.Equal(c.SSEHub.Publish, grants.Publish) {
		t.Fatalf("grants %+v, but the claims' last ssehub grants %+v", c.SSEHub, grants)
	}
}
