package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/testpki"
)

// TestTLSReloadDoesNotWaitForALease: a check of server.tls's files that
// finds a lease another process holds on one (a Samba oplock, an NFS
// delegation), and keeps, does not wait for it to be given up: the
// handshake is served the previous certificate at once, with a warning,
// and once the lease is gone a later check loads the renewed pair.
// Waiting, with the reloader's lock held, hung this handshake and every
// other until the kernel broke the lease, 45 s by default.
func TestTLSReloadDoesNotWaitForALease(t *testing.T) {
	pki := testpki.New(t)
	var logs lockedBuffer
	base, _ := startMainLogging(t, tlsTestConfig(pki), slog.New(slog.NewTextHandler(&logs, nil)), everyHandshake)
	original := fileCert(t, pki.CertFile, pki.KeyFile)
	renewed := pki.Renew(t)
	w := newStampedWriter(t)
	w.write(pki.CertFile, renewed.CertPEM)
	w.write(pki.KeyFile, renewed.KeyPEM)

	// The holder keeps its lease, deaf to the SIGIO that asks for it.
	sigio := make(chan os.Signal, 1)
	signal.Notify(sigio, syscall.SIGIO)
	defer signal.Stop(sigio)
	h, err := os.Open(pki.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := unix.FcntlInt(h.Fd(), unix.F_SETLEASE, unix.F_WRLCK); err != nil {
		t.Skipf("no lease: %v", err)
	}
	got, err := handshakeCert(base, pki.Roots)
	if err != nil {
		t.Fatalf("under a lease: %v", err)
	}
	if !bytes.Equal(got, original) {
		t.Fatal("under a lease: a new connection gets another certificate than the previous one")
	}
	if log := logs.tail(1 << 20); !strings.Contains(log, `err="server.tls.cert_file: another process holds a lease on it, asked to give it up: not waited for during a TLS handshake: the next check reads it"`) {
		t.Fatalf("under a lease: no warning saying so:\n%s", log)
	}

	h.Close() // gives the lease up
	if got, err = handshakeCert(base, pki.Roots); err != nil || !bytes.Equal(got, renewed.DER) {
		t.Fatalf("the lease given up: err %v, or a new connection does not get the renewed certificate", err)
	}
}

// TestRunLeaseStopped checks that the end of Run's context ends its read
// of server.tls's files, or of auth.jwt.public_key_file, when another
// process holds a lease on one (a Samba oplock, an NFS delegation) and
// keeps it, with exit 1 and the cause: the configuration's check of the
// file, before Run, heeds a signal, but Run's own read waited for the
// lease to be broken, a minute at most, SIGTERM unheeded.
func TestRunLeaseStopped(t *testing.T) {
	pki := testpki.New(t)
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwtKey := filepath.Join(t.TempDir(), "jwt.pem")
	if err := os.WriteFile(jwtKey, publicKeyPEM(t, pub), 0o600); err != nil {
		t.Fatal(err)
	}
	jwtConfig := config.Default()
	jwtConfig.Server.Addr = "127.0.0.1:0"
	jwtConfig.Auth.JWT.PublicKeyFile = jwtKey
	for _, tt := range []struct {
		key, path string
		cfg       config.Config
	}{
		{"server.tls.cert_file", pki.CertFile, tlsTestConfig(pki)},
		{"auth.jwt.public_key_file", jwtKey, jwtConfig},
	} {
		t.Run(tt.key, func(t *testing.T) {
			keepLease(t, tt.path)
			m := &Main{Config: tt.cfg, Logger: newLogger(tt.cfg.Log, io.Discard)}
			cause := errors.New("terminated signal received")
			ctx, cancel := context.WithCancelCause(t.Context())
			cancel(cause)
			done := make(chan error, 1)
			go func() { done <- m.Run(ctx) }()
			select {
			case err := <-done:
				const want = "another process holds a lease on it, asked to give it up: terminated signal received"
				if !errors.Is(err, cause) || !strings.HasPrefix(err.Error(), tt.key) || !strings.Contains(err.Error(), want) {
					t.Errorf("Run = %v\nwant an error naming %s that says %s", err, tt.key, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("Run still reads %s 10s after its context ended; then: %v", tt.key, <-done)
			}
		})
	}
}

// keepLease takes a write lease on path, as Samba takes a kernel oplock
// or knfsd a delegation, and keeps it until the test ends, deaf to the
// SIGIO that asks for it: another open of path with O_NONBLOCK is
// refused (EAGAIN) until then.
func keepLease(t *testing.T, path string) {
	t.Helper()
	sigio := make(chan os.Signal, 1)
	signal.Notify(sigio, syscall.SIGIO)
	h, err := os.Open(path)
	if err != nil {
		signal.Stop(sigio)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close() // gives the lease up: no SIGIO after
		signal.Stop(sigio)
	})
	if _, err := unix.FcntlInt(h.Fd(), unix.F_SETLEASE, unix.F_WRLCK); err != nil {
		t.Skipf("no lease: %v", err)
	}
}
