package handler

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
	"golang.org/x/sys/unix"
)

// A subscriber that stops reading may be ended by the kernel before the
// write deadline: ssehub's listener sets TCP_USER_TIMEOUT to the write
// timeout, and a zero window held that long aborts the connection, its
// blocked write failing with ETIMEDOUT. It is the same slow subscriber,
// and counts as one, as the README says, whichever timer fires first.
// Here the kernel's is far shorter, so it fires first.
func TestHubSubscriberEndedByTCPUserTimeoutCountsAsSlow(t *testing.T) {
	opts, broker := hubOptions(t, stream.MemoryOptions{SubscriberBuffer: 100000})
	opts.Stream.WriteTimeout = time.Minute
	h := New(opts)
	ended := make(chan string, 16)
	h.streamEnded = func(path string) { ended <- path }
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 300)
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer func() {
		h.Close()
		srv.Close()
		waitDrained(t, h)
	}()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /api/v1/events?topic=a HTTP/1.1\r\nHost: ssehub\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, len("HTTP/1.1 200"))
	if _, err := io.ReadFull(conn, head); err != nil || string(head) != "HTTP/1.1 200" {
		t.Fatalf("answer %q, %v; want a stream", head, err)
	}
	// The client reads nothing from here on (see TestHubWriteTimeoutOverTCP).
	data := strings.Repeat("x", 4000)
	for range 4000 {
		if _, _, err := broker.Publish(stream.Publication{Topic: "a", Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-ended:
	case <-time.After(20 * time.Second):
		t.Fatal("the stream of a subscriber that reads nothing did not end")
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), "\nssehub_slow_subscribers_dropped_total 1\n") {
		t.Errorf("/metrics, want ssehub_slow_subscribers_dropped_total 1:\n%s", grepLines(string(b), "ssehub_"))
	}
	if ends := streamEnds(string(b)); ends != `ssehub_streams_ended_total{reason="write_failed"} 1` {
		t.Errorf("/metrics: %s; want the stream ended as write_failed, and only that", ends)
	}
}
