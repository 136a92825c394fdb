//go:build unix

package config

import (
	"errors"
	"io/fs"
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

// TestLoadLinkToAMissingFile checks that a file named through a symbolic
// link whose target is missing (a secret or a mount that is not there,
// a link left by a deploy) is refused naming the target: "no such file or
// directory" after the link's name pointed at a file plainly there.
func TestLoadLinkToAMissingFile(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "secrets", "ssehub.yaml")
	link := filepath.Join(dir, "ssehub.yaml")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	_, err := Load([]string{"--config", link}, nil)
	want := `config file "` + link + `": a symbolic link to "` + target + `": no such file or directory`
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrConfigFile) || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	// A chain of links, relative ones among them, names the last.
	chain := filepath.Join(dir, "current.yaml")
	if err := os.Symlink("ssehub.yaml", chain); err != nil {
		t.Fatal(err)
	}
	_, err = Load([]string{"--config", chain}, nil)
	if want := `config file "` + chain + `": a symbolic link to "` + target + `": no such file or directory`; err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	// A file key's error names the target too.
	_, key := writeTLSPair(t)
	c := Default()
	c.Server.TLS = TLSConfig{CertFile: link, KeyFile: key}
	if err, want := c.Validate(), `server.tls.cert_file: "`+link+`": a symbolic link to "`+target+`": no such file or directory`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v\nwant it to contain %s", err, want)
	}
}

// TestLoadLinkToAMissingFileThroughALinkedDirectory checks that a link's
// relative target is named from the directory the link is in, not from
// the name of a linked directory it was reached through: the kernel
// resolves dirlink/cfg's "../ssehub.yaml" in real/sub's parent, and the
// error named a file next to dirlink.
func TestLoadLinkToAMissingFileThroughALinkedDirectory(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "real", "sub")
	if err := os.MkdirAll(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("real", "sub"), filepath.Join(dir, "dirlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..", "ssehub.yaml"), filepath.Join(sub, "cfg")); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "dirlink", "cfg")
	_, err := Load([]string{"--config", link}, nil)
	want := `config file "` + link + `": a symbolic link to "` + filepath.Join(dir, "real", "ssehub.yaml") + `": no such file or directory`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

// TestValidateCredentialsFileTooLong checks that nats.credentials_file
// longer than MaxPEMFileBytes is refused, as a PEM file is: a .creds file,
// a user JWT and an NKey seed, is some 1 KiB, and the NATS client reads
// the file whole at every connection, so one named by mistake (a log, a
// disk image) was accepted and read into memory at every reconnect.
func TestValidateCredentialsFileTooLong(t *testing.T) {
	creds := filepath.Join(t.TempDir(), "nats.creds")
	if err := os.WriteFile(creds, []byte("creds"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Default()
	c.Hub.Broker, c.NATS.CredentialsFile = "nats", creds
	if err := c.Validate(); err != nil {
		t.Fatalf("a short file: %v", err)
	}
	if err := os.Truncate(creds, 1<<30); err != nil { // sparse: no disk taken
		t.Fatal(err)
	}
	want := `nats.credentials_file: "` + creds + `": longer than 1 MiB`
	if err := c.Validate(); !errors.Is(err, ErrInvalidValue) || !strings.Contains(err.Error(), want) {
		t.Errorf("a file of 1 GiB: err = %v, want one saying %s", err, want)
	}
}
