package main

import (
	"context"
	"fmt"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/jwtauth"
)

// jwtVerifier builds the verifier of auth.jwt, reading the public key
// file; nil when no key is configured (JWTs off). Errors name the key.
// The read waits for a lease another process holds on the file until ctx
// is done, the error then holding context.Cause(ctx) (a signal).
func jwtVerifier(ctx context.Context, c config.JWTConfig) (*jwtauth.Verifier, error) {
	if !c.Enabled() {
		return nil, nil
	}
	opts := jwtauth.Options{
		HMACSecret:  []byte(c.HMACSecret),
		Algorithms:  c.Algorithms,
		Issuer:      c.Issuer,
		Audience:    c.Audience,
		Leeway:      c.Leeway,
		MaxLifetime: c.MaxLifetime,
	}
	if c.PublicKeyFile != "" {
		// Read as the configuration's check read it: a file replaced
		// since by a FIFO is refused, not waited on, and one grown past
		// config.MaxPEMFileBytes is not read whole.
		data, err := config.ReadPEMFileContext(ctx, c.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("auth.jwt.public_key_file %q: %w", c.PublicKeyFile, err)
		}
		if opts.PublicKey, err = jwtauth.ParsePublicKey(data); err != nil {
			return nil, fmt.Errorf("auth.jwt.public_key_file %q: %w", c.PublicKeyFile, err)
		}
	}
	v, err := jwtauth.New(opts)
	if err != nil {
		return nil, fmt.Errorf("auth.jwt.algorithms: %w", err)
	}
	return v, nil
}
