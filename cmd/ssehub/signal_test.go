package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

// binaryRun is the ssehub binary running in a test, its log (JSON) read
// line by line.
type binaryRun struct {
	cmd    *exec.Cmd
	lines  *bufio.Scanner
	logs   io.Reader     // what lines reads: a pipe, whose reads waitLog bounds
	addr   string        // where it listens
	exited chan struct{} // closed once cmd.ProcessState is set
}

// runBinary runs bin with the defaults (no config file), env and a free
// loopback port until the test ends, and returns once it listens.
func runBinary(t *testing.T, bin string, env ...string) *binaryRun {
	t.Helper()
	return runCommand(t, exec.Command(bin), env...)
}

// runCommand is runBinary for a command that runs the binary (nohup).
func runCommand(t *testing.T, cmd *exec.Cmd, env ...string) *binaryRun {
	t.Helper()
	cmd.Dir = t.TempDir() // no config file: the defaults, the demo's open topics among them
	cmd.Env = append([]string{
		"SSEHUB_SERVER_ADDR=127.0.0.1:0", "SSEHUB_LOG_FORMAT=json",
		"SSEHUB_STREAM_TRANSPORT=" + testTransport,
	}, env...)
	logs, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &binaryRun{cmd: cmd, lines: bufio.NewScanner(logs), logs: logs, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // its ProcessState says how it ended
		close(r.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-r.exited
	})
	r.addr = r.waitLog(t, regexp.MustCompile(`"msg":"listening","addr":"([^"]+)"`))[1]
	return r
}

// waitLog returns the submatches of the next log line matching re, within
// logWait: a line that never comes fails the test, rather than hold the
// package until its timeout.
func (r *binaryRun) waitLog(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	if f, ok := r.logs.(interface{ SetReadDeadline(time.Time) error }); ok {
		if err := f.SetReadDeadline(time.Now().Add(logWait)); err != nil {
			t.Fatal(err)
		}
		defer f.SetReadDeadline(time.Time{}) //nolint:errcheck // the pipe took a deadline above
	}
	for r.lines.Scan() {
		if m := re.FindStringSubmatch(r.lines.Text()); m != nil {
			return m
		}
	}
	t.Fatalf("the log ended (%v) without a line matching %s", r.lines.Err(), re)
	return nil
}

// logWait bounds waitLog's wait for a line.
const logWait = time.Minute

// discardLog reads the rest of the log and drops it, so that the process
// never blocks writing it.
func (r *binaryRun) discardLog() {
	go func() {
		for r.lines.Scan() {
		}
	}()
}

// TestSignalsStopGracefully runs the binary with a stream open and sends
// it one of the signals that stop it: the stream must end cleanly (its
// last chunk, not a cut connection) and the process exit 0. SIGHUP is one:
// ssehub reloads nothing, and left to the runtime a hang-up ended the
// process at once (exit 129), cutting every stream mid-chunk.
func TestSignalsStopGracefully(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "ssehub")
	goBuild(t, bin, "./cmd/ssehub")
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			srv := runBinary(t, bin)
			srv.discardLog()
			p := tickerStarted(t, srv.addr)
			if err := srv.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if _, err := nextEvent(p); !errors.Is(err, io.EOF) {
				t.Errorf("stream after %v: %v, want its clean end", sig, err)
			}
			select {
			case <-srv.exited:
				if !srv.cmd.ProcessState.Success() {
					t.Errorf("after %v: %v, want exit 0", sig, srv.cmd.ProcessState)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("still running 30s after %v", sig)
			}
		})
	}
}

// TestSecondSignalStopsAtOnce runs the binary, holds a request open so
// that shutdown waits for it (a publish whose body never comes, with long
// read and shutdown timeouts), and sends a stopping signal twice: the
// first starts the graceful shutdown, the second is not caught and ends
// the process at once, as an operator pressing Ctrl-C again expects.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "ssehub")
	goBuild(t, bin, "./cmd/ssehub")
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			testSecondSignal(t, bin, sig)
		})
	}
}

// testSecondSignal is TestSecondSignalStopsAtOnce with one signal.
func testSecondSignal(t *testing.T, bin string, sig syscall.Signal) {
	srv := runBinary(t, bin, "SSEHUB_SERVER_READ_TIMEOUT=5m", "SSEHUB_SERVER_SHUTDOWN_TIMEOUT=5m")
	conn, err := net.Dial("tcp", srv.addr)
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
	if err := srv.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	srv.waitLog(t, regexp.MustCompile(`"msg":"shutting down"`))
	srv.discardLog()
	// The held request keeps the graceful shutdown waiting for 5 minutes.
	// Signal again until the process ends: the first signals may come
	// before the handler is given back to the runtime.
	deadline := time.After(10 * time.Second)
	for {
		if err := srv.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		select {
		case <-srv.exited:
			if ws, ok := srv.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != sig {
				t.Errorf("after a second %v: %v, want the process ended by the signal", sig, srv.cmd.ProcessState)
			}
			return
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("still running 10s into a second %v: the signal was swallowed", sig)
		}
	}
}

