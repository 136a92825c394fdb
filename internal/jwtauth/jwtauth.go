// Package jwtauth verifies ssehub's JSON Web Tokens and mints them for
// development. A token grants topics in its "ssehub" claim:
//
//	{"ssehub": {"subscribe": ["orders.eu.*", "user.42.>"], "publish": ["orders.>"]}, "exp": 1767225600}
//
// A requested pattern is allowed when one granted pattern covers it
// (stream.Covers). The HTTP layer takes the token from the request and
// maps the errors to statuses; this package knows nothing of HTTP.
package jwtauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/ssehub/ssehub/internal/stream"
)

// ErrInvalidToken is wrapped by every error Verify returns; the text
// after it says why, without the token.
var ErrInvalidToken = errors.New("JWT refused")

// Grants are the topics a token grants: patterns as in a subscription.
type Grants struct {
	Subscribe []string `json:"subscribe,omitempty"`
	Publish   []string `json:"publish,omitempty"`
}

// UnmarshalJSON reads g, refusing a name that is subscribe or publish in
// another case (checkNames), and either of them of another JSON type than
// a list of strings. g is what b grants, nothing kept from before.
func (g *Grants) UnmarshalJSON(b []byte) error {
	if kind := jsonKind(b); kind != "an object" && kind != "null" {
		return claimErrorf("claim ssehub is %s, not an object", kind)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	if err := checkNames(fields, "subscribe", "publish"); err != nil {
		return err
	}
	for _, name := range []string{"subscribe", "publish"} {
		if err := checkStrings("ssehub."+name, fields[name], false); err != nil {
			return err
		}
	}
	// A claim named twice is read as its last (RFC 7519 §4), as its
	// checks above read it: encoding/json decodes the second ssehub
	// object into what the first left, so that a grant the last one
	// leaves out was kept.
	*g = Grants{}
	type plain Grants // without this method
	return json.Unmarshal(b, (*plain)(g))
}

// claimError says what is wrong with a claim: the reason a token refused
// as malformed for it is given (Verifier.reason). Its text comes from the
// token, not from a parser.
type claimError struct{ msg string }

func (e *claimError) Error() string { return e.msg }

func claimErrorf(format string, args ...any) error {
	return &claimError{fmt.Sprintf(format, args...)}
}

// jsonKind names the JSON type of the value raw, which encoding/json has
// found well-formed: "a string", "a number" and so on.
func jsonKind(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '[':
		return "a list"
	case '{':
		return "an object"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// checkStrings refuses the claim name of value raw unless it is a list of
// strings, or null or left out; or a string too, when single (aud).
// encoding/json's own error for it was reported as a malformed token, not
// naming the claim: a list of topics written as one string, the usual
// slip, read as a token that does not decode.
func checkStrings(name string, raw json.RawMessage, single bool) error {
	want := "a list of strings"
	if single {
		want = "a string or a list of strings"
	}
	switch kind := jsonKind(raw); {
	case raw == nil, kind == "null", single && kind == "a string":
		return nil
	case kind != "a list":
		return claimErrorf("claim %s is %s, not %s", name, kind, want)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return err
	}
	for _, item := range items {
		if kind := jsonKind(item); kind != "a string" {
			return claimErrorf("claim %s holds %s, not only strings", name, kind)
		}
	}
	return nil
}

// checkNames refuses a name of fields that is one of names in another
// case ("EXP", "Ssehub", even "ſsehub"): claim names are case-sensitive
// (RFC 7519), but encoding/json reads such a name as the claim, the last
// one written winning, so that a claim an issuer copied from a user's
// input under that name made the token last, or grant, what the user
// chose, where other verifiers ignore it.
func checkNames(fields map[string]json.RawMessage, names ...string) error {
	for name := range fields {
		for _, n := range names {
			if name != n && strings.EqualFold(name, n) {
				return claimErrorf("claim %q is %s in another case: claim names are case-sensitive", name, n)
			}
		}
	}
	return nil
}

// Claims are the claims of an ssehub token: the grants and the registered
// claims (exp, iss, aud and the rest).
type Claims struct {
	SSEHub Grants `json:"ssehub"`
	jwt.RegisteredClaims
}

// The NumericDates a token may give, in seconds since 1970: the years 1
// to 9999, the ones an RFC 3339 time (the data of event: expired) can
// write.
const (
	minNumericDate = -62135596800 // 0001-01-01T00:00:00Z
	maxNumericDate = 253402300799 // 9999-12-31T23:59:59Z
)

// UnmarshalJSON reads c, refusing a claim of c's named in another case
// (checkNames), and exp, nbf or iat given as a string
// ("exp": "1767225600"): RFC 7519 makes a NumericDate a JSON number, and
// golang-jwt would read the string's number as one. It refuses one out of
// the years 1 to 9999 too: golang-jwt turned "exp": 1e300 into a time
// before 1970, so the token was refused as expired rather than malformed.
// So it does a claim of another JSON type than its own (iss a number, aud
// an object), saying which. The parser reports each error as a malformed
// token; Verify gives the claimError's text as the reason.
func (c *Claims) UnmarshalJSON(b []byte) error {
	if kind := jsonKind(b); kind != "an object" {
		return claimErrorf("the claims are %s, not an object", kind)
	}
	var dates map[string]json.RawMessage
	if err := json.Unmarshal(b, &dates); err != nil {
		return err
	}
	if err := checkNames(dates, "ssehub", "iss", "sub", "aud", "exp", "nbf", "iat", "jti"); err != nil {
		return err
	}
	for name, raw := range dates {
		switch kind := jsonKind(raw); strings.ToLower(name) { // as encoding/json matches them
		case "exp", "nbf", "iat":
			if kind != "a number" && kind != "null" {
				return claimErrorf("claim %s is %s, not a number", name, kind)
			}
			// Past float64's range (1e400), ParseFloat says so and
			// golang-jwt refuses the token as malformed without a word.
			if f, err := strconv.ParseFloat(string(raw), 64); kind == "a number" && (err != nil || f < minNumericDate || f > maxNumericDate) {
				return claimErrorf("claim %s is out of range: a date in the years 1 to 9999", name)
			}
		case "iss", "sub", "jti":
			if kind != "a string" && kind != "null" {
				return claimErrorf("claim %s is %s, not a string", name, kind)
			}
		case "aud":
			if err := checkStrings(name, raw, true); err != nil {
				return err
			}
		}
	}
	type plain Claims // without this method
	return json.Unmarshal(b, (*plain)(c))
}

// Allows reports whether one of the granted patterns covers pattern (a
// topic, or a pattern that may only match topics within the grant).
func Allows(granted []string, pattern string) bool {
	return slices.ContainsFunc(granted, func(g string) bool { return stream.Covers(g, pattern) })
}

// Options configures a Verifier. At least one key is needed.
type Options struct {
	// HMACSecret verifies HS256, HS384 and HS512 tokens.
	HMACSecret []byte
	// PublicKey verifies RS* and PS* (*rsa.PublicKey), ES256/384/512
	// (*ecdsa.PublicKey on P-256/384/521) or EdDSA (ed25519.PublicKey)
	// tokens. ParsePublicKey reads one from PEM.
	PublicKey crypto.PublicKey
	// Algorithms are the algorithms accepted; each must fit a key. None:
	// every algorithm the keys fit.
	Algorithms []string
	// Issuer, when set, must equal the iss claim.
	Issuer string
	// Audience, when set, must be among the aud claim's values.
	Audience string
	// Leeway is the clock skew allowed on exp, nbf and iat.
	Leeway time.Duration
	// MaxLifetime, when positive, is the longest a token may last from
	// its iat to its exp; a token without iat is then refused. Zero: no
	// limit, a token is accepted until its exp, however far.
	MaxLifetime time.Duration
}

// errCritical refuses a token with a crit header (Verifier.key).
var errCritical = errors.New("critical header parameters")

// Verifier checks tokens. It is safe for concurrent use.
type Verifier struct {
	parser      *jwt.Parser
	hmacSecret  []byte
	publicKey   crypto.PublicKey
	leeway      time.Duration
	maxLifetime time.Duration
	// issuer and audience are Options', to name a missing iss or aud.
	issuer, audience string
}

// New returns a Verifier for o. It fails without a key, and for an
// algorithm no configured key fits ("none" fits none).
func New(o Options) (*Verifier, error) {
	if len(o.HMACSecret) == 0 && o.PublicKey == nil {
		return nil, errors.New("no key: set an HMAC secret or a public key")
	}
	if o.MaxLifetime < 0 {
		return nil, fmt.Errorf("maximum lifetime %v: want 0 (no limit) or more", o.MaxLifetime)
	}
	fitting, err := fittingAlgorithms(o.HMACSecret, o.PublicKey)
	if err != nil {
		return nil, err
	}
	algs := o.Algorithms
	if len(algs) == 0 {
		algs = fitting
	}
	for _, alg := range algs {
		if !slices.Contains(fitting, alg) {
			return nil, fmt.Errorf("algorithm %q: no configured key verifies it (the keys fit %v)", alg, fitting)
		}
	}
	opts := []jwt.ParserOption{
		jwt.WithStrictDecoding(), // see spelling
		jwt.WithValidMethods(algs),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(o.Leeway),
		jwt.WithIssuedAt(),
	}
	if o.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(o.Issuer))
	}
	if o.Audience != "" {
		opts = append(opts, jwt.WithAudience(o.Audience))
	}
	return &Verifier{
		parser: jwt.NewParser(opts...), hmacSecret: o.HMACSecret, publicKey: o.PublicKey, leeway: o.Leeway,
		maxLifetime: o.MaxLifetime, issuer: o.Issuer, audience: o.Audience,
	}, nil
}

