package main

// Tests of a renewed server.tls pair taken up without a restart: written
// over the files or swapped in behind a symlink, a bad pair meanwhile,
// an open stream across it all, the healthcheck, and the check interval.

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
	"github.com/ssehub/ssehub/internal/testpki"
)

// everyHandshake makes every TLS handshake of m check server.tls's files.
func everyHandshake(m *Main) { m.certCheck = new(time.Duration) }

// stampedWriter writes files for a test, giving each its own modification
// time, a second after the last one's, as renewals hours apart have. (The
// check compares contents: TestCertReloaderSeesARenewalOfTheSameStamp
// writes without it.)
type stampedWriter struct {
	t     *testing.T
	mtime time.Time
}

func newStampedWriter(t *testing.T) *stampedWriter {
	return &stampedWriter{t: t, mtime: time.Now()}
}

func (w *stampedWriter) write(path string, data []byte) {
	w.t.Helper()
	w.mtime = w.mtime.Add(time.Second)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Chtimes(path, time.Time{}, w.mtime); err != nil {
		w.t.Fatal(err)
	}
}

// pairFiles lays out server.tls's files from pki's pair and returns them
// with put, which installs another certificate and key the way a
// renewal does.
type pairFiles func(t *testing.T, pki testpki.PKI) (certFile, keyFile string, put func(certPEM, keyPEM []byte))

// filesInPlace: a renewal writes over the files, the certificate first,
// as certbot's --deploy-hook copies or a plain cp do.
func filesInPlace(t *testing.T, pki testpki.PKI) (certFile, keyFile string, put func(certPEM, keyPEM []byte)) {
	w := newStampedWriter(t)
	return pki.CertFile, pki.KeyFile, func(certPEM, keyPEM []byte) {
		w.write(pki.CertFile, certPEM)
		w.write(pki.KeyFile, keyPEM)
	}
}

