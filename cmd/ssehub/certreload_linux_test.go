package main

import (
	"bytes"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

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
