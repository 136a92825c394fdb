package config

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// validateTLS checks the server.tls keys and server.h2c against them: both
// files or neither; each a file ReadPEMFile reads; the first certificate
// parses and the key is its private key, one crypto/tls signs with
// (CheckTLSKey). A pair that would fail at start fails here,
// naming the key at fault.
func (s ServerConfig) validateTLS(ctx context.Context) []error {
	t := s.TLS
	if !t.Enabled() {
		return nil
	}
	var errs []error
	if s.H2C {
		errs = append(errs, invalid("server.h2c", "true with server.tls set: HTTPS already serves HTTP/2; h2c is cleartext HTTP/2 for a proxy in front (set one or the other)").with("server.tls.cert_file", "server.tls.key_file"))
	}
	switch {
	case t.CertFile == "":
		return append(errs, invalid("server.tls.cert_file", "empty while server.tls.key_file is set: set both or neither").with("server.tls.key_file"))
	case t.KeyFile == "":
		return append(errs, invalid("server.tls.key_file", "empty while server.tls.cert_file is set: set both or neither").with("server.tls.cert_file"))
	}
	certPEM, err := ReadPEMFileContext(ctx, t.CertFile)
	if err != nil {
		return append(errs, invalid("server.tls.cert_file", fmt.Sprintf("%q: %v", t.CertFile, err)))
	}
	keyPEM, err := ReadPEMFileContext(ctx, t.KeyFile)
	if err != nil {
		return append(errs, invalid("server.tls.key_file", fmt.Sprintf("%q: %v", t.KeyFile, err)))
	}
	if err := checkCertificate(certPEM); err != nil {
		return append(errs, invalid("server.tls.cert_file", fmt.Sprintf("%q: %v", t.CertFile, err)))
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if kerr := checkPrivateKey(keyPEM); kerr != nil {
			return append(errs, invalid("server.tls.key_file", fmt.Sprintf("%q: %v", t.KeyFile, kerr)))
		}
		if n := keyCertificate(certPEM, keyPEM); n > 1 {
			return append(errs, invalid("server.tls.cert_file", fmt.Sprintf(
				"%q: the certificate of server.tls.key_file is its number %d, not the first: put the server's certificate first, then the intermediates", t.CertFile, n)).with("server.tls.key_file"))
		}
		return append(errs, invalid("server.tls.key_file", fmt.Sprintf("%q is not the private key of server.tls.cert_file %q: %v", t.KeyFile, t.CertFile, err)).with("server.tls.cert_file"))
	}
	if err := CheckTLSKey(pair.PrivateKey); err != nil {
		return append(errs, invalid("server.tls.key_file", fmt.Sprintf("%q: %v", t.KeyFile, err)))
	}
	return errs
}

// minRSABits is the shortest RSA key crypto/rsa signs or verifies with.
const minRSABits = 1024

// CheckTLSKey reports a private key of server.tls that crypto/tls signs
// nothing with, an RSA key shorter than minRSABits: the server started
// with it, and every handshake failed ("certificate RSA key size too
// small").
func CheckTLSKey(key crypto.PrivateKey) error {
	if k, ok := key.(*rsa.PrivateKey); ok && k.N.BitLen() < minRSABits {
		return fmt.Errorf("an RSA key of %d bits, which crypto/tls signs nothing with: every handshake would fail; use 2048 bits or more", k.N.BitLen())
	}
	return nil
}

// checkPrivateKey reports a key file that holds no private key to pair
// with a certificate: no PEM PRIVATE KEY block (an empty file, a
// certificate), or one encrypted with a passphrase, which ssehub never
// asks for. Both were said to be "not the private key of" the
// certificate, which sent the user comparing two files that could not
// match.
func checkPrivateKey(data []byte) error {
	for {
		block, rest := pem.Decode(data)
		if block == nil {
			return errors.New("no PEM PRIVATE KEY block")
		}
		data = rest
		switch {
		case block.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED"):
			return errors.New("the private key is encrypted with a passphrase, which ssehub does not ask for: write it unencrypted (openssl pkey -in KEY -out PLAIN) and keep that file readable only by ssehub")
		case block.Type == "PRIVATE KEY" || strings.HasSuffix(block.Type, " PRIVATE KEY"):
			return nil
		}
	}
}

// keyCertificate returns the position, from 1, of the certificate in
// certPEM that keyPEM is the private key of, or 0 when there is none: a
// chain written in the wrong order, the server's certificate after an
// intermediate, holds it further down.
func keyCertificate(certPEM, keyPEM []byte) int {
	n := 0
	for {
		block, rest := pem.Decode(certPEM)
		if block == nil {
			return 0
		}
		certPEM = rest
		if block.Type != "CERTIFICATE" {
			continue
		}
		n++
		if _, err := tls.X509KeyPair(pem.EncodeToMemory(block), keyPEM); err == nil {
			return n
		}
	}
}

// checkCertificate checks that data starts, after any other PEM blocks,
// with a CERTIFICATE block holding a certificate Go can parse.
func checkCertificate(data []byte) error {
	for {
		block, rest := pem.Decode(data)
		if block == nil {
			return errors.New("no PEM CERTIFICATE block")
		}
		if block.Type == "CERTIFICATE" {
			_, err := x509.ParseCertificate(block.Bytes)
			return err
		}
		data = rest
	}
}
