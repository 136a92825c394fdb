//go:build unix

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/testpki"
)

// TestHealthcheckRefusesServerTLSFilesNoPEMFiles checks that the
// healthcheck reads server.tls's files as the configuration's check and
// the server read them: regular files of at most config.MaxPEMFileBytes.
// It read them again with tls.LoadX509KeyPair, so that a file replaced
// since the check by a FIFO (a tool that hands out secrets may make one)
// hung the check in open(2) until its writer came, and one grown past the
// cap was read whole.
func TestHealthcheckRefusesServerTLSFilesNoPEMFiles(t *testing.T) {
	pki := testpki.New(t)
	certPEM, err := os.ReadFile(pki.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		make func(path string) error
		says string
	}{
		{"FIFO", func(path string) error { return syscall.Mkfifo(path, 0o600) }, "not a regular file"},
		{"over the cap", func(path string) error {
			pad := bytes.Repeat([]byte("# padding after the PEM block\n"), config.MaxPEMFileBytes/29+1)
			return os.WriteFile(path, append(certPEM, pad...), 0o600)
		}, "longer than 1 MiB"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cert.pem")
			if err := tt.make(path); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, _, err := healthClient(t.Context(), config.TLSConfig{CertFile: path, KeyFile: pki.KeyFile})
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.HasPrefix(err.Error(), "server.tls.cert_file") || !strings.Contains(err.Error(), tt.says) {
					t.Errorf("healthClient = %v, want an error naming server.tls.cert_file that says %q", err, tt.says)
				}
			case <-time.After(10 * time.Second):
				// Release the open: a writer that writes nothing.
				if w, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
					w.Close()
				}
				t.Fatalf("healthClient still reads server.tls.cert_file after 10s; then: %v", <-done)
			}
		})
	}
}
