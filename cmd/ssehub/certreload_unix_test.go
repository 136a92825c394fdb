//go:build unix

package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/testpki"
)

// handshakeCert GETs /healthz from base on a new connection, trusting
// roots, within 10 seconds (a handshake takes milliseconds), and returns
// the certificate the server presented.
func handshakeCert(base string, roots *x509.CertPool) ([]byte, error) {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(base + "/healthz")
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	return resp.TLS.PeerCertificates[0].Raw, nil
}

// TestTLSReloadKeepsItsCertificateForAFIFOOrAnOversizedFile: a check of
// server.tls's files that finds one of them replaced by a FIFO (a named
// pipe, as a tool that hands out secrets may make) or longer than
// config.MaxPEMFileBytes keeps the previous certificate serving, with a
// warning saying why, as a pair that does not load does. The FIFO's
// open(2) waited for a writer with the reloader's lock held, so that this
// handshake and every later one hung; the long file was read whole into
// memory at every check. A good pair written after is loaded.
func TestTLSReloadKeepsItsCertificateForAFIFOOrAnOversizedFile(t *testing.T) {
	const warning = `level=WARN msg="server.tls: the pair on disk does not load: still serving the previous certificate"`
	for _, which := range []string{"cert_file", "key_file"} {
		t.Run(which, func(t *testing.T) {
			pki := testpki.New(t)
			var logs lockedBuffer
			base, _ := startMainLogging(t, tlsTestConfig(pki), slog.New(slog.NewTextHandler(&logs, nil)), everyHandshake)
			serves := func(step string, want []byte) {
				t.Helper()
				got, err := handshakeCert(base, pki.Roots)
				if err != nil {
					t.Fatalf("%s: %v", step, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%s: a new connection gets another certificate than expected", step)
				}
			}
			warned := func(step, why string, n int) {
				t.Helper()
				log := logs.tail(1 << 20)
				if got := strings.Count(log, warning); got != n || !strings.Contains(log, why) {
					t.Fatalf("%s: %d warnings, want %d saying %q:\n%s", step, got, n, why, log)
				}
			}
			path := pki.CertFile
			if which == "key_file" {
				path = pki.KeyFile
			}
			original := fileCert(t, pki.CertFile, pki.KeyFile)
			originalPEM := readFile(t, path)
			serves("at start", original)

			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				// Release an open(2) still waiting: a writer, which
				// opening for reading and writing is, never waits.
				if f, err := os.OpenFile(path, os.O_RDWR, 0); err == nil {
					f.Close()
				}
			})
			serves("a FIFO", original)
			serves("a FIFO, again", original)
			warned("a FIFO", `err="server.tls.`+which+`: not a regular file"`, 1)

			// The served pair back in place: a check finds nothing to
			// load, and the next failure is warned of again.
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			w := newStampedWriter(t)
			w.write(path, originalPEM)
			serves("the served pair back", original)
			warned("the served pair back", `err="server.tls.`+which+`: not a regular file"`, 1)

			renewed := pki.Renew(t)
			pad := bytes.Repeat([]byte("# padding after the PEM blocks\n"), config.MaxPEMFileBytes/30+1)
			if which == "cert_file" {
				w.write(pki.CertFile, append(bytes.Clone(renewed.CertPEM), pad...))
				w.write(pki.KeyFile, renewed.KeyPEM)
			} else {
				w.write(pki.CertFile, renewed.CertPEM)
				w.write(pki.KeyFile, append(bytes.Clone(renewed.KeyPEM), pad...))
			}
			serves("a file longer than the cap", original)
			warned("a file longer than the cap", `err="server.tls.`+which+`: longer than 1 MiB`, 2)

			w.write(pki.CertFile, renewed.CertPEM)
			w.write(pki.KeyFile, renewed.KeyPEM)
			serves("the pair renewed", renewed.DER)
		})
	}
}
