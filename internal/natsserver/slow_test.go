package natsserver

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/testlog"
)

// TestSlowConsumerWarns: a client the server disconnects as a slow
// consumer (ssehub's own connection, the only one an embedded server has,
// behind on what it was sent) is a warning, the cause of the broker's
// "nats disconnected" warning: nats-server says it in a notice, which went
// to debug with the start-up banner, so the log at info said the
// connection was lost and not why.
func TestSlowConsumerWarns(t *testing.T) {
	var logs testlog.Buffer
	// At debug, so that the line is there to be seen whatever its level.
	u, _ := start(t, t.TempDir(), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	// A subscriber that reads nothing past the server's INFO.
	slow, err := net.Dial("tcp", pu.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if err := slow.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(slow).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	connect := fmt.Sprintf("CONNECT {\"verbose\":false,\"auth_token\":%q}\r\nSUB slow 1\r\nPING\r\n", pu.User.Username())
	if _, err := io.WriteString(slow, connect); err != nil {
		t.Fatal(err)
	}
	nc := connectNATS(t, u)
	defer nc.Close()
	data := bytes.Repeat([]byte("x"), 512<<10)
	// Past the server's max_pending for a client (64 MiB), a little at a
	// time, until the server says it cut the subscriber off.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "Slow Consumer Detected") {
		if time.Now().After(deadline) {
			t.Fatalf("no slow consumer logged:\n%s", logs.String())
		}
		for range 16 {
			if err := nc.Publish("slow", data); err != nil {
				t.Fatal(err)
			}
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "Slow Consumer Detected") && !strings.Contains(line, "level=WARN") {
			t.Errorf("slow consumer line %q, want a warning", line)
		}
	}
}
