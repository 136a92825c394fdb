package jwtauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestAllows checks the containment rule with the examples: a
// requested pattern must lie inside one granted pattern.
func TestAllows(t *testing.T) {
	granted := []string{"orders.eu.*", "user.42.>"}
	for pattern, want := range map[string]bool{
		"user.42.inbox": true, "user.42.*": true, "user.42.a.b": true, "user.42.>": true,
		"orders.eu.fr": true, "orders.eu.*": true,
		"user.>": false, "user.43.x": false, "user.*.inbox": false, "user.42": false,
		"orders.eu.fr.paris": false, "orders.eu.>": false, ">": false,
	} {
		if got := Allows(granted, pattern); got != want {
			t.Errorf("Allows(%q, %q) = %v, want %v", granted, pattern, got, want)
		}
	}
	if Allows(nil, "a") {
		t.Error("no grant allows a")
	}
}

// TestNewMatchesAlgorithmsToKeys checks that each pinned algorithm needs a
// key that verifies it.
func TestNewMatchesAlgorithmsToKeys(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	secret := []byte(strings.Repeat("s", 32))
	for _, tt := range []struct {
		name string
		o    Options
		ok   bool
	}{
		{"no key", Options{}, false},
		{"secret, any HMAC", Options{HMACSecret: secret}, true},
		{"a secret of 16 bytes", Options{HMACSecret: secret[:16]}, false},
		// RFC 7518 (3.2): a key at least as long as the hash.
		{"HS384 with a secret of 32 bytes", Options{HMACSecret: secret, Algorithms: []string{"HS384"}}, false},
		{"HS512 with a secret of 48 bytes", Options{HMACSecret: []byte(strings.Repeat("s", 48)), Algorithms: []string{"HS512"}}, false},
		{"HS512 with a secret of 64 bytes", Options{HMACSecret: []byte(strings.Repeat("s", 64)), Algorithms: []string{"HS512"}}, true},
		{"ES256 with a P-256 key", Options{PublicKey: &p256.PublicKey, Algorithms: []string{"ES256"}}, true},
		{"ES384 with a P-256 key", Options{PublicKey: &p256.PublicKey, Algorithms: []string{"ES384"}}, false},
		{"HS256 with only a public key", Options{PublicKey: &p256.PublicKey, Algorithms: []string{"HS256"}}, false},
		{"RS256 with only a secret", Options{HMACSecret: secret, Algorithms: []string{"RS256"}}, false},
		{"none", Options{HMACSecret: secret, Algorithms: []string{"none"}}, false},
		// crypto/rsa verifies no signature with a key under 1024 bits.
		{"RSA of 512 bits", Options{PublicKey: &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 511), E: 65537}}, false},
	} {
		if _, err := New(tt.o); (err == nil) != tt.ok {
			t.Errorf("%s: err = %v", tt.name, err)
		}
	}
}

// TestVerifyRefusesAnHMACLongerThanTheSecret: with no algorithms pinned, a
// secret of 32 bytes verifies HS256 tokens only; an HS384 or HS512 token
// signed with it is refused, as RFC 7518 (3.2) wants a key at least as
// long as the hash. A secret of 64 bytes verifies all three.
func TestVerifyRefusesAnHMACLongerThanTheSecret(t *testing.T) {
	var c Claims
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Hour))
	for _, n := range []int{32, 48, 64} {
		secret := []byte(strings.Repeat("s", n))
		v, err := New(Options{HMACSecret: secret})
		if err != nil {
			t.Fatal(err)
		}
		for alg, hashBytes := range map[string]int{"HS256": 32, "HS384": 48, "HS512": 64} {
			token, err := MintHMAC(alg, secret, c)
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(token)
			if want := n >= hashBytes; (err == nil) != want {
				t.Errorf("a secret of %d bytes, an %s token: err = %v, want accepted %v", n, alg, err, want)
			}
		}
	}
}

func TestVerifyUsesTheLeeway(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	v, err := New(Options{HMACSecret: secret, Leeway: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var c Claims
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-30 * time.Second))
	token, err := MintHMAC("HS256", secret, c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(token)
	if err != nil {
		t.Fatalf("expired 30s ago, leeway 1m: %v", err)
	}
	if until := v.ValidUntil(got); !until.Equal(c.ExpiresAt.Add(time.Minute)) {
		t.Errorf("ValidUntil = %v, want exp + 1m", until)
	}
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-2 * time.Minute))
	token, _ = MintHMAC("HS256", secret, c)
	if _, err := v.Verify(token); !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired 2m ago: %v", err)
	}
}

