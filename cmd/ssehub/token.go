package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/spf13/pflag"
	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/jwtauth"
	"github.com/ssehub/ssehub/internal/stream"
)

// tokenFlags are the flags of `ssehub token`; every other argument goes to
// config.Load, as for serve (--config and the rest).
func tokenFlags() *pflag.FlagSet {
	flags := pflag.NewFlagSet("ssehub token", pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.Usage = func() {}
	flags.SortFlags = false
	flags.StringArray("subscribe", nil, "a topic pattern the token may subscribe to (repeat for more)")
	flags.StringArray("publish", nil, "a topic pattern the token may publish to (repeat for more)")
	flags.Duration("ttl", time.Hour, "how long the token is valid, at most auth.jwt.max_lifetime when set (left out: 1h, or max_lifetime when shorter)")
	flags.String("subject", "", "the token's sub claim (optional)")
	return flags
}

// token prints a JWT for development, signed with auth.jwt.hmac_secret,
// granting the topics of its flags, and carrying auth.jwt.issuer and
// auth.jwt.audience when set, so that a server with the same config
// accepts it.
func token(ctx context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	flags := tokenFlags()
	own, rest := splitArgs(flags, args)
	if err := flags.Parse(own); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return &config.HelpError{Usage: "Usage: ssehub token [--subscribe PATTERN]... [--publish PATTERN]... [--ttl 1h] [config flags]\n\n" + flags.FlagUsages() +
				"\nConfig flags: --config, --addr, --log-level, --log-format, as for the server (ssehub -h).\n" +
				"The config is read as the server reads it, SSEHUB_ variables included: the token is\n" +
				"signed with auth.jwt.hmac_secret, with auth.jwt.issuer and auth.jwt.audience.\n"}
		}
		return fmt.Errorf("%w: %w", config.ErrUsage, err)
	}
	cfg, err := config.LoadContext(ctx, rest, getenv)
	if err != nil {
		return err
	}
	c, err := tokenClaims(flags, cfg.Auth.JWT, time.Now())
	if err != nil {
		return err
	}
	alg, err := mintAlgorithm(cfg.Auth.JWT)
	if err != nil {
		return err
	}
	signed, err := jwtauth.MintHMAC(alg, []byte(cfg.Auth.JWT.HMACSecret), c)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, signed)
	return nil
}

// tokenClaims builds the claims the flags ask for, issued at now.
func tokenClaims(flags *pflag.FlagSet, j config.JWTConfig, now time.Time) (jwtauth.Claims, error) {
	sub, _ := flags.GetStringArray("subscribe")
	pub, _ := flags.GetStringArray("publish")
	ttl, _ := flags.GetDuration("ttl")
	subject, _ := flags.GetString("subject")
	if len(sub) == 0 && len(pub) == 0 {
		return jwtauth.Claims{}, fmt.Errorf("%w: grant something: --subscribe 'demo.>' or --publish 'orders.>'", config.ErrUsage)
	}
	if ttl <= 0 {
		return jwtauth.Claims{}, fmt.Errorf("%w: --ttl %v must be positive", config.ErrUsage, ttl)
	}
	if ttl < time.Second {
		// A token's times are whole seconds: one shorter would expire as
		// it is issued, which only the verifier's leeway would hide.
		return jwtauth.Claims{}, fmt.Errorf("%w: --ttl %v: want 1s or more, a token's times being whole seconds", config.ErrUsage, ttl)
	}
	if !flags.Changed("ttl") && j.MaxLifetime > 0 && ttl > j.MaxLifetime {
		// The default is the longest the server accepts when that is
		// shorter: the user gave no --ttl for a refusal to name.
		ttl = j.MaxLifetime
	}
	if j.MaxLifetime > 0 && ttl > j.MaxLifetime {
		// The server with this configuration would refuse the token.
		return jwtauth.Claims{}, fmt.Errorf("%w: --ttl %v is longer than auth.jwt.max_lifetime %v", config.ErrUsage, ttl, j.MaxLifetime)
	}
	for _, p := range slices.Concat(sub, pub) {
		if err := stream.ValidatePattern(p); err != nil {
			return jwtauth.Claims{}, fmt.Errorf("%w: %w", config.ErrUsage, err)
		}
	}
	c := jwtauth.Claims{SSEHub: jwtauth.Grants{Subscribe: sub, Publish: pub}}
	// A token's times are whole seconds: exp counts the ttl from iat as
	// written, so that the token lasts the ttl rounded down, never the
	// second more that rounding now and now+ttl down each could give
	// (which auth.jwt.max_lifetime would refuse).
	issued := now.Truncate(time.Second)
	c.IssuedAt = jwt.NewNumericDate(issued)
	c.ExpiresAt = jwt.NewNumericDate(issued.Add(ttl))
	c.Issuer, c.Subject = j.Issuer, subject
	if j.Audience != "" {
		c.Audience = jwt.ClaimStrings{j.Audience}
	}
	return c, nil
}

// mintAlgorithm is the HMAC algorithm to sign with: HS256, or the first
// HMAC algorithm auth.jwt.algorithms accepts.
func mintAlgorithm(j config.JWTConfig) (string, error) {
	if j.HMACSecret == "" {
		return "", errors.New("token: no auth.jwt.hmac_secret is configured (set SSEHUB_AUTH_JWT_HMAC_SECRET, 32 bytes or more): ssehub token signs with it")
	}
	if len(j.Algorithms) == 0 {
		return "HS256", nil
	}
	if i := slices.IndexFunc(j.Algorithms, config.HMACAlgorithm); i >= 0 {
		return j.Algorithms[i], nil
	}
	return "", fmt.Errorf("token: auth.jwt.algorithms (%s) accepts no HMAC algorithm, and ssehub token signs with auth.jwt.hmac_secret", strings.Join(j.Algorithms, ", "))
}

// splitArgs separates the arguments of flags (with their values) from the
// rest, which keep their order.
func splitArgs(flags *pflag.FlagSet, args []string) (own, rest []string) {
	for i := 0; i < len(args); i++ {
		name, _, hasValue := strings.Cut(strings.TrimPrefix(args[i], "--"), "=")
		switch {
		case args[i] == "-h" || args[i] == "--help":
			own = append(own, args[i])
		case strings.HasPrefix(args[i], "--") && flags.Lookup(name) != nil:
			own = append(own, args[i])
			if !hasValue && i+1 < len(args) {
				i++
				own = append(own, args[i])
			}
		default:
			rest = append(rest, args[i])
		}
	}
	return own, rest
}
