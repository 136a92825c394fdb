package natsbroker

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/handler"
	"github.com/ssehub/ssehub/internal/stream"
)

// A subscriber whose stream's write is blocked (its client reads nothing)
// when the NATS stream is deleted and created again: its subscription
// ends (ErrStreamDeleted), and the write then times out. As the README
// says, the stream ended as dropped, by the broker, and it was not a slow
// subscriber: ssehub_slow_subscribers_dropped_total stays 0.
func TestSubscriberBlockedWhenTheStreamIsReplacedEndsDropped(t *testing.T) {
	t.Parallel() // waits for the write timeout, not on the CPU
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.SubscriberBuffer = 100000
	b, err := Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	h := handler.New(handler.Options{
		Logger: slog.New(slog.DiscardHandler),
		// Long enough that the write is still blocked when the stream is
		// replaced.
		Stream: handler.StreamOptions{HeartbeatInterval: time.Minute, WriteTimeout: 16 * time.Second},
		Hub:    handler.HubOptions{Broker: b, PublishTokens: []string{testToken}},
	})
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = smallSendBuffers{srv.Listener}
	srv.Start()
	in := &instance{Server: srv, broker: b, h: h}
	t.Cleanup(in.close)

	conn, err := net.Dial("tcp", in.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.(*net.TCPConn).SetReadBuffer(smallBuffer); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "GET /api/v1/events?topic=t HTTP/1.1\r\nHost: ssehub\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, len("HTTP/1.1 200"))
	if _, err := io.ReadFull(conn, head); err != nil || string(head) != "HTTP/1.1 200" {
		t.Fatalf("answer %q, %v; want a stream", head, err)
	}
	// The client reads nothing more: 1 MB fill the socket's small
	// buffers several times over, and the write blocks. The write
	// timeout runs from then on, at least half of it left: what follows
	// must be done before. Each publish waits for its delivery, and on a
	// loaded machine the 400 publishes of 40 KB that filled the
	// buffers' default sizes took longer than that, and the write timed
	// out before the stream was replaced.
	data := strings.Repeat("x", 40000)
	for range 25 {
		if _, _, err := b.Publish(stream.Publication{Topic: "t", Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the events to be delivered", func() bool { return b.Stats().Delivered >= 25 })
	deleteStream(t, ns, DefaultStream)
	createStream(t, ns, opts)
	publishUntilAccepted(t, in, "u", "new")
	waitFor(t, "the subscription to end", func() bool { return b.Stats().Subscribers == 0 })
	if !strings.Contains(in.metrics(t), "\nssehub_streams_active 1\n") {
		t.Fatal("the stream ended with its subscription: its write was not blocked, or timed out before the stream was replaced")
	}

	var text string
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(text, "\nssehub_streams_active 0\n") {
		if time.Now().After(deadline) {
			t.Fatal("the stream did not end")
		}
		time.Sleep(50 * time.Millisecond)
		resp, err := http.Get(in.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		text = string(body)
	}
	for _, want := range []string{
		`ssehub_slow_subscribers_dropped_total 0`,
		`ssehub_streams_ended_total{reason="dropped"} 1`,
		`ssehub_streams_ended_total{reason="write_failed"} 0`,
	} {
		if !strings.Contains(text, "\n"+want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// smallBuffer is the size a test asks of a socket's buffer, small enough
// that a stream whose client reads nothing blocks after a few events.
const smallBuffer = 16 << 10

// smallSendBuffers is a listener whose connections have a send buffer of
// smallBuffer.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		if err := tc.SetWriteBuffer(smallBuffer); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, err
}
