package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/jwtauth"
	"github.com/ssehub/ssehub/internal/testpki"
)

// tokenEnv is the environment of the token tests: a JWT secret, issuer and
// audience, as a deployment would set them.
var tokenEnv = map[string]string{
	"SSEHUB_AUTH_JWT_HMAC_SECRET": "0123456789abcdef0123456789abcdef",
	"SSEHUB_AUTH_JWT_ISSUER":      "https://auth.test",
	"SSEHUB_AUTH_JWT_AUDIENCE":    "ssehub.test",
}

// runToken runs `ssehub token args...` with env and returns its exit code,
// stdout and stderr.
func runToken(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), append([]string{"token", "--config", os.DevNull}, args...), func(k string) string { return env[k] }, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// tokenConfig is the configuration a server runs with to accept the tokens
// mintToken mints: the built-in defaults with tokenEnv.
func tokenConfig(t *testing.T) config.Config {
	t.Helper()
	cfg, err := config.Load([]string{"--config", os.DevNull}, func(k string) string { return tokenEnv[k] })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// mintToken runs `ssehub token args...` with tokenEnv and returns the JWT
// it prints; a failure, or an output that is not a JWT, fails the test.
func mintToken(t *testing.T, args ...string) string {
	t.Helper()
	code, out, stderr := runToken(t, tokenEnv, args...)
	if code != 0 {
		t.Fatalf("ssehub token: exit %d: %s", code, stderr)
	}
	token := strings.TrimSpace(out)
	if strings.Count(token, ".") != 2 {
		t.Fatalf("output %q is not a JWT", out)
	}
	return token
}

// TestTokenCommandMintsWhatTheServerAccepts mints a token with the same
// configuration a server runs with, and uses it there: it grants what it
// says, and nothing else.
func TestTokenCommandMintsWhatTheServerAccepts(t *testing.T) {
	cfg := tokenConfig(t)
	cfg.Demo.Enabled = false
	base, _ := startMain(t, cfg)
	token := mintToken(t, "--subscribe", "orders.>", "--publish=orders.eu.*", "--ttl", "10m")
	get := func(path string, header http.Header) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "GET", base+path, nil)
		req.Header = header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if resp := get("/api/v1/events?topic=orders.eu.1&access_token="+url.QueryEscape(token), nil); resp.StatusCode != 200 {
		t.Errorf("subscribing within the grant: %d", resp.StatusCode)
	}
	if resp := get("/api/v1/events?topic=payments.1", http.Header{"Authorization": {"Bearer " + token}}); resp.StatusCode != 403 {
		t.Errorf("subscribing outside the grant: %d, want 403", resp.StatusCode)
	}
	publish := func(topic string) int {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", base+"/api/v1/topics/"+topic+"/events", strings.NewReader(`{"data": 1}`))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := publish("orders.eu.1"); got != http.StatusCreated {
		t.Errorf("publishing within the grant: %d", got)
	}
	if got := publish("orders.us.1"); got != http.StatusForbidden {
		t.Errorf("publishing outside the grant: %d, want 403", got)
	}
}

func TestTokenCommandErrors(t *testing.T) {
	noSecret := map[string]string{}
	publicOnly := map[string]string{"SSEHUB_AUTH_JWT_HMAC_SECRET": tokenEnv["SSEHUB_AUTH_JWT_HMAC_SECRET"], "SSEHUB_AUTH_JWT_ALGORITHMS": "RS256", "SSEHUB_AUTH_JWT_PUBLIC_KEY_FILE": testpki.New(t).CertFile} // a certificate holds a public key
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
		says string
	}{
		{"no secret", noSecret, []string{"--subscribe", "demo.>"}, "no auth.jwt.hmac_secret is configured"},
		{"no HMAC algorithm", publicOnly, []string{"--subscribe", "demo.>"}, "accepts no HMAC algorithm"},
		{"no grant", tokenEnv, []string{"--ttl", "1h"}, "grant something"},
		{"bad pattern", tokenEnv, []string{"--subscribe", "a..b"}, `"a..b"`},
		{"negative ttl", tokenEnv, []string{"--subscribe", "a", "--ttl", "-1h"}, "--ttl -1h0m0s must be positive"},
		{"ttl under a second", tokenEnv, []string{"--subscribe", "a", "--ttl", "500ms"}, "--ttl 500ms: want 1s or more"},
		{"ttl beyond the maximum lifetime", map[string]string{
			"SSEHUB_AUTH_JWT_HMAC_SECRET": tokenEnv["SSEHUB_AUTH_JWT_HMAC_SECRET"], "SSEHUB_AUTH_JWT_MAX_LIFETIME": "1h",
		}, []string{"--subscribe", "a", "--ttl", "2h"}, "--ttl 2h0m0s is longer than auth.jwt.max_lifetime 1h0m0s"},
		{"unknown flag", tokenEnv, []string{"--subscribe", "a", "--bogus"}, "bogus"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, stderr := runToken(t, tt.env, tt.args...)
			if code == 0 || out != "" {
				t.Fatalf("exit %d, output %q: want a failure and no token", code, out)
			}
			if !strings.Contains(stderr, tt.says) {
				t.Errorf("stderr %q does not say %q", stderr, tt.says)
			}
		})
	}
}

