package main

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/config"
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
