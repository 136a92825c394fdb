package jwtauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
)

func signRawHeader(header, payload string) string {
	enc := base64.RawURLEncoding
	s := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	m := hmac.New(sha256.New, []byte(strings.Repeat("s", 32)))
	m.Write([]byte(s))
	return s + "." + enc.EncodeToString(m.Sum(nil))
}

func TestZZ(t *testing.T) {
	v, err := New(Options{HMACSecret: []byte(strings.Repeat("s", 32)), Leeway: 30 * time.Second, Issuer: "i", Audience: "a"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	base := fmt.Sprintf(`"exp":%d,"iss":"i","aud":"a"`, now+3600)
	for _, tt := range []struct{ h, p string }{
		{`{"alg":"none","alg":"HS256"}`, "{" + base + "}"},
		{`{"alg":"HS256","alg":"none"}`, "{" + base + "}"},
		{`{"alg":"HS256","Alg":"none"}`, "{" + base + "}"},
		{`{"alg":"HS256","crit":["x"],"crit":null}`, "{" + base + "}"},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{%s,"nbf":%d}`, base, now+20)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{%s,"nbf":%d}`, base, now+60)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{%s,"iat":%d}`, base, now+60)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"exp":%d,"iss":"i","aud":["b","a"]}`, now+60)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"exp":%d,"iss":"i","aud":"a","iss":"j"}`, now+60)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"exp":%d,"iss":"I","aud":"a"}`, now+60)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"exp":%d,"iss":"i","aud":[]}`, now+60)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"exp":%d,"iss":"i","aud":"a","ssehub":{"subscribe":[""," a","*"]}}`, now+60)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"exp":%d,"iss":"i","aud":"a","ssehub":{"subscribe":[],"publish":null}}`, now+60)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"exp":%d,"iss":"i","aud":"a","ssehub":{"subscribe":[1]}}`, now+60)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"exp":%d,"iss":"i","aud":"a","ssehub":{"subscribe":["a"],"other":1}}`, now+60)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"exp":%d.9,"iss":"i","aud":"a"}`, now+60)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"exp":%d,"iss":"i","aud":"a"}`, now+100*365*86400)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"exp":%d,"iss":"i","aud":"a","exp":null}`, now+60)},
		{`{"alg":"HS256"}`, `[]`},
		{`{"alg":"HS256"}`, `null`},
		{`{"alg":"HS256"} x`, "{" + base + "}"},
		{`{"alg":"HS256","typ":"JWS"}`, "{" + base + "}"},
		{`{"alg":"HS256","kid":1}`, "{" + base + "}"},
		{`{"alg":"HS256","b64":false}`, "{" + base + "}"},
	} {
		c, err := v.Verify(signRawHeader(tt.h, tt.p))
		t.Logf("%s %s -> %v %+v", tt.h, tt.p, err, c)
	}
}
