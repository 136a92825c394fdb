// Package testpki makes certificates for tests: a CA and a server
// certificate it signed for the loopback addresses, as PEM files, and
// renewals of that certificate from the same CA. Only tests import it.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a test CA and a server certificate it signed for 127.0.0.1,
// ::1 and localhost, written as PEM files.
type PKI struct {
	CertFile, KeyFile string         // the server's certificate and its key
	CAFile            string         // the CA's certificate
	Roots             *x509.CertPool // the CA

	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
}

// Pair is a server certificate and its private key.
type Pair struct {
	CertPEM, KeyPEM []byte
	DER             []byte // the certificate: what a client sees as PeerCertificates[0].Raw
}

// New makes a CA and a server certificate, valid for an hour, in a new
// directory of t's that is removed when the test ends.
func New(t testing.TB) PKI {
	t.Helper()
	caKey := newKey(t)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ssehub test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pki := PKI{
		CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"),
		CAFile: filepath.Join(dir, "ca.pem"), Roots: x509.NewCertPool(), ca: ca, caKey: caKey,
	}
	pki.Roots.AddCert(ca)
	writeFile(t, pki.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	pki.Renew(t).Write(t, pki.CertFile, pki.KeyFile)
	return pki
}

// Renew makes another server certificate like the one in p.CertFile,
// valid for an hour, with a new key and signed by the same CA, and
// returns it without writing it.
func (p PKI) Renew(t testing.TB) Pair {
	t.Helper()
	return p.signLocal(t, newKey(t))
}

// Named makes a server certificate for the host names only, no
// address, valid for an hour and signed by p's CA, and returns it
// without writing it.
func (p PKI) Named(t testing.TB, names ...string) Pair {
	t.Helper()
	return p.sign(t, names, nil)
}

// ShortRSA makes a server certificate like Renew's for a 512-bit RSA
// key, which crypto/tls signs nothing with: every handshake with it
// fails. Go makes no such key: it is a constant.
func (p PKI) ShortRSA(t testing.TB) Pair {
	t.Helper()
	return p.signLocal(t, shortRSA(t))
}

// shortRSA returns shortRSAKey parsed.
func shortRSA(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	block, _ := pem.Decode([]byte(shortRSAKey))
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return key.(*rsa.PrivateKey)
}

// shortRSAKey is a 512-bit RSA private key, made by openssl genrsa.
const shortRSAKey = `-----BEGIN PRIVATE KEY-----
MIIBUwIBADANBgkqhkiG9w0BAQEFAASCAT0wggE5AgEAAkEAwTwfdC7p5MAgA7K3
9DzTNPp+yDFrOzefGtzTF2rcnF1KYFClGdCXTBtr5yn6LYMTs4hB7JRJgXoVVlIj
a2iXFQIDAQABAkA3eouNT+rXQlHuveESvmPlUgYUdBvVZKLJk50HnCa6vY222f5D
/wl70DeUxA5ZMi1LE5bkNhZYD8bYC7cygxABAiEA9qw8KDA66N/TCuZZUIDCwffw
EvzoN5Y4TsuFJtb8PC0CIQDIip1X7tiLqcGVnZvwrZ1mqwnKCn0fqI+48Gz/N1TP
iQIgfKMGOmA0Q9pkLku5sT1+Krf2bAGx6/RROy8GdluGU3kCIDavTc6fq98R0F8L
Fm3f+e74LvgwOgR7A44Lyb0iinb5AiA0GTavqYbwWra3H537nCsbG58JJJDQrKcK
+yPS6gQ89A==
-----END PRIVATE KEY-----
`

// ShortRSAPublicKey returns the public key of ShortRSA's certificate,
// 512 bits, as PEM PUBLIC KEY.
func ShortRSAPublicKey(t testing.TB) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&shortRSA(t).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// sign makes a server certificate for names and ips.
func (p PKI) sign(t testing.TB, names []string, ips []net.IP) Pair {
	t.Helper()
	return p.signKey(t, names, ips, newKey(t))
}

// signLocal makes a server certificate for localhost, 127.0.0.1 and ::1,
// and key: the one New writes, and those like it.
func (p PKI) signLocal(t testing.TB, key crypto.Signer) Pair {
	t.Helper()
	return p.signKey(t, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, key)
}

// signKey makes a server certificate for names and ips, and key.
func (p PKI) signKey(t testing.TB, names []string, ips []net.IP, key crypto.Signer) Pair {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		IPAddresses:  ips,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, key.Public(), p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return Pair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		DER:     der,
	}
}

// Write writes the certificate to certFile, then the key to keyFile,
// replacing what they hold.
func (pr Pair) Write(t testing.TB, certFile, keyFile string) {
	t.Helper()
	writeFile(t, certFile, pr.CertPEM)
	writeFile(t, keyFile, pr.KeyPEM)
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}
