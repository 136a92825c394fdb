package config

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
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