// A token naming critical header parameters is refused (RFC 7515
// §4.1.11): the verifier understands no extension.
func TestVerifyRefusesCriticalHeaders(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	v, err := New(Options{HMACSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	var c Claims
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Hour))
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	tok.Header["crit"] = []string{"foo"}
	tok.Header["foo"] = 1
	token, err := tok.SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(token); !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "crit") {
		t.Errorf("a token with crit: %v, want it refused naming crit", err)
	}
	delete(tok.Header, "crit")
	if token, _ = tok.SignedString(secret); !isValid(v, token) {
		t.Error("the same token without crit is refused")
	}
}

func isValid(v *Verifier, token string) bool {
	_, err := v.Verify(token)
	return err == nil
}

// hmacVerifier returns a Verifier of HS256 tokens, and a function that
// signs claims with its secret.
func hmacVerifier(t testing.TB) (*Verifier, func(jwt.MapClaims) string) {
	t.Helper()
	secret := []byte(strings.Repeat("s", 32))
	v, err := New(Options{HMACSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	return v, func(claims jwt.MapClaims) string {
		token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return token
	}
}

// RFC 7519 makes exp, nbf and iat JSON numbers: one given as a string is
// refused, however its name is spelled, where golang-jwt alone reads the
// string's number.
func TestVerifyRefusesDatesGivenAsStrings(t *testing.T) {
	v, sign := hmacVerifier(t)
	exp := time.Now().Add(time.Hour).Unix()
	for _, claims := range []jwt.MapClaims{
		{"exp": fmt.Sprint(exp)},
		{"exp": exp, "nbf": "0"},
		{"exp": exp, "iat": "0"},
		{"EXP": fmt.Sprint(exp)},
	} {
		if _, err := v.Verify(sign(claims)); !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "malformed") {
			t.Errorf("%v: %v, want it refused as malformed", claims, err)
		}
	}
	c, err := v.Verify(sign(jwt.MapClaims{"exp": exp, "nbf": 0, "iat": 0, "ssehub": map[string]any{"subscribe": []string{"a.>"}}}))
	if err != nil {
		t.Fatalf("the same dates as numbers: %v", err)
	}
	if c.ExpiresAt.Unix() != exp || !slices.Equal(c.SSEHub.Subscribe, []string{"a.>"}) {
		t.Errorf("claims read as %+v", c)
	}
}

// A NumericDate out of the years 1 to 9999 makes the token malformed:
// golang-jwt alone read "exp": 1e300 as a time before 1970, "expired".
func TestVerifyRefusesDatesOutOfRange(t *testing.T) {
	v, sign := hmacVerifier(t)
	exp := time.Now().Add(time.Hour).Unix()
	for _, claims := range []jwt.MapClaims{
		{"exp": 1e300},
		{"exp": -1e300},
		{"exp": float64(maxNumericDate + 1)},
		{"exp": exp, "nbf": -1e19},
		{"exp": exp, "iat": 1e19},
	} {
		if _, err := v.Verify(sign(claims)); !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "malformed") {
			t.Errorf("%v: %v, want it refused as malformed", claims, err)
		}
	}
	// Past float64's range, the same, named.
	for _, payload := range []string{`{"exp": 1e400}`, fmt.Sprintf(`{"exp": %d, "nbf": -1e400}`, exp)} {
		if _, err := v.Verify(signRaw(payload)); !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "malformed: claim") {
			t.Errorf("%s: %v, want it refused as malformed, naming the claim", payload, err)
		}
	}
	if _, err := v.Verify(sign(jwt.MapClaims{"exp": maxNumericDate, "nbf": minNumericDate})); err != nil {
		t.Errorf("the bounds themselves: %v", err)
	}
	if _, err := v.Verify(sign(jwt.MapClaims{"exp": 1})); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("exp 1: %v, want expired", err)
	}
}