// filesBehindSymlink: the files are symlinks through ..data to a
// versioned directory, and a renewal writes a new directory and renames
// a new ..data link over the old one, as Kubernetes does in a secret
// volume.
func filesBehindSymlink(t *testing.T, pki testpki.PKI) (certFile, keyFile string, put func(certPEM, keyPEM []byte)) {
	w := newStampedWriter(t)
	dir := t.TempDir()
	version := 0
	put = func(certPEM, keyPEM []byte) {
		t.Helper()
		version++
		v := fmt.Sprintf("..v%d", version)
		if err := os.Mkdir(filepath.Join(dir, v), 0o700); err != nil {
			t.Fatal(err)
		}
		w.write(filepath.Join(dir, v, "tls.crt"), certPEM)
		w.write(filepath.Join(dir, v, "tls.key"), keyPEM)
		if err := os.Symlink(v, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	put(readFile(t, pki.CertFile), readFile(t, pki.KeyFile))
	for _, name := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), put
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// fileCert returns the certificate in certFile.
func fileCert(t *testing.T, certFile, keyFile string) []byte {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return pair.Certificate[0]
}

// newConnCert GETs /healthz from base on a new connection, trusting
// roots, and returns the certificate the server presented.
func newConnCert(t *testing.T, base string, roots *x509.CertPool) []byte {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %s", resp.Status)
	}
	return resp.TLS.PeerCertificates[0].Raw
}

// TestTLSReloadsRenewedPair: a pair renewed on disk is served on the next
// new connection, without a restart; a pair that does not load (a key
// not the certificate's, a key caught half-written) leaves the last good
// certificate served, with one warning each, until a good pair comes; a
// stream opened before it all goes on over its connection.
func TestTLSReloadsRenewedPair(t *testing.T) {
	const (
		warning = `level=WARN msg="server.tls: the pair on disk does not load: still serving the previous certificate" server.tls.cert_file=`
		loaded  = `level=INFO msg="server.tls: loaded a renewed certificate" server.tls.cert_file=`
	)
	tests := []struct {
		name       string
		files      pairFiles
		protocol   func(*http.Protocols, bool)
		protoMajor int
	}{
		{"in place, stream over HTTP/1.1", filesInPlace, (*http.Protocols).SetHTTP1, 1},
		{"symlink swap, stream over HTTP/2", filesBehindSymlink, (*http.Protocols).SetHTTP2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pki := testpki.New(t)
			cfg := tlsTestConfig(pki)
			var put func(certPEM, keyPEM []byte)
			cfg.Server.TLS.CertFile, cfg.Server.TLS.KeyFile, put = tt.files(t, pki)
			var logs lockedBuffer
			base, _ := startMainLogging(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)), everyHandshake)
			serves := func(step string, want []byte) {
				t.Helper()
				if got := newConnCert(t, base, pki.Roots); !bytes.Equal(got, want) {
					t.Fatalf("%s: a new connection gets another certificate than expected", step)
				}
			}
			logSays := func(step, msg string, n int) {
				t.Helper()
				if got := strings.Count(logs.tail(1<<20), msg); got != n {
					t.Fatalf("%s: the log says %d times, want %d: %s\n%s", step, got, n, msg, logs.tail(1<<20))
				}
			}

			original := fileCert(t, pki.CertFile, pki.KeyFile)
			serves("at start", original)
			client := testClient(t, pki.Roots, tt.protocol)
			open := getStream(t, client, base, "/api/v1/events?topic=renewal", tt.protoMajor)
			if !bytes.Equal(open.TLS.PeerCertificates[0].Raw, original) {
				t.Fatal("the stream's connection has another certificate than the files'")
			}

			renewed := pki.Renew(t)
			put(renewed.CertPEM, renewed.KeyPEM)
			serves("renewed", renewed.DER)
			logSays("renewed", loaded, 1)

			next := pki.Renew(t)
			put(next.CertPEM, renewed.KeyPEM) // the old key
			serves("a key that is not the certificate's", renewed.DER)
			serves("a key that is not the certificate's, again", renewed.DER)
			logSays("a key that is not the certificate's", warning, 1)
			put(next.CertPEM, next.KeyPEM[:len(next.KeyPEM)/2])
			serves("a half-written key", renewed.DER)
			logSays("a half-written key", warning, 2)
			put(next.CertPEM, next.KeyPEM)
			serves("the pair complete", next.DER)
			logSays("the pair complete", loaded, 2)
			if log := logs.tail(1 << 20); strings.Contains(log, "PRIVATE KEY") {
				t.Errorf("the log shows a key:\n%s", log)
			}

			if status, answer := publishWith(t, client, base, hubTestToken, "renewal", "after"); status != http.StatusCreated {
				t.Fatalf("publish: %d %s", status, answer)
			}
			if ev, err := nextEvent(stream.NewParser(open.Body)); err != nil || ev.Data != "after" {
				t.Fatalf("the stream opened before the renewals: %+v, %v", ev, err)
			}
		})
	}
}

// TestTLSHealthcheckAfterRenewal: `ssehub healthcheck` pins the
// certificate now in server.tls.cert_file; the server takes up the
// renewed pair at the check's handshake, so the check passes.
func TestTLSHealthcheckAfterRenewal(t *testing.T) {
	pki := testpki.New(t)
	base, _ := startMain(t, tlsTestConfig(pki), everyHandshake)
	vars := map[string]string{
		"SSEHUB_SERVER_ADDR":          strings.TrimPrefix(base, "https://"),
		"SSEHUB_SERVER_TLS_CERT_FILE": pki.CertFile,
		"SSEHUB_SERVER_TLS_KEY_FILE":  pki.KeyFile,
	}
	healthcheck := func(step string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), []string{"healthcheck", "--config", os.DevNull}, func(k string) string { return vars[k] }, &stdout, &stderr); code != 0 {
			t.Fatalf("healthcheck %s: exit %d, %s", step, code, stderr.String())
		}
	}
	healthcheck("at start")
	w := newStampedWriter(t)
	renewed := pki.Renew(t)
	w.write(pki.CertFile, renewed.CertPEM)
	w.write(pki.KeyFile, renewed.KeyPEM)
	healthcheck("after a renewal")
}

