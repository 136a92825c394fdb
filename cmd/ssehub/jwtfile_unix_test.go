//go:build unix

package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssehub/ssehub/config"
)

// TestRunRefusesAPublicKeyFileNoPEMFile checks that the start's read of
// auth.jwt.public_key_file, after the configuration's check of it, takes
// what that check does: a regular file of at most config.MaxPEMFileBytes.
// It read the file again with os.ReadFile, so that one replaced between
// the two by a FIFO (a named pipe, as a tool that hands out secrets may
// make) hung the start in open(2), a signal unheeded, and one grown past
// the cap was read whole into memory.
func TestRunRefusesAPublicKeyFileNoPEMFile(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key := publicKeyPEM(t, pub)
	for _, tt := range []struct {
		name string
		make func(path string) error
		says string
	}{
		{"FIFO", func(path string) error { return syscall.Mkfifo(path, 0o600) }, "not a regular file"},
		{"over the cap", func(path string) error {
			pad := bytes.Repeat([]byte("# padding after the PEM block\n"), config.MaxPEMFileBytes/29+1)
			return os.WriteFile(path, append(key, pad...), 0o600)
		}, "longer than 1 MiB"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "jwt.pem")
			if err := tt.make(path); err != nil {
				t.Fatal(err)
			}
			cfg := config.Default()
			cfg.Server.Addr = "127.0.0.1:0"
			cfg.Auth.JWT.PublicKeyFile = path
			m := &Main{Config: cfg, Logger: newLogger(cfg.Log, io.Discard)}
			// Done already: a server that got past the key stops at once.
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			done := make(chan error, 1)
			go func() { done <- m.Run(ctx) }()
			select {
			case err := <-done:
				if err == nil || !strings.HasPrefix(err.Error(), "auth.jwt.public_key_file") || !strings.Contains(err.Error(), tt.says) {
					t.Errorf("Run = %v, want an error naming auth.jwt.public_key_file that says %q", err, tt.says)
				}
			case <-time.After(10 * time.Second):
				// Release the open: a writer that writes nothing.
				if w, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
					w.Close()
				}
				t.Fatalf("Run still reads auth.jwt.public_key_file after 10s; then: %v", <-done)
			}
		})
	}
}
