package config

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Bounds of the auth.jwt keys.
const (
	// minHMACSecret is the shortest HMAC secret: RFC 7518 (3.2) wants a
	// key at least as long as the hash, 256 bits for HS256 (and 384 and
	// 512 for HS384 and HS512: hmacSecretBytes).
	minHMACSecret = 32
	maxJWTLeeway  = 5 * time.Minute
)

// hmacAlgorithms and publicKeyAlgorithms are the JWT algorithms ssehub
// accepts, by the key that verifies them. "none" is never one.
var (
	hmacAlgorithms      = []string{"HS256", "HS384", "HS512"}
	publicKeyAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

// HMACAlgorithm reports whether alg is verified with auth.jwt.hmac_secret
// (HS256, HS384, HS512).
func HMACAlgorithm(alg string) bool {
	return slices.Contains(hmacAlgorithms, alg)
}

// hmacSecretBytes is the shortest secret the HMAC algorithm alg takes: as
// long as its hash (RFC 7518, 3.2), 32 bytes for HS256, 48 for HS384, 64
// for HS512.
func hmacSecretBytes(alg string) int {
	var bits int
	_, _ = fmt.Sscanf(alg, "HS%d", &bits)
	return bits / 8
}

func (j JWTConfig) validate(ctx context.Context) []error {
	var errs []error
	if j.HMACSecret != "" && strings.TrimSpace(j.HMACSecret) == "" {
		// Taken as it is (envValue), so not unset: a key anyone can guess.
		errs = append(errs, invalid("auth.jwt.hmac_secret", "white space alone: set a random secret, or leave it empty (value not shown)"))
	} else if strings.TrimSpace(j.HMACSecret) != j.HMACSecret {
		// Taken as it is, a newline that a file left at the end (a Secret
		// made with kubectl --from-file, echo's) was part of the key, and
		// every token signed with the secret alone was refused.
		errs = append(errs, invalid("auth.jwt.hmac_secret", "starts or ends with white space, a newline a file left for one, which would be part of the key: tokens signed without it would be refused; remove it (value not shown)"))
	} else if j.HMACSecret != "" && len(j.HMACSecret) < minHMACSecret {
		// A secret: its length is said, not its value.
		errs = append(errs, invalid("auth.jwt.hmac_secret", fmt.Sprintf("%d bytes: at least %d are needed (value not shown)", len(j.HMACSecret), minHMACSecret)))
	}
	if j.PublicKeyFile != "" {
		if err := checkPublicKeyFile(ctx, j.PublicKeyFile); err != nil {
			errs = append(errs, invalid("auth.jwt.public_key_file", fmt.Sprintf("%q: %v", j.PublicKeyFile, err)))
		}
	}
	if !j.Enabled() {
		// Checks of tokens never accepted: most likely a key that went
		// missing (an unset SSEHUB_AUTH_JWT_HMAC_SECRET), which leaves
		// subscribing open without subscribe tokens.
		set := [][2]string{{"auth.jwt.issuer", j.Issuer}, {"auth.jwt.audience", j.Audience}}
		if j.MaxLifetime > 0 {
			set = append(set, [2]string{"auth.jwt.max_lifetime", j.MaxLifetime.String()})
		}
		for _, kv := range set {
			if kv[1] != "" {
				errs = append(errs, invalid(kv[0], fmt.Sprintf("%q is set, but no JWT key is (auth.jwt.hmac_secret or auth.jwt.public_key_file): JWTs would be off", kv[1])))
			}
		}
	}
	for _, alg := range j.Algorithms {
		if err := j.checkAlgorithm(alg); err != nil {
			errs = append(errs, invalid("auth.jwt.algorithms", err.Error()).with(algorithmKey(alg)...))
		}
	}
	if j.Leeway < 0 || j.Leeway > maxJWTLeeway {
		errs = append(errs, invalid("auth.jwt.leeway", fmt.Sprintf("%q must be between 0s and %v", j.Leeway, maxJWTLeeway)))
	}
	if j.MaxLifetime < 0 || j.MaxLifetime > 0 && j.MaxLifetime < time.Second {
		// Token times are whole seconds: under 1s no token could last
		// long enough to be used.
		errs = append(errs, invalid("auth.jwt.max_lifetime", fmt.Sprintf("%q must be 0s (no limit) or at least 1s", j.MaxLifetime)))
	}
	if !validHeaderName(j.CookieName) || j.CookieName == "*" {
		errs = append(errs, invalid("auth.jwt.cookie_name", fmt.Sprintf("%q is not a cookie name", j.CookieName)))
	}
	return errs
}

// algorithmKey names the key alg's problem (checkAlgorithm) may be with
// besides auth.jwt.algorithms: the key of alg's kind, none for another
// algorithm.
func algorithmKey(alg string) []string {
	switch {
	case HMACAlgorithm(alg):
		return []string{"auth.jwt.hmac_secret"}
	case slices.Contains(publicKeyAlgorithms, alg):
		return []string{"auth.jwt.public_key_file"}
	}
	return nil
}

// checkAlgorithm checks that alg is a JWT algorithm ssehub accepts and
// that a key for it is configured.
func (j JWTConfig) checkAlgorithm(alg string) error {
	switch {
	case strings.EqualFold(alg, "none"):
		return fmt.Errorf("%q is never accepted: unsigned tokens would grant anything", alg)
	case HMACAlgorithm(alg):
		if j.HMACSecret == "" {
			return fmt.Errorf("%q needs auth.jwt.hmac_secret (with only a public key, an HMAC token could be signed with the public key itself)", alg)
		}
		if n := hmacSecretBytes(alg); len(j.HMACSecret) >= minHMACSecret && len(j.HMACSecret) < n {
			// A secret: its length is said, not its value.
			return fmt.Errorf("%q needs an auth.jwt.hmac_secret of %d bytes or more, as long as its hash (RFC 7518); it has %d (value not shown)", alg, n, len(j.HMACSecret))
		}
	case slices.Contains(publicKeyAlgorithms, alg):
		if j.PublicKeyFile == "" {
			return fmt.Errorf("%q needs auth.jwt.public_key_file", alg)
		}
	default:
		all := slices.Concat(hmacAlgorithms, publicKeyAlgorithms)
		if i := slices.IndexFunc(all, func(a string) bool { return strings.EqualFold(a, alg) }); i >= 0 {
			// Other keys' choices (log.level) take any case: these are
			// JWT's own names, which a token's header writes so.
			return fmt.Errorf("%q is written %s: algorithm names are case-sensitive, as a token's header writes them", alg, all[i])
		}
		return fmt.Errorf("%q must be one of %s", alg, strings.Join(all, ", "))
	}
	return nil
}

// checkPublicKeyFile checks that path, auth.jwt.public_key_file, is a
// file ReadPEMFile accepts whose first public key block (PUBLIC KEY, RSA
// PUBLIC KEY or CERTIFICATE, as the verifier reads it) parses into an
// RSA, ECDSA or Ed25519 key: a file holding none (the private key, any
// other file) was found only after the configuration was loaded, and its
// error named neither the variable nor the file's line that set it. So
// were an RSA key shorter than crypto/rsa verifies with and an ECDSA key
// on a curve JWTs do not use, which are refused here too.
func checkPublicKeyFile(ctx context.Context, path string) error {
	data, err := ReadPEMFileContext(ctx, path)
	if err != nil {
		return err
	}
	for {
		var block *pem.Block
		if block, data = pem.Decode(data); block == nil {
			return errors.New("no PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE block in the PEM data")
		}
		var key any
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = cert.PublicKey
			}
		default:
			continue
		}
		if err != nil {
			return fmt.Errorf("its %s block does not parse: %w", block.Type, err)
		}
		switch k := key.(type) {
		case *rsa.PublicKey:
			if n := k.N.BitLen(); n < minRSABits {
				return fmt.Errorf("its %s block holds an RSA key of %d bits: at least %d are needed; 2048 or more is usual", block.Type, n, minRSABits)
			}
			return nil
		case *ecdsa.PublicKey:
			switch k.Curve {
			case elliptic.P256(), elliptic.P384(), elliptic.P521():
				return nil
			}
			return fmt.Errorf("its %s block holds an ECDSA key on curve %s: JWTs use P-256, P-384 or P-521", block.Type, k.Curve.Params().Name)
		case ed25519.PublicKey:
			return nil
		}
		return fmt.Errorf("its %s block holds a %T key: JWTs are signed with RSA, ECDSA or Ed25519", block.Type, key)
	}
}