// RFC 7519 claim names are case-sensitive, and encoding/json is not: it
// read "EXP" or "Ssehub" (even "ſsehub") as exp or ssehub, the last one
// written winning. A token whose issuer copied a claim named so from a
// user's input then lasted, or granted, what that user chose. Such a
// token is refused as malformed, not read another way than other
// verifiers read it.
func TestVerifyRefusesClaimNamesInAnotherCase(t *testing.T) {
	v, sign := hmacVerifier(t)
	past, future := time.Now().Add(-time.Hour).Unix(), time.Now().Add(time.Hour).Unix()
	narrow := map[string]any{"subscribe": []string{"a.b"}}
	broad := map[string]any{"subscribe": []string{">"}}
	for _, claims := range []jwt.MapClaims{
		{"exp": past, "EXP": future},
		{"exp": future, "ssehub": narrow, "Ssehub": broad},
		{"exp": future, "ssehub": narrow, "\u017fsehub": broad}, // ſ folds to s
		{"exp": future, "ssehub": map[string]any{"subscribe": []string{"a.b"}, "Subscribe": []string{">"}}},
		{"exp": future, "ssehub": narrow, "AUD": "x"},
	} {
		if c, err := v.Verify(sign(claims)); !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "malformed") {
			t.Errorf("%v: %v (claims %+v), want it refused as malformed", claims, err, c)
		}
	}
	// Claims of other names, whatever their case, are ignored.
	if _, err := v.Verify(sign(jwt.MapClaims{"exp": future, "ssehub": narrow, "Role": "x", "role": "y"})); err != nil {
		t.Errorf("other claims: %v", err)
	}
}

// A claim of another JSON type than its own is refused as malformed,
// naming the claim and what it is: a list of topics written as one
// string, the usual slip, was refused as "malformed" alone, as a token
// that does not even decode is.
func TestVerifyNamesAClaimOfAnotherType(t *testing.T) {
	v, sign := hmacVerifier(t)
	exp := time.Now().Add(time.Hour).Unix()
	for _, tt := range []struct {
		claims jwt.MapClaims
		says   string
	}{
		{jwt.MapClaims{"exp": exp, "ssehub": map[string]any{"subscribe": "user.42.>"}}, "claim ssehub.subscribe is a string, not a list of strings"},
		{jwt.MapClaims{"exp": exp, "ssehub": map[string]any{"publish": []any{"a", 1}}}, "claim ssehub.publish holds a number, not only strings"},
		{jwt.MapClaims{"exp": exp, "ssehub": []string{"a.>"}}, "claim ssehub is a list, not an object"},
		{jwt.MapClaims{"exp": exp, "aud": 5}, "claim aud is a number, not a string or a list of strings"},
		{jwt.MapClaims{"exp": exp, "aud": []any{"x", true}}, "claim aud holds a boolean, not only strings"},
		{jwt.MapClaims{"exp": exp, "iss": map[string]any{}}, "claim iss is an object, not a string"},
		{jwt.MapClaims{"exp": true}, "claim exp is a boolean, not a number"},
		{jwt.MapClaims{"exp": fmt.Sprint(exp)}, "claim exp is a string, not a number"},
	} {
		_, err := v.Verify(sign(tt.claims))
		if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "malformed: "+tt.says) {
			t.Errorf("%v: %v, want it refused as malformed: %s", tt.claims, err, tt.says)
		}
	}
	// The types they have, null among them, pass.
	for _, claims := range []jwt.MapClaims{
		{"exp": exp, "aud": "x", "iss": "y", "sub": "z", "jti": "j", "ssehub": map[string]any{"subscribe": []string{"a"}, "publish": nil}},
		{"exp": exp, "aud": []string{"x", "y"}, "iss": nil, "nbf": nil, "ssehub": nil},
	} {
		if _, err := v.Verify(sign(claims)); err != nil {
			t.Errorf("%v: %v", claims, err)
		}
	}
}

// signRaw signs payload, JSON as it is (a claim named twice, say), with
// hmacVerifier's secret, HS256.
func signRaw(payload string) string {
	enc := base64.RawURLEncoding
	s := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(payload))
	m := hmac.New(sha256.New, []byte(strings.Repeat("s", 32)))
	m.Write([]byte(s))
	return s + "." + enc.EncodeToString(m.Sum(nil))
}

// A claim named twice is read as the last one (RFC 7519 §4), as the type
// checks read it: two ssehub objects granted what both granted, and a
// null after an object kept the object's grants, where other verifiers
// read only the last.
func TestVerifyReadsTheLastOfTwoSSEHubClaims(t *testing.T) {
	v, _ := hmacVerifier(t)
	exp := time.Now().Add(time.Hour).Unix()
	for _, tt := range []struct {
		ssehub2        string
		subscribe, pub []string
	}{
		{`{"subscribe": ["x"]}`, []string{"x"}, nil},
		{`null`, nil, nil},
		{`{}`, nil, nil},
	} {
		payload := fmt.Sprintf(`{"exp": %d, "ssehub": {"publish": ["orders.>"]}, "ssehub": %s}`, exp, tt.ssehub2)
		c, err := v.Verify(signRaw(payload))
		if err != nil {
			t.Errorf("%s: %v", payload, err)
			continue
		}
		if !slices.Equal(c.SSEHub.Subscribe, tt.subscribe) || !slices.Equal(c.SSEHub.Publish, tt.pub) {
			t.Errorf("%s: grants %+v, want subscribe %q and publish %q", payload, c.SSEHub, tt.subscribe, tt.pub)
		}
	}
}

