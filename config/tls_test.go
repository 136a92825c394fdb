package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/internal/testpki"
)

// writeTLSPair writes a certificate for the loopback addresses and its
// key to a new directory and returns their paths.
func writeTLSPair(t *testing.T) (certFile, keyFile string) {
	pki := testpki.New(t)
	return pki.CertFile, pki.KeyFile
}

func readBytes(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestValidateTLS(t *testing.T) {
	cert, key := writeTLSPair(t)
	otherCert, otherKey := writeTLSPair(t)
	missing := filepath.Join(t.TempDir(), "absent.pem")
	chain := filepath.Join(t.TempDir(), "chain.pem")
	if err := os.WriteFile(chain, append(readBytes(t, cert), readBytes(t, otherCert)...), 0o600); err != nil {
		t.Fatal(err)
	}
	reversed := filepath.Join(t.TempDir(), "reversed.pem")
	if err := os.WriteFile(reversed, append(readBytes(t, otherCert), readBytes(t, cert)...), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// What openssl writes for a key encrypted with a passphrase: PKCS #8's
	// block (openssl pkey -aes256), or its former one with its headers
	// (openssl rsa -aes256 -traditional). Their contents are not read.
	encrypted := filepath.Join(t.TempDir(), "encrypted.pem")
	if err := os.WriteFile(encrypted, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("ciphertext")}), 0o600); err != nil {
		t.Fatal(err)
	}
	legacyEncrypted := filepath.Join(t.TempDir(), "legacy.pem")
	legacy := &pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"}, Bytes: []byte("ciphertext")}
	if err := os.WriteFile(legacyEncrypted, pem.EncodeToMemory(legacy), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		tls       TLSConfig
		h2c       bool
		want      string // "" for valid
		wantOther string // a key that must not be named
	}{
		{"neither", TLSConfig{}, false, "", ""},
		{"h2c without TLS", TLSConfig{}, true, "", ""},
		{"a pair", TLSConfig{CertFile: cert, KeyFile: key}, false, "", ""},
		{"a chain, the server's certificate first", TLSConfig{CertFile: chain, KeyFile: key}, false, "", ""},
		// The chain in the wrong order was blamed on the key.
		{"a chain, the server's certificate not first", TLSConfig{CertFile: reversed, KeyFile: key}, false, `server.tls.cert_file: "` + reversed + `": the certificate of server.tls.key_file is its number 2, not the first: put the server's certificate first, then the intermediates`, "server.tls.key_file:"},
		{"cert only", TLSConfig{CertFile: cert}, false, "server.tls.key_file: empty while server.tls.cert_file is set", "server.tls.cert_file:"},
		{"key only", TLSConfig{KeyFile: key}, false, "server.tls.cert_file: empty while server.tls.key_file is set", "server.tls.key_file:"},
		{"h2c with TLS", TLSConfig{CertFile: cert, KeyFile: key}, true, "server.h2c: true with server.tls set", "server.tls.cert_file:"},
		{"missing cert", TLSConfig{CertFile: missing, KeyFile: key}, false, `server.tls.cert_file: "` + missing + `": no such file`, "server.tls.key_file:"},
		{"missing key", TLSConfig{CertFile: cert, KeyFile: missing}, false, `server.tls.key_file: "` + missing + `": no such file`, "server.tls.cert_file:"},
		{"directory", TLSConfig{CertFile: filepath.Dir(cert), KeyFile: key}, false, "server.tls.cert_file: ", "server.tls.key_file:"},
		{"key as cert", TLSConfig{CertFile: key, KeyFile: key}, false, `server.tls.cert_file: "` + key + `": no PEM CERTIFICATE block`, "server.tls.key_file:"},
		// A key file holding no key, or an encrypted one, was "not the
		// private key of" the certificate.
		{"cert as key", TLSConfig{CertFile: cert, KeyFile: cert}, false, `server.tls.key_file: "` + cert + `": no PEM PRIVATE KEY block`, "server.tls.cert_file:"},
		{"empty key", TLSConfig{CertFile: cert, KeyFile: empty}, false, `server.tls.key_file: "` + empty + `": no PEM PRIVATE KEY block`, "server.tls.cert_file:"},
		{"encrypted key", TLSConfig{CertFile: cert, KeyFile: encrypted}, false, `server.tls.key_file: "` + encrypted + `": the private key is encrypted with a passphrase`, "server.tls.cert_file:"},
		{"encrypted key, OpenSSL's former form", TLSConfig{CertFile: cert, KeyFile: legacyEncrypted}, false, `server.tls.key_file: "` + legacyEncrypted + `": the private key is encrypted with a passphrase`, "server.tls.cert_file:"},
		{"another cert's key", TLSConfig{CertFile: cert, KeyFile: otherKey}, false, `server.tls.key_file: "` + otherKey + `" is not the private key of server.tls.cert_file "` + cert + `"`, "server.tls.cert_file:"},
		{"the other pair", TLSConfig{CertFile: otherCert, KeyFile: otherKey}, false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.Server.TLS, c.Server.H2C = tt.tls, tt.h2c
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want == "":
				return
			case err == nil || !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Validate() = %v, want %s", err, tt.want)
			case tt.wantOther != "" && strings.Contains(err.Error(), tt.wantOther):
				t.Errorf("Validate() = %v, names %s too", err, tt.wantOther)
			}
		})
	}
}

