package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// mkfifo returns a new FIFO in a temporary directory.
func mkfifo(t *testing.T) string {
	t.Helper()
	fifo := filepath.Join(t.TempDir(), "ssehub.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	return fifo
}

// loadWithin returns LoadContext's answer, failing the test when it
// takes longer than 10 s: the open of a FIFO without a writer never ends.
func loadWithin(t *testing.T, ctx context.Context, args []string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := LoadContext(ctx, args, nil)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("LoadContext still waits after 10s")
		return nil
	}
}

// waitOpens waits until this process has path open n times.
func waitOpens(t *testing.T, path string, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		fds, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		k := 0
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && target == path {
				k++
			}
		}
		if k >= n {
			return
		}
	}
	t.Fatalf("%s not open %d times after 10s", path, n)
}

// TestLoadFIFOWithoutWriter checks that a FIFO that nothing opens to
// write is refused after fifoWait, named as one: the start hung on it in
// open(2).
func TestLoadFIFOWithoutWriter(t *testing.T) {
	defer func(w time.Duration) { fifoWait = w }(fifoWait)
	fifoWait = 50 * time.Millisecond
	fifo := mkfifo(t)
	err := loadWithin(t, t.Context(), []string{"--config", fifo})
	want := `config file "` + fifo + `": a FIFO (named pipe) that nothing opened to write in 50ms: start what writes it first, or give a file`
	if !errors.Is(err, ErrConfigFile) || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

// TestLoadFIFOStopped checks that the end of LoadContext's context, a
// signal's in ssehub, ends the wait for a FIFO's writer, with its cause.
func TestLoadFIFOStopped(t *testing.T) {
	fifo := mkfifo(t)
	cause := errors.New("terminated signal received")
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(cause)
	err := loadWithin(t, ctx, []string{"--config", fifo})
	want := `config file "` + fifo + `": a FIFO (named pipe): stopped waiting for its writer: terminated signal received`
	if !errors.Is(err, cause) || !errors.Is(err, ErrConfigFile) || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

// TestLoadFIFOWithWriter checks that a FIFO with a writer is read to its
// end, however long after fifoWait it writes.
func TestLoadFIFOWithWriter(t *testing.T) {
	defer func(w time.Duration) { fifoWait = w }(fifoWait)
	fifoWait = time.Nanosecond
	fifo := mkfifo(t)
	// Opened to read and write, it is a writer before LoadContext opens.
	w, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var cfg Config
	go func() {
		var err error
		cfg, err = LoadContext(t.Context(), []string{"--config", fifo}, nil)
		done <- err
	}()
	// Closed before LoadContext opens, the FIFO would drop what it holds.
	waitOpens(t, fifo, 2)
	if _, err := w.WriteString("stream:\n  retry: 5s\n"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	select {
	case err := <-done:
		if err != nil || cfg.Stream.Retry != 5*time.Second {
			t.Errorf("err %v, stream.retry %v; want nil, 5s", err, cfg.Stream.Retry)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("LoadContext still reads after 10s")
	}
}

// TestLoadTerminalStopped checks that the end of LoadContext's context
// ends the read of a terminal given as the file (--config /dev/stdin in
// a shell, waiting for Ctrl-D): Ctrl-C went unheeded, the read blocked.
func TestLoadTerminalStopped(t *testing.T) {
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty := fmt.Sprintf("/dev/pts/%d", n)
	cause := errors.New("interrupt signal received")
	ctx, cancel := context.WithCancelCause(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := LoadContext(ctx, []string{"--config", tty}, nil)
		done <- err
	}()
	waitOpens(t, tty, 1)
	cancel(cause)
	select {
	case err := <-done:
		want := `config file "` + tty + `": stopped reading it: interrupt signal received`
		if !errors.Is(err, cause) || err.Error() != want {
			t.Errorf("err = %v\nwant %s", err, want)
		}
	case <-time.After(10 * time.Second):
		// Release the read: the terminal's end of file.
		_, _ = ptmx.Write([]byte{4})
		t.Fatalf("LoadContext still reads 10s after its context ended; then: %v", <-done)
	}
}
