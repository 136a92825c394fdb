package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSecondSignalStopsAtOnce runs the binary, holds a request open so
// that shutdown waits for it (a publish whose body never comes, with long
// read and shutdown timeouts), and sends SIGINT twice: the first starts
// the graceful shutdown, the second is not caught and ends the process at
// once, as an operator pressing Ctrl-C again expects.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "ssehub")
	goBuild(t, bin, "./cmd/ssehub")

	srv := exec.Command(bin)
	srv.Dir = dir // no config file: the defaults, the demo's open topics among them
	srv.Env = []string{
		"SSEHUB_SERVER_ADDR=127.0.0.1:0", "SSEHUB_LOG_FORMAT=json",
		"SSEHUB_SERVER_READ_TIMEOUT=5m", "SSEHUB_SERVER_SHUTDOWN_TIMEOUT=5m",
		"SSEHUB_STREAM_TRANSPORT=" + testTransport,
	}
	logs, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed once srv.ProcessState is set
	go func() {
		_ = srv.Wait() // its ProcessState says how it ended
		close(exited)
	}()
	t.Cleanup(func() {
		_ = srv.Process.Kill()
		<-exited
	})
	lines := bufio.NewScanner(logs)
	waitLog := func(re *regexp.Regexp) []string {
		t.Helper()
		for lines.Scan() {
			if m := re.FindStringSubmatch(lines.Text()); m != nil {
				return m
			}
		}
		t.Fatalf("the log ended (%v) without a line matching %s", lines.Err(), re)
		return nil
	}
	addr := waitLog(regexp.MustCompile(`"msg":"listening","addr":"([^"]+)"`))[1]

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "POST /api/v1/topics/demo.held/events HTTP/1.1\r\nHost: ssehub\r\n"+
		"Content-Type: application/json\r\nContent-Length: 20\r\nExpect: 100-continue\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// net/http says 100 Continue once the handler reads the body: the
	// request is then in its handler, which waits for the body for
	// server.read_timeout, and a graceful shutdown waits for the handler.
	// (A signal sent before the server accepted the connection would find
	// nothing to wait for.)
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 100 ") {
		t.Fatalf("answer %q, %v: want 100 Continue", status, err)
	}
	if _, err := io.WriteString(conn, "{"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	waitLog(regexp.MustCompile(`"msg":"shutting down"`))
	go func() { _, _ = io.Copy(io.Discard, logs) }()
	// The held request keeps the graceful shutdown waiting for 5 minutes.
	// Signal again until the process ends: the first signals may come
	// before the handler is given back to the runtime.
	deadline := time.After(10 * time.Second)
	for {
		if err := srv.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		select {
		case <-exited:
			if ws, ok := srv.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGINT {
				t.Errorf("after a second SIGINT: %v, want the process ended by the signal", srv.ProcessState)
			}
			return
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatal("still running 10s into a second SIGINT: the signal was swallowed")
		}
	}
}
