package main

// Tests of server.read_timeout over a real socket: a request body that
// never comes holds its connection no longer than the timeout, a body
// declared too large is refused before it is read, streams and kept-alive
// connections outlive the timeout, and a shutdown with a held body still
// ends cleanly.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/stream"
)

// readTimeoutConfig is the default config with publishing on and the given
// read timeout.
func readTimeoutConfig(readTimeout time.Duration) config.Config {
	cfg := config.Default()
	cfg.Auth.PublishTokens = []string{hubTestToken}
	cfg.Server.ReadTimeout = readTimeout
	return cfg
}

// heldRequest is the head of a request that declares a body of
// contentLength bytes; the test sends none of it.
func heldRequest(method, path string, contentLength int) string {
	return method + " " + path + " HTTP/1.1\r\nHost: ssehub.test\r\n" +
		"Authorization: Bearer " + hubTestToken + "\r\n" +
		"Content-Type: application/json\r\n" +
		"Content-Length: " + strconv.Itoa(contentLength) + "\r\n\r\n"
}

// sendHead dials base and writes head, and nothing more.
func sendHead(t *testing.T, base, head string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	return conn
}

// readUntilClosed reads conn until the server closes it and returns what
// came. The test fails if the server has not closed it by deadline.
func readUntilClosed(t *testing.T, conn net.Conn, deadline time.Time) []byte {
	t.Helper()
	if err := conn.SetReadDeadline(deadline); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(conn)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		t.Fatalf("the connection is still open at the client's deadline; read so far %q", got)
	case errors.Is(err, syscall.ECONNRESET): // closed before it read all we sent
	case err != nil:
		t.Fatalf("read: %v (after %q)", err, got)
	}
	return got
}

// readAnswer reads one response from r, with its JSON error if it has
// one.
func readAnswer(t *testing.T, r *bufio.Reader) (resp *http.Response, jsonError string) {
	t.Helper()
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("answer: %v", err)
	}
	defer resp.Body.Close()
	var answer struct{ Error string }
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
			t.Fatalf("answer %d: %v", resp.StatusCode, err)
		}
	}
	return resp, answer.Error
}

func TestHeldBodyIsCutByReadTimeout(t *testing.T) {
	t.Parallel() // its own server; it waits on timers, not the CPU
	const readTimeout = time.Second
	url, _ := startMain(t, readTimeoutConfig(readTimeout))
	tests := []struct {
		name, head string
		status     int // the answer that comes before the close
	}{
		// net/http reads the unread body before it answers, to keep the
		// connection: without a read timeout it never answers.
		{"GET /healthz", heldRequest("GET", "/healthz", 100), http.StatusOK},
		// A body under the cap, waited for by the decoder.
		{"publish", heldRequest("POST", "/api/v1/topics/a/events", 10000), http.StatusRequestTimeout},
		// A GET stream's body is read before the stream lifts the read
		// deadline: left to net/http, which reads it before the first
		// write, it held the stream without an answer or a heartbeat.
		{"GET /api/v1/events", heldRequest("GET", "/api/v1/events?topic=a", 10), http.StatusRequestTimeout},
		{"GET /stream", heldRequest("GET", "/stream?count=2", 10), http.StatusRequestTimeout},
		{"GET /api/v1/events, chunked", "GET /api/v1/events?topic=a HTTP/1.1\r\nHost: ssehub.test\r\nTransfer-Encoding: chunked\r\n\r\n", http.StatusRequestTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			conn := sendHead(t, url, tt.head)
			// The client's deadline only bounds a connection held for
			// good: on a loaded machine the read deadline's timer, the
			// 408 and the close came more than a second late (1 run in
			// 10).
			raw := readUntilClosed(t, conn, start.Add(readTimeout+10*time.Second))
			if elapsed := time.Since(start); elapsed < readTimeout/2 {
				t.Errorf("closed after %v, before the read timeout", elapsed)
			}
			if resp, _ := readAnswer(t, bufio.NewReader(bytes.NewReader(raw))); resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
}

func TestDeclaredBodyOverTheCapIsRefusedAtOnce(t *testing.T) {
	// Long enough that an answer after reading (or waiting for) the body
	// would come far too late.
	const readTimeout = 10 * time.Second
	cfg := readTimeoutConfig(readTimeout)
	url, _ := startMain(t, cfg)
	tests := []struct {
		name, head string
		limit      int
	}{
		// Just over the cap: net/http would read it all before answering,
		// unless the answer closes the connection.
		{"publish", heldRequest("POST", "/api/v1/topics/a/events", cfg.Hub.MaxEventBytes+1), cfg.Hub.MaxEventBytes},
		// POST /stream takes 64 KiB.
		{"POST /stream", heldRequest("POST", "/stream", 1<<20), 64 << 10},
		// A GET stream drops up to 64 KiB of body.
		{"GET /api/v1/events", heldRequest("GET", "/api/v1/events?topic=a", 1<<20), 64 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := sendHead(t, url, tt.head)
			if err := conn.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
				t.Fatal(err)
			}
			resp, msg := readAnswer(t, bufio.NewReader(conn))
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close {
				t.Errorf("status %d, close %v: want 413 and the connection closed", resp.StatusCode, resp.Close)
			}
			if want := "limit is " + strconv.Itoa(tt.limit) + " bytes"; !strings.Contains(msg, want) {
				t.Errorf("error %q does not say %q", msg, want)
			}
		})
	}
}

