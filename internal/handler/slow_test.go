package handler

import (
	"io"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

func TestHubDropsASlowSubscriberAndCountsItOnce(t *testing.T) {
	skipOnNATS(t, synctestWhy)
	synctest.Test(t, func(t *testing.T) {
		opts, broker := hubOptions(t, stream.MemoryOptions{SubscriberBuffer: 4})
		opts.Stream.WriteTimeout = 7 * time.Second
		h := New(opts)
		defer h.Close()
		client, ended := bubbleServerTimed(t, h)
		resp, err := client.Get("http://ssehub/api/v1/events?topic=a")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		// The client never reads: the first writes fill what the
		// connection holds, then the queue of 4, then the broker drops
		// the subscriber. The publisher never waits.
		data := strings.Repeat("x", 1000)
		for range 20 {
			if _, err := broker.Publish("a", "", data); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}
		if got := broker.Stats().Dropped; got != 1 {
			t.Fatalf("%d subscribers dropped by the broker, want 1", got)
		}
		// The blocked write ends at the write timeout, and the
		// connection closes.
		wantReturnedAt(t, ended, 7*time.Second)
		if _, err := io.Copy(io.Discard, resp.Body); err == nil {
			t.Error("the stream of a dropped subscriber ended cleanly, want a cut connection")
		}

		metrics, err := client.Get("http://ssehub/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer metrics.Body.Close()
		b, _ := io.ReadAll(metrics.Body)
		if !strings.Contains(string(b), "\nssehub_slow_subscribers_dropped_total 1\n") {
			t.Errorf("/metrics, want ssehub_slow_subscribers_dropped_total 1:\n%s", grepLines(string(b), "ssehub_"))
		}
	})
}

func TestHubStreamStartsWithTheRetryField(t *testing.T) {
	ts := newHubServer(t) // retry 2500ms
	p := ts.subscribe(t, "topic=a", nil)
	ts.publish(t, "a", `{"data": "x"}`)
	ev, err := p.Next()
	if err != nil {
		t.Fatal(err)
	}
	if ev.Retry != 2500*time.Millisecond || ev.Data != "x" {
		t.Errorf("first event %+v, want retry 2.5s before it", ev)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// Over a real socket, with either transport: a subscriber that does not
// read is dropped at the write timeout, and counted once (with Gin the
// timeout shows as the flush's error, which ginWriter keeps).
func TestHubWriteTimeoutOverTCP(t *testing.T) {
	opts, broker := hubOptions(t, stream.MemoryOptions{SubscriberBuffer: 100000})
	opts.Stream.WriteTimeout = 300 * time.Millisecond
	ts := newTestServer(t, opts)
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
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
	// From here on the client reads nothing: 16 MB is far more than the
	// socket buffers hold (Linux lets a send buffer grow to 4 MiB by
	// default, so 4 MB could all fit).
	data := strings.Repeat("x", 4000)
	for range 4000 {
		if _, err := broker.Publish("a", "", data); err != nil {
			t.Fatal(err)
		}
	}
	ts.waitReturned(t, "/api/v1/events")
	if got := ts.h.metrics.writeTimeouts.Load(); got != 1 {
		t.Errorf("%d write timeouts counted, want 1", got)
	}
	if got := broker.Stats().Subscribers; got != 0 {
		t.Errorf("%d subscribers left, want 0", got)
	}
}
