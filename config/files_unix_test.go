//go:build unix

package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestValidateFileIsAFIFO checks that a file key naming a FIFO (a named
// pipe, as a tool that hands out secrets may make) is refused as not a
// regular file, without waiting for a writer: opening it to check it
// blocked until one came, and the start hung without a word.
func TestValidateFileIsAFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "secret.pem")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cert, key := writeTLSPair(t)
	tests := []struct {
		key    string
		mutate func(*Config)
	}{
		{"server.tls.cert_file", func(c *Config) { c.Server.TLS = TLSConfig{CertFile: fifo, KeyFile: key} }},
		{"server.tls.key_file", func(c *Config) { c.Server.TLS = TLSConfig{CertFile: cert, KeyFile: fifo} }},
		{"nats.credentials_file", func(c *Config) { c.Hub.Broker, c.NATS.CredentialsFile = "nats", fifo }},
		{"nats.ca_file", func(c *Config) { c.Hub.Broker, c.NATS.CAFile = "nats", fifo }},
		{"auth.jwt.public_key_file", func(c *Config) { c.Auth.JWT.PublicKeyFile = fifo }},
	}
	for _, tt := range tests {
		c := Default()
		tt.mutate(&c)
		done := make(chan error, 1)
		go func() { done <- c.Validate() }()
		select {
		case err := <-done:
			if want := tt.key + `: "` + fifo + `": not a regular file`; err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: err = %v, want %s", tt.key, err, want)
			}
		case <-time.After(10 * time.Second): // an answer takes microseconds
			t.Errorf("%s: Validate still waits for a writer after 10s", tt.key)
			// Release the open: a writer, which opening for reading and
			// writing is, never blocks.
			if w, err := os.OpenFile(fifo, os.O_RDWR, 0); err == nil {
				t.Logf("%s, once a writer came: %v", tt.key, <-done)
				w.Close()
			}
		}
	}
}