func TestStreamsOutliveReadTimeout(t *testing.T) {
	t.Parallel() // its own server; it waits on timers, not the CPU
	const readTimeout = time.Second
	url, _ := startMain(t, readTimeoutConfig(readTimeout))
	client := &http.Client{Timeout: 10 * readTimeout}

	t.Run("ticker", func(t *testing.T) {
		resp, err := client.Get(url + "/stream?count=2&interval=1500ms")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		p := stream.NewParser(resp.Body)
		for _, want := range []string{"0", "1"} {
			ev, err := nextEvent(p)
			if err != nil || ev.ID != want {
				t.Fatalf("event %+v, %v: want id %s", ev, err, want)
			}
		}
		if ev, err := nextEvent(p); err != nil || ev.Type != "close" {
			t.Fatalf("event %+v, %v: want the close event", ev, err)
		}
	})

	t.Run("idle subscription", func(t *testing.T) {
		resp, err := client.Get(url + "/api/v1/events?topic=a")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("subscribe: %s", resp.Status)
		}
		time.Sleep(2 * readTimeout) // the timeout under test, waited out
		if status, answer := publishOverHTTP(t, url, hubTestToken, "a", "late"); status != http.StatusCreated {
			t.Fatalf("publish: %d %s", status, answer)
		}
		ev, err := nextEvent(stream.NewParser(resp.Body))
		if err != nil || ev.Data != "late" {
			t.Fatalf("event %+v, %v: want the one published", ev, err)
		}
	})
}

// TestKeptAliveConnectionOutlivesReadTimeout waits between two requests on
// one connection for longer than the read timeout: the idle timeout
// governs that wait, not the read timeout.
func TestKeptAliveConnectionOutlivesReadTimeout(t *testing.T) {
	const readTimeout = time.Second
	url, _ := startMain(t, readTimeoutConfig(readTimeout))
	conn := sendHead(t, url, "GET /healthz HTTP/1.1\r\nHost: ssehub.test\r\n\r\n")
	br := bufio.NewReader(conn)
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("request %d: %s, close %v, %v", i+1, resp.Status, resp.Close, err)
		}
		if i == 0 {
			time.Sleep(readTimeout * 3 / 2) // the timeout under test, waited out
			if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: ssehub.test\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestShutdownWithHeldBodyEndsCleanly shuts down while a client holds a
// connection with a body it never sends, and a read timeout longer than
// the shutdown timeout: Run must close it when the shutdown timeout passes
// and return nil (exit 0).
func TestShutdownWithHeldBodyEndsCleanly(t *testing.T) {
	cfg := readTimeoutConfig(5 * time.Second)
	cfg.Server.ShutdownTimeout = 500 * time.Millisecond
	url, stop := startMain(t, cfg)
	// The server asks for the body once the handler reads it: then the
	// request is surely under way.
	head := heldRequest("POST", "/api/v1/topics/a/events", 10000)
	head = strings.Replace(head, "\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n", 1)
	conn := sendHead(t, url, head)
	const goOn = "HTTP/1.1 100 Continue\r\n\r\n"
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(goOn))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != goOn {
		t.Fatalf("read %q, %v: want %q", got, err, goOn)
	}

	start := time.Now()
	stop() // fails the test if Run returns an error
	if elapsed := time.Since(start); elapsed > cfg.Server.ShutdownTimeout+time.Second {
		t.Errorf("Run returned after %v, shutdown timeout %v", elapsed, cfg.Server.ShutdownTimeout)
	}
	readUntilClosed(t, conn, time.Now().Add(time.Second))
}

// TestGetStreamWithABodyStreams: a GET stream's request that sends a body
// (meaningless, dropped) streams as one without.
func TestGetStreamWithABodyStreams(t *testing.T) {
	url, _ := startMain(t, readTimeoutConfig(time.Second))
	conn := sendHead(t, url, heldRequest("GET", "/stream?count=1&interval=0s", 5)+"hello")
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, _ := readAnswer(t, bufio.NewReader(conn))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		t.Fatalf("status %d, Content-Type %q: want the stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