// TestCertReloaderChecksAtMostEveryInterval: a renewed pair is not seen
// before certCheckInterval has passed since the last check, and is at the
// first handshake after.
func TestCertReloaderChecksAtMostEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pki := testpki.New(t)
		certs, err := newCertReloader(t.Context(), pki.CertFile, pki.KeyFile, certCheckInterval, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		served := func() []byte {
			cert, err := certs.GetCertificate(&tls.ClientHelloInfo{})
			if err != nil {
				t.Fatal(err)
			}
			return cert.Certificate[0]
		}
		original := fileCert(t, pki.CertFile, pki.KeyFile)
		w := newStampedWriter(t)
		renewed := pki.Renew(t)
		w.write(pki.CertFile, renewed.CertPEM)
		w.write(pki.KeyFile, renewed.KeyPEM)
		time.Sleep(certCheckInterval - time.Nanosecond)
		if !bytes.Equal(served(), original) {
			t.Fatal("the renewed pair was loaded before the check interval passed")
		}
		time.Sleep(time.Nanosecond)
		if !bytes.Equal(served(), renewed.DER) {
			t.Fatal("the renewed pair was not loaded once the check interval passed")
		}

		// The next check is an interval after that one, not at once.
		again := pki.Renew(t)
		w.write(pki.CertFile, again.CertPEM)
		w.write(pki.KeyFile, again.KeyPEM)
		time.Sleep(certCheckInterval - time.Nanosecond)
		if !bytes.Equal(served(), renewed.DER) {
			t.Fatal("the second renewal was loaded before an interval passed since the previous check")
		}
		time.Sleep(time.Nanosecond)
		if !bytes.Equal(served(), again.DER) {
			t.Fatal("the second renewal was not loaded an interval after the previous check")
		}
	})
}

// TestCertReloaderConcurrentHandshakes: handshakes at once, each
// checking the files while renewals replace them, get a certificate
// every time; with -race, they share the reloader safely.
func TestCertReloaderConcurrentHandshakes(t *testing.T) {
	pki := testpki.New(t)
	certs, err := newCertReloader(t.Context(), pki.CertFile, pki.KeyFile, 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				if cert, err := certs.GetCertificate(&tls.ClientHelloInfo{}); err != nil || cert == nil {
					t.Errorf("GetCertificate: %v, %v", cert, err)
					return
				}
			}
		})
	}
	w := newStampedWriter(t)
	for range 5 {
		renewed := pki.Renew(t)
		w.write(pki.CertFile, renewed.CertPEM)
		w.write(pki.KeyFile, renewed.KeyPEM)
	}
	wg.Wait()
}

