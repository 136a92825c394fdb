package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBinaryStopsWhileItWaitsForAFIFO checks that SIGTERM or SIGINT ends
// a start that waits for its config file, a FIFO that nothing writes to,
// at once, with exit 1 and a line saying so: it hung in open(2), the
// signal handler installed and no one heeding it.
func TestBinaryStopsWhileItWaitsForAFIFO(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "ssehub")
	goBuild(t, bin, "./cmd/ssehub")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			fifo := filepath.Join(t.TempDir(), "ssehub.yaml")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "--config", fifo)
			cmd.Env = []string{}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			defer func() {
				_ = cmd.Process.Kill()
				if err := <-exited; err != nil {
					t.Logf("exit: %v", err)
				}
			}()
			// Once it has the FIFO open, its signal handler is installed.
			waitOpen(t, cmd.Process.Pid, fifo, exited)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				exited <- err // for the deferred wait
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != 1 {
					t.Errorf("err %v, want exit 1", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("still running 10s after %v", sig)
			}
			want := `ssehub: config file "` + fifo + `": a FIFO (named pipe): stopped waiting for its writer: ` + sig.String() + " signal received\n"
			if stderr.String() != want {
				t.Errorf("stderr %q\nwant %q", stderr.String(), want)
			}
		})
	}
}

// waitOpen waits, 10 s at most, until process pid has path open.
func waitOpen(t *testing.T, pid int, path string, exited <-chan error) {
	t.Helper()
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		select {
		case err := <-exited:
			t.Fatalf("exited before it opened %s: %v", path, err)
		default:
		}
		fds, _ := os.ReadDir(dir)
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && target == path {
				return
			}
		}
	}
	t.Fatalf("%s not open after 10s", path)
}

// TestBinaryReadsAProcessSubstitution checks that a config file given as
// bash's process substitution, --config <(envsubst < ssehub.yaml), a
// pipe, is read.
func TestBinaryReadsAProcessSubstitution(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	bin := filepath.Join(t.TempDir(), "ssehub")
	goBuild(t, bin, "./cmd/ssehub")
	script := `exec "$BIN" token --subscribe news --config <(printf 'auth:\n  jwt:\n    hmac_secret: %s\n' "$SECRET")`
	cmd := exec.Command(bash, "-c", script)
	cmd.Env = []string{"BIN=" + bin, "SECRET=" + strings.Repeat("k", 32)}
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Count(string(out), ".") != 2 {
		t.Errorf("err %v; output %q, want a JWT", err, out)
	}
}
