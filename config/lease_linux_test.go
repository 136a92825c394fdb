package config

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// holdLease opens path and takes a write lease on it, as Samba takes a
// kernel oplock or knfsd a delegation: another open of it waits, or with
// O_NONBLOCK is refused (EAGAIN), until the holder gives the lease up,
// which the kernel asks it to with SIGIO. When give is true
// the holder gives it up at that signal, as one should; else it keeps it
// until the test ends.
func holdLease(t *testing.T, path string, give bool) {
	t.Helper()
	sigio := make(chan os.Signal, 1)
	signal.Notify(sigio, syscall.SIGIO)
	h, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(h.Fd(), unix.F_SETLEASE, unix.F_WRLCK); err != nil {
		h.Close()
		signal.Stop(sigio)
		t.Skipf("no lease: %v", err)
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-sigio:
			if give {
				_, _ = unix.FcntlInt(h.Fd(), unix.F_SETLEASE, unix.F_UNLCK)
			}
		case <-done:
		}
	}()
	t.Cleanup(func() {
		close(done)
		<-stopped
		h.Close() // gives the lease up: no SIGIO after
		signal.Stop(sigio)
	})
}

// TestReadFileUnderALease checks that a PEM file and the config file
// that another process holds a lease on (a Samba oplock, an NFS
// delegation) are read once the holder gives it up, as os.Open waits
// for: opened without waiting, they were refused, "resource temporarily
// unavailable".
func TestReadFileUnderALease(t *testing.T) {
	cert, _ := writeTLSPair(t)
	holdLease(t, cert, true)
	if _, err := ReadPEMFile(cert); err != nil {
		t.Errorf("ReadPEMFile: %v", err)
	}

	cfg := filepath.Join(t.TempDir(), "ssehub.yaml")
	if err := os.WriteFile(cfg, []byte("stream:\n  retry: 5s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	holdLease(t, cfg, true)
	c, err := LoadContext(t.Context(), []string{"--config", cfg}, nil)
	if err != nil || c.Stream.Retry != 5*time.Second {
		t.Errorf("LoadContext: err %v, stream.retry %v; want nil, 5s", err, c.Stream.Retry)
	}
}

// TestLoadLeaseStopped checks that the end of LoadContext's context ends
// the wait for a lease on the config file that its holder keeps, with
// its cause.
func TestLoadLeaseStopped(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "ssehub.yaml")
	if err := os.WriteFile(cfg, []byte("stream:\n  retry: 5s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	holdLease(t, cfg, false)
	cause := errors.New("terminated signal received")
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(cause)
	err := loadWithin(t, ctx, []string{"--config", cfg})
	want := `config file "` + cfg + `": another process holds a lease on it, asked to give it up: terminated signal received`
	if !errors.Is(err, cause) || !errors.Is(err, ErrConfigFile) || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

// TestLoadPEMLeaseStopped checks that the end of LoadContext's context
// ends the wait of its checks for a lease on a file the configuration
// names, that its holder keeps: the checks read them without it, and
// SIGTERM went unheeded until the kernel broke the lease (45 s).
func TestLoadPEMLeaseStopped(t *testing.T) {
	cert, key := writeTLSPair(t)
	pub := filepath.Join(t.TempDir(), "jwt.pem")
	if err := os.WriteFile(pub, readPEM(t, cert), 0o600); err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(t.TempDir(), "nats.creds")
	if err := os.WriteFile(creds, []byte("creds"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		key, path string
		env       map[string]string
	}{
		{"server.tls.cert_file", cert, map[string]string{"SSEHUB_SERVER_TLS_CERT_FILE": cert, "SSEHUB_SERVER_TLS_KEY_FILE": key}},
		{"auth.jwt.public_key_file", pub, map[string]string{"SSEHUB_AUTH_JWT_PUBLIC_KEY_FILE": pub}},
		{"nats.ca_file", cert, map[string]string{"SSEHUB_HUB_BROKER": "nats", "SSEHUB_NATS_CA_FILE": cert}},
		{"nats.credentials_file", creds, map[string]string{"SSEHUB_HUB_BROKER": "nats", "SSEHUB_NATS_CREDENTIALS_FILE": creds}},
	} {
		t.Run(tt.key, func(t *testing.T) {
			holdLease(t, tt.path, false)
			cause := errors.New("terminated signal received")
			ctx, cancel := context.WithCancelCause(t.Context())
			cancel(cause)
			done := make(chan error, 1)
			go func() {
				_, err := LoadContext(ctx, nil, func(k string) string { return tt.env[k] })
				done <- err
			}()
			select {
			case err := <-done:
				want := tt.key + `: "` + tt.path + `": another process holds a lease on it, asked to give it up: terminated signal received`
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("err = %v\nwant one saying %s", err, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("LoadContext still waits 10s after its context ended; then: %v", <-done)
			}
		})
	}
}

// readPEM returns the contents of path.
func readPEM(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestLeaseNotGivenUp checks that a file whose lease its holder keeps
// past leaseWait is refused saying so, the config file and a PEM file
// alike: the error was the open's own, "resource temporarily
// unavailable", which named neither the lease nor the wait.
func TestLeaseNotGivenUp(t *testing.T) {
	defer func(w time.Duration) { leaseWait = w }(leaseWait)
	leaseWait = 50 * time.Millisecond
	const want = "another process holds a lease on it, and did not give it up within 50ms of being asked to"

	cert, _ := writeTLSPair(t)
	holdLease(t, cert, false)
	if _, err := ReadPEMFile(cert); err == nil || err.Error() != want || !errors.Is(err, syscall.EAGAIN) {
		t.Errorf("ReadPEMFile: err = %v\nwant %s", err, want)
	}

	cfg := filepath.Join(t.TempDir(), "ssehub.yaml")
	if err := os.WriteFile(cfg, []byte("stream:\n  retry: 5s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	holdLease(t, cfg, false)
	err := loadWithin(t, t.Context(), []string{"--config", cfg})
	if full := `config file "` + cfg + `": ` + want; err == nil || err.Error() != full {
		t.Errorf("LoadContext: err = %v\nwant %s", err, full)
	}
}