// minRSABits is the shortest RSA key crypto/rsa verifies a signature
// with: a shorter one was taken, and every token then refused as badly
// signed.
const minRSABits = 1024

// fittingAlgorithms lists the algorithms the keys verify, or says why a
// key cannot verify any. An HMAC algorithm needs a secret at least as long
// as its hash: 32 bytes fit HS256, 48 HS384 too, 64 HS512 too.
func fittingAlgorithms(secret []byte, pub crypto.PublicKey) ([]string, error) {
	var algs []string
	if len(secret) > 0 {
		// A key at least as long as the algorithm's hash (RFC 7518, 3.2).
		for _, h := range []struct {
			alg   string
			bytes int
		}{{"HS256", 32}, {"HS384", 48}, {"HS512", 64}} {
			if len(secret) >= h.bytes {
				algs = append(algs, h.alg)
			}
		}
		if len(algs) == 0 {
			return nil, fmt.Errorf("HMAC secret of %d bytes: at least 32 are needed", len(secret))
		}
	}
	switch k := pub.(type) {
	case nil:
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits: at least %d are needed", n, minRSABits)
		}
		algs = append(algs, "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			algs = append(algs, "ES256")
		case elliptic.P384():
			algs = append(algs, "ES384")
		case elliptic.P521():
			algs = append(algs, "ES512")
		default:
			return nil, fmt.Errorf("ECDSA curve %s: JWTs use P-256, P-384 or P-521", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		algs = append(algs, "EdDSA")
	default:
		return nil, fmt.Errorf("public key of type %T: use RSA, ECDSA or Ed25519", pub)
	}
	return algs, nil
}

// Verify checks token's signature, algorithm, exp (required), nbf, iat,
// iss and aud, and returns its claims. The error wraps ErrInvalidToken and
// says why.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if err := spelling(token); err != nil {
		return nil, fmt.Errorf("%w: malformed: %w", ErrInvalidToken, err)
	}
	var c Claims
	if _, err := v.parser.ParseWithClaims(token, &c, v.key); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidToken, v.reason(err, &c))
	}
	if err := v.checkLifetime(&c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return &c, nil
}