// A token has one spelling: its three segments in unpadded base64url
// (RFC 7515 §2), each in its canonical form. The signature was read
// loosely, so that one token had others beside it that the verifier
// took: the low bits of its last character, which decode to nothing,
// flipped, or a line break inside it (in the access_token query, %0A),
// which Go's base64 skips. A list of refused tokens, or a cache keyed
// by a token, missed them.
func TestVerifyRefusesATokenSpelledAnotherWay(t *testing.T) {
	v, sign := hmacVerifier(t)
	token := sign(jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix()})
	if !isValid(v, token) {
		t.Fatal("the token itself is refused")
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, token[len(token)-1])
	dot := strings.LastIndexByte(token, '.')
	const other = "neither base64url nor a dot"
	for _, tt := range []struct{ name, token, says string }{
		// HS256's 32 bytes are 43 characters: the last one's low 2 bits are none.
		{"unused bits set", token[:len(token)-1] + string(alphabet[last^1]), "canonical form"},
		{"a line feed", token[:dot+5] + "\n" + token[dot+5:], other},
		{"a carriage return", token[:dot+5] + "\r" + token[dot+5:], other},
		{"padded", token + "=", other},
		{"standard base64", token[:dot+1] + strings.NewReplacer("-", "+", "_", "/").Replace(token[dot+1:]), other},
	} {
		if tt.token == token {
			continue // standard base64 of a signature without - or _
		}
		_, err := v.Verify(tt.token)
		if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "malformed: ") || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("%s: %v, want it refused as malformed, saying %q", tt.name, err, tt.says)
		}
	}
}

