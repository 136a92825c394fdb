package main

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/testpki"
	"golang.org/x/net/http2"
)

// TestClientGoAwayLogsNoWarning: an HTTP/2 client that closes its
// connection with GOAWAY and an error code (its own trouble, or a
// client's way to leave, not the server's fault) is a debug line:
// net/http's "http2: received GOAWAY" was a warning per connection, at
// the rate a client chose. One without an error code it does not log.
func TestClientGoAwayLogsNoWarning(t *testing.T) {
	cfg := config.Default()
	cfg.Server.H2C = true
	var logs lockedBuffer
	base, _ := startMainLogging(t, cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteGoAway(0, http2.ErrCodeProtocol, []byte("bye")); err != nil {
		t.Fatal(err)
	}
	// The server logs the GOAWAY, then closes the connection.
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Fatal(err)
	}
	line := grepLine(logs.String(), "GOAWAY")
	if line == "" {
		t.Fatalf("no GOAWAY line:\n%s", logs.tail(4000))
	}
	if !strings.Contains(line, "level=DEBUG") {
		t.Errorf("GOAWAY line %q, want a debug line", line)
	}
}

// TestClientHTTP2MistakeLogsNoWarning: an HTTP/2 client that breaks the
// protocol (a first frame that is not SETTINGS, DATA on the connection's
// stream 0) or sends its preface and then nothing is the client's
// trouble, as a GOAWAY with an error code is: net/http's "http2: server
// connection error" and "timeout waiting for SETTINGS frames" were
// warnings per connection, at the rate a client chose. They are debug
// lines.
func TestClientHTTP2MistakeLogsNoWarning(t *testing.T) {
	cfg := config.Default()
	cfg.Server.H2C = true
	var logs lockedBuffer
	base, _ := startMainLogging(t, cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	for _, c := range []struct {
		name, line string
		send       func(fr *http2.Framer) error
	}{
		{"a first frame that is not SETTINGS", "connection error from", func(fr *http2.Framer) error {
			return fr.WritePing(false, [8]byte{})
		}},
		{"DATA on stream 0", "connection error from", func(fr *http2.Framer) error {
			if err := fr.WriteSettings(); err != nil {
				return err
			}
			fr.AllowIllegalWrites = true
			return fr.WriteData(0, false, []byte("x"))
		}},
		{"the preface alone", "timeout waiting for SETTINGS", func(*http2.Framer) error { return nil }},
	} {
		before := len(logs.String())
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
			t.Fatal(err)
		}
		if err := c.send(http2.NewFramer(conn, conn)); err != nil {
			t.Fatal(err)
		}
		// The server logs the error, then closes the connection.
		if _, err := io.Copy(io.Discard, conn); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		line := grepLine(logs.String()[before:], c.line)
		if line == "" {
			t.Fatalf("%s: no %q line:\n%s", c.name, c.line, logs.tail(4000))
		}
		if !strings.Contains(line, "level=DEBUG") {
			t.Errorf("%s: %q, want a debug line", c.name, line)
		}
	}
}

// TestTLSClientMistakeLogsNoWarning: a client whose first bytes are not
// TLS (a port scanner's probe, SSH or SMTP on the wrong port) or that
// offers only versions the server does not take (TLS 1.0, an old
// monitoring agent) fails the handshake on the server's side, not the
// certificate's: net/http's "TLS handshake error" was a warning per
// connection, at the rate scanners chose; it is at debug, as a probe that
// says nothing is.
func TestTLSClientMistakeLogsNoWarning(t *testing.T) {
	addr, logs, waitClosed := startTLSLogging(t, testpki.New(t))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "SSH-2.0-OpenSSH_9.6\r\n"); err != nil {
		t.Fatal(err)
	}
	waitClosed("a connection that is not TLS")
	conn.Close()

	old, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}) //nolint:gosec // the point
	if err == nil {
		old.Close()
		t.Fatal("a TLS 1.0 client completed the handshake")
	}
	waitClosed("a TLS 1.0 client")
	for line := range strings.Lines(logs.tail(1 << 20)) {
		if strings.Contains(line, "TLS handshake error") && !strings.Contains(line, "level=DEBUG") {
			t.Errorf("a client's handshake the server refused: %s", line)
		}
	}
}

// TestTLSSilentClientLogsNoWarning: a client that opens a connection and
// says nothing until the server gives up on its handshake (a load
// balancer's TCP check that holds the connection, a scanner, a client
// holding connections open for nothing) is at debug, as one that closes
// without a word is: net/http's "TLS handshake error ...: i/o timeout" was
// a warning per connection, at the rate a client chose.
func TestTLSSilentClientLogsNoWarning(t *testing.T) {
	pki := testpki.New(t)
	cfg := tlsTestConfig(pki)
	cfg.Server.ReadTimeout = time.Second // the handshake's bound
	var logs lockedBuffer
	base, _ := startMainLogging(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	// The server closes the connection once its handshake timed out,
	// after it logged the error.
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "TLS handshake error") {
			t.Errorf("a client that said nothing: %s", line)
		}
	}
}