// checkLifetime refuses claims c, of a verified token, that last longer
// than the maximum lifetime from their iat to their exp, or have no iat,
// when a maximum is set. Without one, a token an issuer made to last a
// century by mistake (or a leaked one) was accepted, and its streams kept
// open, for that long: ssehub revokes nothing. iat is no later than now
// plus the leeway (the parser checks it), so neither is a token accepted
// past now plus the leeway and the maximum.
func (v *Verifier) checkLifetime(c *Claims) error {
	if v.maxLifetime <= 0 {
		return nil
	}
	if c.IssuedAt == nil {
		return errors.New("a required claim is missing (iat): it dates the token, whose lifetime is limited")
	}
	if life := c.ExpiresAt.Sub(c.IssuedAt.Time); life > v.maxLifetime {
		return fmt.Errorf("lasts too long: %v from iat to exp, at most %v", life, v.maxLifetime)
	}
	return nil
}

// spelling refuses a token of other characters than base64url's and the
// dots between its segments. With the parser's strict decoding (the
// unused low bits of a segment's last character must be 0), a token has
// one spelling (RFC 7515 §2: unpadded base64url): Go's base64 skips CR
// and LF, and ignores those bits, so that a signature with a line break
// in it, or those bits set, was taken as the token's own, and a list or a
// cache keyed by a token did not know it for the same one. An ECDSA
// signature keeps a second spelling no check can refuse: (r, n-s) verifies
// as (r, s) does, and signers make either.
func spelling(token string) error {
	i := strings.IndexFunc(token, func(r rune) bool {
		return r != '.' && r != '-' && r != '_' && (r < 'A' || r > 'Z') && (r < 'a' || r > 'z') && (r < '0' || r > '9')
	})
	if i >= 0 {
		return errors.New("a character that is neither base64url nor a dot (RFC 7515: unpadded base64url)")
	}
	return nil
}