// TestRunRefusesAnUnusablePublicKey checks that a key file whose key
// cannot verify a JWT stops start-up, naming auth.jwt.public_key_file:
// one that holds no public key, one of a type or curve JWTs do not use,
// and an RSA key shorter than the 1024 bits crypto/rsa verifies with,
// which was accepted and then refused every token as badly signed.
func TestRunRefusesAnUnusablePublicKey(t *testing.T) {
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		pem  []byte
		says string
	}{
		{"no key", []byte("not a key"), "no PUBLIC KEY"},
		{"P-224", publicKeyPEM(t, &p224.PublicKey), "ECDSA curve P-224"},
		{"X25519", publicKeyPEM(t, x25519.PublicKey()), "*ecdh.PublicKey"},
		{"RSA 512", publicKeyPEM(t, rsa512(t)), "512 bits"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "jwt.pem")
			if err := os.WriteFile(path, tt.pem, 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := config.Default()
			cfg.Server.Addr = "127.0.0.1:0"
			cfg.Auth.JWT.PublicKeyFile = path
			m := &Main{Config: cfg, Logger: newLogger(cfg.Log, io.Discard)}
			// Done already: a server that got past the key stops at once.
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			err := m.Run(ctx)
			if err == nil || !strings.HasPrefix(err.Error(), "auth.jwt.public_key_file") || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("Run = %v, want an error naming auth.jwt.public_key_file that says %q", err, tt.says)
			}
		})
	}
}

// publicKeyPEM returns pub as a PEM "PUBLIC KEY" block.
func publicKeyPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// rsa512 returns a 512-bit RSA public key, built from two primes:
// rsa.GenerateKey refuses to make one.
func rsa512(t *testing.T) *rsa.PublicKey {
	t.Helper()
	p, err := rand.Prime(rand.Reader, 256)
	if err != nil {
		t.Fatal(err)
	}
	q, err := rand.Prime(rand.Reader, 256)
	if err != nil {
		t.Fatal(err)
	}
	return &rsa.PublicKey{N: new(big.Int).Mul(p, q), E: 65537}
}

// TestTokenHelpNamesTheConfigFlags checks that ssehub token -h names the
// config flags its usage line takes ("[config flags]"): it listed only its
// own.
func TestTokenHelpNamesTheConfigFlags(t *testing.T) {
	code, stdout, _ := runToken(t, nil, "-h")
	if code != 0 {
		t.Fatalf("ssehub token -h: exit %d", code)
	}
	for _, flag := range []string{"--config", "--addr", "--log-level", "--log-format", "--subscribe", "--ttl"} {
		if !strings.Contains(stdout, flag) {
			t.Errorf("ssehub token -h does not name %s:\n%s", flag, stdout)
		}
	}
}

// TestTokenCommandTTLWithinMaxLifetime mints, as `ssehub token` does, a
// token whose --ttl is not whole seconds, up to auth.jwt.max_lifetime,
// at a moment past the middle of a second: the server with the same
// configuration accepts it. A token's times are whole seconds, and its
// exp, rounded down from now plus the ttl, was a second more than the ttl
// from its iat, rounded down from now, so the server refused it as lasting
// too long, though the command refuses a --ttl the server would refuse.
func TestTokenCommandTTLWithinMaxLifetime(t *testing.T) {
	env := map[string]string{
		"SSEHUB_AUTH_JWT_HMAC_SECRET":  tokenEnv["SSEHUB_AUTH_JWT_HMAC_SECRET"],
		"SSEHUB_AUTH_JWT_MAX_LIFETIME": "1500ms",
	}
	cfg, err := config.Load([]string{"--config", os.DevNull}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := jwtVerifier(t.Context(), cfg.Auth.JWT)
	if err != nil {
		t.Fatal(err)
	}
	flags := tokenFlags()
	if err := flags.Parse([]string{"--subscribe", "a", "--ttl", "1500ms"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second).Add(600 * time.Millisecond)
	c, err := tokenClaims(flags, cfg.Auth.JWT, now)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := jwtauth.MintHMAC("HS256", []byte(cfg.Auth.JWT.HMACSecret), c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifier.Verify(signed); err != nil {
		t.Errorf("a token minted with --ttl 1500ms under auth.jwt.max_lifetime 1500ms is refused: %v", err)
	}
}