// TestLoadTLSSectionFromYAML reads the nested section from a file, and
// refuses a typo inside it, naming the section's keys.
func TestLoadTLSSectionFromYAML(t *testing.T) {
	cert, key := writeTLSPair(t)
	cfg, err := Load([]string{"--config", writeYAML(t, "server:\n  tls:\n    cert_file: "+cert+"\n    key_file: "+key+"\n")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.TLS != (TLSConfig{CertFile: cert, KeyFile: key}) || !cfg.Server.TLS.Enabled() {
		t.Errorf("server.tls = %+v", cfg.Server.TLS)
	}
	if _, err := Load([]string{"--config", writeYAML(t, "server:\n  tls:\n")}, nil); err != nil {
		t.Errorf("an empty tls section: %v", err)
	}
	_, err = Load([]string{"--config", writeYAML(t, "server:\n  tls:\n    cert: x\n")}, nil)
	if want := "server.tls.cert: unknown key (known keys in server.tls: cert_file, key_file)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want %s", err, want)
	}
	_, err = Load([]string{"--config", writeYAML(t, "server:\n  tls: on\n")}, nil)
	if want := "server.tls: expected a section of keys"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want %s", err, want)
	}
}

// TestLoadShortRSATLSKey checks that a server.tls key that crypto/tls
// signs nothing with, a 512-bit RSA key, is refused as a bad value, naming
// what set it: the server started with it, and every TLS handshake failed.
func TestLoadShortRSATLSKey(t *testing.T) {
	pki := testpki.New(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	pki.ShortRSA(t).Write(t, certFile, keyFile)
	_, err := Load([]string{"--config", os.DevNull}, env(map[string]string{
		"SSEHUB_SERVER_TLS_CERT_FILE": certFile, "SSEHUB_SERVER_TLS_KEY_FILE": keyFile,
	}))
	want := `server.tls.key_file: "` + keyFile + `": an RSA key of 512 bits, which crypto/tls signs nothing with: every handshake would fail; use 2048 bits or more; set by SSEHUB_SERVER_TLS_KEY_FILE`
	if err == nil || err.Error() != want {
		t.Errorf("server.tls: err = %v\nwant %s", err, want)
	}
}

// TestLoadJWTPublicKeyUnusable checks that an auth.jwt.public_key_file
// holding a key no JWT is verified with, an RSA key shorter than
// crypto/rsa uses or an ECDSA key on a curve JWTs do not use, is refused
// as a bad value, naming what set it: the start failed after the
// configuration was loaded, its error naming neither the variable nor the
// file's line, and `ssehub token` and `ssehub healthcheck` took it.
func TestLoadJWTPublicKeyUnusable(t *testing.T) {
	pub := filepath.Join(t.TempDir(), "jwt.pem")
	if err := os.WriteFile(pub, testpki.ShortRSAPublicKey(t), 0o600); err != nil {
		t.Fatal(err)
	}
	path := writeYAML(t, "auth:\n  jwt:\n    public_key_file: "+pub+"\n")
	_, err := Load([]string{"--config", path}, nil)
	want := `config file "` + path + `": line 3: auth.jwt.public_key_file: "` + pub + `": its PUBLIC KEY block holds an RSA key of 512 bits: at least 1024 are needed; 2048 or more is usual`
	if err == nil || err.Error() != want {
		t.Errorf("auth.jwt.public_key_file: err = %v\nwant %s", err, want)
	}

	ec, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load([]string{"--config", path}, nil)
	want = `config file "` + path + `": line 3: auth.jwt.public_key_file: "` + pub + `": its PUBLIC KEY block holds an ECDSA key on curve P-224: JWTs use P-256, P-384 or P-521`
	if err == nil || err.Error() != want {
		t.Errorf("auth.jwt.public_key_file: err = %v\nwant %s", err, want)
	}
}

// TestLoadPEMFileOverTheCap checks that a PEM file longer than
// MaxPEMFileBytes (1 MiB, hundreds of times a certificate chain, several
// times a system's whole CA bundle) is refused naming its key and what set
// it, not read whole: a multi-GB file, a log named by mistake, was read
// into memory at start. Each file here is a good one padded past the cap
// with lines PEM ignores, so only the size refuses it.
func TestLoadPEMFileOverTheCap(t *testing.T) {
	pki := testpki.New(t)
	dir := t.TempDir()
	padded := func(name string, pemData []byte) string {
		t.Helper()
		path := filepath.Join(dir, name)
		pad := strings.Repeat("# padding after the PEM blocks\n", MaxPEMFileBytes/30+1)
		if err := os.WriteFile(path, append(pemData, pad...), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	bigCert := padded("cert.pem", readBytes(t, pki.CertFile))
	bigKey := padded("key.pem", readBytes(t, pki.KeyFile))
	for _, tt := range []struct {
		key, variable string
		vars          map[string]string
	}{
		{"server.tls.cert_file", "SSEHUB_SERVER_TLS_CERT_FILE", map[string]string{"SSEHUB_SERVER_TLS_CERT_FILE": bigCert, "SSEHUB_SERVER_TLS_KEY_FILE": pki.KeyFile}},
		{"server.tls.key_file", "SSEHUB_SERVER_TLS_KEY_FILE", map[string]string{"SSEHUB_SERVER_TLS_CERT_FILE": pki.CertFile, "SSEHUB_SERVER_TLS_KEY_FILE": bigKey}},
		{"nats.ca_file", "SSEHUB_NATS_CA_FILE", map[string]string{"SSEHUB_HUB_BROKER": "nats", "SSEHUB_NATS_CA_FILE": bigCert}},
		{"auth.jwt.public_key_file", "SSEHUB_AUTH_JWT_PUBLIC_KEY_FILE", map[string]string{"SSEHUB_AUTH_JWT_PUBLIC_KEY_FILE": bigCert}},
	} {
		_, err := Load([]string{"--config", os.DevNull}, env(tt.vars))
		path := tt.vars[tt.variable]
		want := tt.key + `: "` + path + `": longer than 1 MiB (1048576 bytes)`
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "set by "+tt.variable) {
			t.Errorf("%s: err = %v\nwant %s ... set by %s", tt.key, err, want, tt.variable)
		}
	}
}