// tickerStarted opens GET /stream at addr, three lines a minute apart,
// and returns its parser once the first line came; the stream is closed
// when the test ends.
func tickerStarted(t *testing.T, addr string) *stream.Parser {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/stream?count=3&interval=1m")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	p := stream.NewParser(resp.Body)
	if ev, err := nextEvent(p); err != nil || ev.Data != "Streamed line 0" {
		t.Fatalf("first event %+v, %v", ev, err)
	}
	return p
}

// Started with SIGHUP ignored (`nohup ssehub &`), ssehub leaves it so: the
// hang-up of the session it was started from does not stop it. Asking to
// be notified of SIGHUP undoes the ignore (os/signal), and it stopped.
func TestNohupOutlivesTheHangUp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	nohup, err := exec.LookPath("nohup")
	if err != nil {
		t.Skip("no nohup here:", err)
	}
	bin := filepath.Join(t.TempDir(), "ssehub")
	goBuild(t, bin, "./cmd/ssehub")
	srv := runCommand(t, exec.Command(nohup, bin))
	srv.discardLog()
	wantIgnoredAndHarmless(t, srv, syscall.SIGHUP)
}

// wantIgnoredAndHarmless checks that srv's process has sig ignored, as the
// kernel has its disposition, and that it still serves after receiving it.
func wantIgnoredAndHarmless(t *testing.T, srv *binaryRun, sig syscall.Signal) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", srv.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^SigIgn:\s*([0-9a-f]+)$`).FindSubmatch(status)
	if m == nil {
		t.Fatalf("no SigIgn in /proc status:\n%s", status)
	}
	ignored, err := strconv.ParseUint(string(m[1]), 16, 64)
	if err != nil || ignored&(1<<(sig-1)) == 0 {
		t.Fatalf("SigIgn %s: %v is no longer ignored", m[1], sig)
	}
	if err := srv.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + srv.addr + "/healthz")
	if err != nil {
		t.Fatalf("after %v: %v", sig, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after %v /healthz is %d", sig, resp.StatusCode)
	}
}

// Started with SIGINT ignored, ssehub leaves it so, as it does SIGHUP
// under nohup: a script's background job (`ssehub &` in sh, which
// ignores SIGINT for it; `trap "" INT` here) is not stopped by the Ctrl-C
// meant for the script's foreground. Asking to be notified of SIGINT
// undid the ignore (os/signal), and the Ctrl-C stopped it.
func TestIgnoredInterruptStaysIgnored(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "ssehub")
	goBuild(t, bin, "./cmd/ssehub")
	srv := runCommand(t, exec.Command("sh", "-c", `trap "" INT; exec "$0"`, bin))
	srv.discardLog()
	wantIgnoredAndHarmless(t, srv, syscall.SIGINT)
}

// A log reader that goes away (journald restarted, a `| tee` ended) does
// not stop ssehub: its log lines are lost, its streams go on. A write to
// a broken pipe on stderr raised SIGPIPE, which ended the process at
// once, every stream cut mid-chunk.
func TestBrokenLogPipeStopsNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "ssehub")
	goBuild(t, bin, "./cmd/ssehub")
	logs, logw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"SSEHUB_SERVER_ADDR=127.0.0.1:0", "SSEHUB_LOG_FORMAT=json", "SSEHUB_STREAM_TRANSPORT=" + testTransport}
	cmd.Stderr = logw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logw.Close()
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	srv := &binaryRun{cmd: cmd, lines: bufio.NewScanner(logs), logs: logs, exited: exited}
	srv.addr = srv.waitLog(t, regexp.MustCompile(`"msg":"listening","addr":"([^"]+)"`))[1]
	p := tickerStarted(t, srv.addr)
	logs.Close() // the reader is gone: the next log line meets a broken pipe

	for i := range 2 { // each writes an access line
		resp, err := http.Get("http://" + srv.addr + "/healthz")
		if err != nil {
			t.Fatalf("/healthz %d after the log's reader went away: %v (%v)", i+1, err, cmd.ProcessState)
		}
		resp.Body.Close()
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := nextEvent(p); !errors.Is(err, io.EOF) {
		t.Errorf("stream after SIGTERM: %v, want its clean end", err)
	}
	select {
	case <-exited:
		if !cmd.ProcessState.Success() {
			t.Errorf("after SIGTERM: %v, want exit 0", cmd.ProcessState)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("still running 30s after SIGTERM")
	}
}
