package main

import (
	"bufio"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestShutdownWithBlockedStreamEndsCleanly shuts down while a hub stream
// is blocked writing to a client that stopped reading, with a write
// timeout longer than the shutdown timeout: Run must close the stream's
// connection when the shutdown timeout passes, say so, and return nil
// (exit 0), in both transports. A detached stream is not net/http's to
// close: before, Run returned the shutdown's deadline error.
func TestShutdownWithBlockedStreamEndsCleanly(t *testing.T) {
	cfg := readTimeoutConfig(5 * time.Second)
	cfg.Server.ShutdownTimeout = 500 * time.Millisecond
	cfg.Stream.WriteTimeout = time.Minute
	var logs lockedBuffer
	url, stop := startMainLogging(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))

	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("GET /api/v1/events?topic=blocked HTTP/1.1\r\nHost: ssehub.test\r\n" +
		"Authorization: Bearer " + hubTestToken + "\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	// Read up to the stream's first field: the subscription is then
	// registered. From here on the client reads nothing.
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("subscribe: %s", resp.Status)
	}
	for { // the chunk's size line, then the retry field
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream's first chunk: %v", err)
		}
		if strings.HasPrefix(line, "retry:") {
			break
		}
	}

	// 18 MB is more than the client's 4 KiB receive buffer and the
	// server's send buffer (at most a few MiB) can hold: the stream's
	// write blocks long before the last publish is answered.
	data := strings.Repeat("b", 60000)
	for i := range 300 {
		if status, answer := publishOverHTTP(t, url, hubTestToken, "blocked", data); status != http.StatusCreated {
			t.Fatalf("publish %d: %d %s", i, status, answer)
		}
	}

	start := time.Now()
	stop() // fails the test if Run returns an error
	if elapsed := time.Since(start); elapsed > cfg.Server.ShutdownTimeout+2*time.Second {
		t.Errorf("Run returned after %v, shutdown timeout %v", elapsed, cfg.Server.ShutdownTimeout)
	}
	out := logs.tail(1 << 20)
	if !strings.Contains(out, "shutdown timeout passed: closed") {
		t.Errorf("no warning that open streams were closed at the shutdown timeout; log:\n%s", out)
	}
	// The server ended the stream: not a failed write, nor a gone client.
	// Run waited for it to end: its line is there.
	if ended := grepLine(out, `msg="stream ended"`); !strings.Contains(ended, `reason="shutting down`) {
		t.Errorf("the stream's end line %q, want its reason shutting down", ended)
	}
}

// grepLine returns the first line of s that holds sub, or "".
func grepLine(s, sub string) string {
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