// TestCertReloaderSeesARenewalOfTheSameStamp: a renewed pair of the same
// sizes as the served one, whose files keep the previous ones'
// modification times, is loaded. A copy that keeps the source's times
// (cp -p, rsync -t, files from a Nix store, all dated 1970) writes such
// files, as does a rewrite within one tick of a file system's clock; the
// check compared modification times and sizes only, took the renewal for
// no change and served the old certificate until it expired.
func TestCertReloaderSeesARenewalOfTheSameStamp(t *testing.T) {
	pki := testpki.New(t)
	// An ECDSA signature's length varies by a byte or two: the served
	// pair and the renewal are two renewals as long as each other. (A
	// renewal matched to testpki's own pair, of a rarer length, was not
	// found in 100 tries once in CI.)
	first, renewed := sameSizeRenewals(t, pki)
	for path, data := range map[string][]byte{pki.CertFile: first.CertPEM, pki.KeyFile: first.KeyPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	certs, err := newCertReloader(t.Context(), pki.CertFile, pki.KeyFile, 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	served := func() []byte {
		cert, err := certs.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return cert.Certificate[0]
	}
	if !bytes.Equal(served(), first.DER) {
		t.Fatal("the first pair is not served")
	}
	if len(renewed.KeyPEM) != len(readFile(t, pki.KeyFile)) {
		t.Fatal("the renewed key has another size")
	}
	for path, data := range map[string][]byte{pki.CertFile: renewed.CertPEM, pki.KeyFile: renewed.KeyPEM} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, time.Time{}, fi.ModTime()); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(served(), renewed.DER) {
		t.Fatal("the renewed pair, with the same sizes and modification times, was not loaded")
	}
}

// sameSizeRenewals returns two renewals of pki whose certificates, and
// keys, have the same sizes.
func sameSizeRenewals(t *testing.T, pki testpki.PKI) (testpki.Pair, testpki.Pair) {
	t.Helper()
	seen := map[[2]int]testpki.Pair{}
	for range 1000 {
		p := pki.Renew(t)
		size := [2]int{len(p.CertPEM), len(p.KeyPEM)}
		if q, ok := seen[size]; ok {
			return q, p
		}
		seen[size] = p
	}
	t.Fatal("no two renewals of the same sizes in 1000")
	panic("unreachable")
}

// TestCertReloaderKeepsAChainCaughtHalfWritten: a chain file caught
// half-written, its leaf whole and the next certificate cut short, keeps
// the previous chain serving until the file is complete. The cut block
// was skipped: the leaf loaded alone, and until the next check a client
// that needs the intermediate to verify the leaf failed its handshake.
func TestCertReloaderKeepsAChainCaughtHalfWritten(t *testing.T) {
	pki := testpki.New(t)
	intermediate := readFile(t, pki.CAFile) // stands in for one
	chain := func(leaf []byte) []byte { return append(append([]byte(nil), leaf...), intermediate...) }
	if err := os.WriteFile(pki.CertFile, chain(readFile(t, pki.CertFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	certs, err := newCertReloader(t.Context(), pki.CertFile, pki.KeyFile, 0, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	served := func() [][]byte {
		cert, err := certs.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return cert.Certificate
	}
	original := served()
	if len(original) != 2 {
		t.Fatalf("the chain at start has %d certificates, want 2", len(original))
	}

	renewed := pki.Renew(t)
	full := chain(renewed.CertPEM)
	w := newStampedWriter(t)
	w.write(pki.KeyFile, renewed.KeyPEM)
	w.write(pki.CertFile, full[:len(full)-len(intermediate)/2])
	if got := served(); len(got) != 2 || !bytes.Equal(got[0], original[0]) {
		t.Fatalf("a chain caught half-written: %d certificates served, the leaf the previous one: %v; want the previous chain",
			len(got), bytes.Equal(got[0], original[0]))
	}
	if !strings.Contains(logs.tail(1<<20), "level=WARN") {
		t.Errorf("no warning of the pair that does not load:\n%s", logs.tail(1<<20))
	}
	w.write(pki.CertFile, full)
	if got := served(); len(got) != 2 || !bytes.Equal(got[0], renewed.DER) {
		t.Fatal("the chain complete was not loaded")
	}
}

// TestCertReloaderWarnsOfAnExpiredRenewal: a renewal whose certificate has
// expired (an old file copied for the new one) is loaded, as any pair
// that loads is, and warns that every client will refuse it: it was
// logged as a renewal, at info.
func TestCertReloaderWarnsOfAnExpiredRenewal(t *testing.T) {
	valid := pkiValidFor(t, -time.Hour, 48*time.Hour)
	var logs lockedBuffer
	certs, err := newCertReloader(t.Context(), valid.CertFile, valid.KeyFile, 0, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	expired := pkiValidFor(t, -48*time.Hour, -time.Hour)
	w := newStampedWriter(t)
	w.write(valid.CertFile, readFile(t, expired.CertFile))
	w.write(valid.KeyFile, readFile(t, expired.KeyFile))
	if _, err := certs.GetCertificate(&tls.ClientHelloInfo{}); err != nil {
		t.Fatal(err)
	}
	if got := logs.String(); !strings.Contains(got, "loaded a renewed certificate") ||
		!strings.Contains(got, `level=WARN msg="server.tls: the certificate has expired: every client will refuse it" server.tls.cert_file=`+valid.CertFile) {
		t.Errorf("logs %q: want the renewal, then a warning that its certificate has expired", got)
	}
}

// TestCertReloaderKeepsAShortRSARenewal: a renewal whose key crypto/tls
// signs nothing with, a 512-bit RSA key, keeps the previous certificate
// serving and warns, as a pair that does not load does: it was loaded,
// logged as a renewal, and every handshake failed from then on, though
// the same pair at start stops it.
func TestCertReloaderKeepsAShortRSARenewal(t *testing.T) {
	pki := testpki.New(t)
	var logs lockedBuffer
	certs, err := newCertReloader(t.Context(), pki.CertFile, pki.KeyFile, 0, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	original := readFile(t, pki.CertFile)
	short := pki.ShortRSA(t)
	w := newStampedWriter(t)
	w.write(pki.KeyFile, short.KeyPEM)
	w.write(pki.CertFile, short.CertPEM)
	cert, err := certs.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if block, _ := pem.Decode(original); !bytes.Equal(cert.Certificate[0], block.Bytes) {
		t.Error("the renewal with a 512-bit RSA key is served")
	}
	if got := logs.String(); !strings.Contains(got, `level=WARN msg="server.tls: the pair on disk does not load: still serving the previous certificate"`) ||
		!strings.Contains(got, "an RSA key of 512 bits") {
		t.Errorf("logs %q: want a warning that the pair does not load, for its key", got)
	}
}

// TestCertReloaderWarnsOfEachFileNotRead: a check that cannot read one of
// the files warns of it, and a later check that cannot read the other
// warns again, naming it: the second problem is another one, and was
// logged at no level, the first's warning, of a file fixed since, the
// last word in the log while the previous certificate went on serving.
func TestCertReloaderWarnsOfEachFileNotRead(t *testing.T) {
	pki := testpki.New(t)
	var logs lockedBuffer
	certs, err := newCertReloader(t.Context(), pki.CertFile, pki.KeyFile, 0, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		if _, err := certs.GetCertificate(&tls.ClientHelloInfo{}); err != nil {
			t.Fatal(err)
		}
	}
	const warning = `level=WARN msg="server.tls: the pair on disk does not load: still serving the previous certificate"`
	certPEM, keyPEM := readFile(t, pki.CertFile), readFile(t, pki.KeyFile)
	if err := os.Remove(pki.CertFile); err != nil {
		t.Fatal(err)
	}
	check()
	check() // the same problem: no second warning
	if got := logs.String(); strings.Count(got, warning) != 1 || !strings.Contains(got, `err="server.tls.cert_file: `) {
		t.Fatalf("logs %q: want one warning that server.tls.cert_file cannot be read", got)
	}

	w := newStampedWriter(t)
	w.write(pki.CertFile, certPEM)
	if err := os.Remove(pki.KeyFile); err != nil {
		t.Fatal(err)
	}
	check()
	if got := logs.String(); strings.Count(got, warning) != 2 || !strings.Contains(got, `err="server.tls.key_file: `) {
		t.Fatalf("logs %q: want a second warning, that server.tls.key_file cannot be read", got)
	}

	w.write(pki.KeyFile, keyPEM)
	check()
	if got := logs.String(); strings.Count(got, warning) != 2 || strings.Contains(got, "loaded a renewed certificate") {
		t.Errorf("logs %q: the files as they were loaded: want no word more", got)
	}
}