// ValidUntil is the last moment c is accepted: its exp, plus the leeway.
func (v *Verifier) ValidUntil(c *Claims) time.Time {
	return c.ExpiresAt.Add(v.leeway)
}

// key picks the key for the token's algorithm, which the parser has
// already checked against the accepted ones: an HMAC token is never
// checked against the public key's bytes.
//
// A token that names critical header parameters (crit) is refused: the
// verifier understands no extension, and RFC 7515 says such a token must
// then be rejected.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, errCritical
	}
	if _, ok := t.Method.(*jwt.SigningMethodHMAC); ok {
		if len(v.hmacSecret) == 0 {
			return nil, errors.New("no HMAC secret")
		}
		return v.hmacSecret, nil
	}
	return v.publicKey, nil
}

// reason says in a few words why a token with claims c was refused.
func (v *Verifier) reason(err error, c *Claims) string {
	switch {
	case errors.Is(err, errCritical):
		return "critical header parameters (crit) not supported"
	case errors.Is(err, jwt.ErrTokenMalformed):
		if ce := (*claimError)(nil); errors.As(err, &ce) {
			return "malformed: " + ce.msg
		}
		if errors.As(err, new(base64.CorruptInputError)) {
			return "malformed: a segment that is not base64url in its one canonical form"
		}
		return "malformed"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return v.missing(c)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "signature or algorithm not accepted"
	default:
		return "claims not valid"
	}
}

// missing says which required claims c lacks: exp, and iss and aud when
// they are checked. golang-jwt reports each with the same error.
func (v *Verifier) missing(c *Claims) string {
	var names []string
	if c.ExpiresAt == nil {
		names = append(names, "exp")
	}
	if v.issuer != "" && c.Issuer == "" {
		names = append(names, "iss")
	}
	if v.audience != "" && (len(c.Audience) == 0 || len(c.Audience) == 1 && c.Audience[0] == "") { // as golang-jwt
		names = append(names, "aud")
	}
	if len(names) == 0 {
		return "a required claim is missing"
	}
	return "a required claim is missing (" + strings.Join(names, ", ") + ")"
}

// ParsePublicKey reads the first public key in PEM data: a PKIX "PUBLIC
// KEY" block, an "RSA PUBLIC KEY" (PKCS #1) block, or a "CERTIFICATE".
// It refuses a key that verifies no JWT (see Options.PublicKey), so that
// the error is the key file's.
func ParsePublicKey(data []byte) (crypto.PublicKey, error) {
	key, err := parsePEM(data)
	if err != nil {
		return nil, err
	}
	if _, err := fittingAlgorithms(nil, key); err != nil {
		return nil, err
	}
	return key, nil
}

// parsePEM reads the first public key in PEM data, of any type.
func parsePEM(data []byte) (crypto.PublicKey, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE block in the PEM data")
		}
		switch block.Type {
		case "PUBLIC KEY":
			return x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			return x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, err
			}
			return cert.PublicKey, nil
		}
	}
}

// MintHMAC signs c with secret and alg, an HMAC algorithm (HS256, HS384
// or HS512): a token for development and tests.
func MintHMAC(alg string, secret []byte, c Claims) (string, error) {
	m, ok := jwt.GetSigningMethod(alg).(*jwt.SigningMethodHMAC)
	if !ok {
		return "", fmt.Errorf("%q is not an HMAC algorithm", alg)
	}
	return jwt.NewWithClaims(m, c).SignedString(secret)
}