// With a maximum lifetime, a token that lasts longer from its iat to its
// exp is refused, saying so, and so is one without iat; without one, a
// token a century long is accepted, as before.
func TestVerifyLimitsTheLifetime(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	limited, err := New(Options{HMACSecret: secret, MaxLifetime: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	unlimited, _ := New(Options{HMACSecret: secret})
	now := time.Now().Truncate(time.Second)
	mint := func(iat, exp time.Time) string {
		var c Claims
		c.ExpiresAt = jwt.NewNumericDate(exp)
		if !iat.IsZero() {
			c.IssuedAt = jwt.NewNumericDate(iat)
		}
		token, err := MintHMAC("HS256", secret, c)
		if err != nil {
			t.Fatal(err)
		}
		return token
	}
	century := mint(now, now.AddDate(100, 0, 0))
	if !isValid(unlimited, century) {
		t.Error("no limit: a century-long token is refused")
	}
	for _, tt := range []struct {
		name  string
		token string
		says  string // "" for accepted
	}{
		{"a day", mint(now, now.Add(24*time.Hour)), ""},
		{"issued an hour ago, for a day", mint(now.Add(-time.Hour), now.Add(23*time.Hour)), ""},
		{"a day and a second", mint(now, now.Add(24*time.Hour+time.Second)), "lasts too long: 24h0m1s from iat to exp, at most 24h0m0s"},
		{"a century", century, "lasts too long"},
		{"no iat", mint(time.Time{}, now.Add(time.Hour)), "a required claim is missing (iat)"},
	} {
		_, err := limited.Verify(tt.token)
		switch {
		case tt.says == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.says != "" && (!errors.Is(err, ErrInvalidToken) || !strings.Contains(fmt.Sprint(err), tt.says)):
			t.Errorf("%s: %v, want it refused saying %q", tt.name, err, tt.says)
		}
	}
	if _, err := New(Options{HMACSecret: secret, MaxLifetime: -time.Second}); err == nil {
		t.Error("a negative maximum lifetime: accepted")
	}
}

// signRawHeader signs payload under header, both JSON as they are (a
// parameter named twice, say), with hmacVerifier's secret, HS256.
func signRawHeader(header, payload string) string {
	enc := base64.RawURLEncoding
	s := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	m := hmac.New(sha256.New, []byte(strings.Repeat("s", 32)))
	m.Write([]byte(s))
	return s + "." + enc.EncodeToString(m.Sum(nil))
}

// A header parameter named twice is read as the last one, which RFC 7515
// §4 allows: the alg checked against the accepted ones is the one the
// signature is verified with, so a first "alg": "none" neither passes nor
// confuses the check; a crit named twice, even null the second time, is
// still a crit. Names are case-sensitive: "Alg" is not alg.
func TestVerifyReadsTheLastOfTwoHeaderParameters(t *testing.T) {
	v, _ := hmacVerifier(t)
	payload := fmt.Sprintf(`{"exp": %d}`, time.Now().Add(time.Hour).Unix())
	for _, tt := range []struct {
		header string
		valid  bool
	}{
		{`{"alg":"none","alg":"HS256"}`, true},
		{`{"alg":"HS256","alg":"none"}`, false},
		{`{"alg":"HS256","alg":"HS512"}`, false},
		{`{"alg":"HS256","Alg":"none"}`, true},
		{`{"alg":"HS256","crit":["x"],"crit":null}`, false},
	} {
		if got := isValid(v, signRawHeader(tt.header, payload)); got != tt.valid {
			t.Errorf("header %s: valid %v, want %v", tt.header, got, tt.valid)
		}
	}
}

// nbf and iat in the future are refused past the leeway, as exp in the
// past is (TestVerifyUsesTheLeeway): a clock a little ahead of ssehub's
// is no reason to refuse a token.
func TestVerifyGivesNbfAndIatTheLeeway(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	v, err := New(Options{HMACSecret: secret, Leeway: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, tt := range []struct {
		name     string
		nbf, iat time.Duration // from now; 0 for none
		valid    bool
	}{
		{"nbf 20s ahead", 20 * time.Second, 0, true},
		{"nbf 60s ahead", 60 * time.Second, 0, false},
		{"iat 20s ahead", 0, 20 * time.Second, true},
		{"iat 60s ahead", 0, 60 * time.Second, false},
	} {
		var c Claims
		c.ExpiresAt = jwt.NewNumericDate(now.Add(time.Hour))
		if tt.nbf != 0 {
			c.NotBefore = jwt.NewNumericDate(now.Add(tt.nbf))
		}
		if tt.iat != 0 {
			c.IssuedAt = jwt.NewNumericDate(now.Add(tt.iat))
		}
		token, err := MintHMAC("HS256", secret, c)
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(token)
		if valid := err == nil; valid != tt.valid || !valid && !strings.Contains(err.Error(), "not valid yet") {
			t.Errorf("%s: %v, want valid %v (or \"not valid yet\")", tt.name, err, tt.valid)
		}
	}
}

// An ECDSA signature (r, s) has a twin, (r, n-s), that anyone holding the
// token can compute without the key, and that ECDSA verifies as well: an
// ES256, ES384 or ES512 token has a second spelling, accepted with the
// same claims, which its strict base64url does not rule out. No verifier
// can refuse one of the two without refusing tokens that signers make
// (half of their signatures have the larger s), so the README tells a
// list of refused tokens to key on what the signature signs instead.
func TestVerifyAcceptsTheTwinOfAnECDSASignature(t *testing.T) {
	for _, tt := range []struct {
		alg   string
		curve elliptic.Curve
	}{{"ES256", elliptic.P256()}, {"ES384", elliptic.P384()}, {"ES512", elliptic.P521()}} {
		t.Run(tt.alg, func(t *testing.T) {
			key, err := ecdsa.GenerateKey(tt.curve, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			v, err := New(Options{PublicKey: &key.PublicKey})
			if err != nil {
				t.Fatal(err)
			}
			claims := jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix(), "ssehub": map[string]any{"subscribe": []string{"a"}}}
			token, err := jwt.NewWithClaims(jwt.GetSigningMethod(tt.alg), claims).SignedString(key)
			if err != nil {
				t.Fatal(err)
			}
			dot := strings.LastIndexByte(token, '.')
			sig, err := base64.RawURLEncoding.DecodeString(token[dot+1:])
			if err != nil {
				t.Fatal(err)
			}
			half := len(sig) / 2
			s := new(big.Int).SetBytes(sig[half:])
			s.Sub(tt.curve.Params().N, s)
			twin := token[:dot+1] + base64.RawURLEncoding.EncodeToString(append(sig[:half:half], s.FillBytes(make([]byte, half))...))
			if twin == token {
				t.Fatal("the twin is the token")
			}
			for _, tok := range []string{token, twin} {
				c, err := v.Verify(tok)
				if err != nil {
					t.Fatalf("%s: %v", tok, err)
				}
				if !slices.Equal(c.SSEHub.Subscribe, []string{"a"}) {
					t.Errorf("%s: grants %+v", tok, c.SSEHub)
				}
			}
		})
	}
}
