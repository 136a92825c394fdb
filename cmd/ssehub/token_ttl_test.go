package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/config"
)

// TestTokenCommandDefaultTTLWithinMaxLifetime runs `ssehub token` without
// --ttl under an auth.jwt.max_lifetime below its default of 1h: it mints
// a token that lasts max_lifetime, which the server with the same
// configuration accepts. It failed, saying the default --ttl 1h was
// longer than max_lifetime, a flag the user had not given. A --ttl given
// longer than max_lifetime is still refused.
func TestTokenCommandDefaultTTLWithinMaxLifetime(t *testing.T) {
	env := map[string]string{
		"SSEHUB_AUTH_JWT_HMAC_SECRET":  tokenEnv["SSEHUB_AUTH_JWT_HMAC_SECRET"],
		"SSEHUB_AUTH_JWT_MAX_LIFETIME": "30m",
	}
	code, out, stderr := runToken(t, env, "--subscribe", "a")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q: want a token lasting auth.jwt.max_lifetime", code, stderr)
	}
	cfg, err := config.Load([]string{"--config", os.DevNull}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := jwtVerifier(t.Context(), cfg.Auth.JWT)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := verifier.Verify(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("the server refuses the token: %v", err)
	}
	if got := claims.ExpiresAt.Sub(claims.IssuedAt.Time); got != 30*time.Minute {
		t.Errorf("the token lasts %v, want auth.jwt.max_lifetime 30m", got)
	}
	if code, _, stderr := runToken(t, env, "--subscribe", "a", "--ttl", "1h"); code != 1 || !strings.Contains(stderr, "longer than auth.jwt.max_lifetime") {
		t.Errorf("--ttl 1h: exit %d, stderr %q: want it refused as longer than auth.jwt.max_lifetime", code, stderr)
	}
}
