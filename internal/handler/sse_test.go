package handler

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
	"github.com/ssehub/ssehub/internal/testlog"
)

// pipeListener hands out in-memory connections, so a real http.Server and
// http.Client run inside a synctest bubble, where time is fake and a
// blocked read is durably blocked.
type pipeListener struct {
	conns     chan net.Conn
	closeOnce sync.Once
	done      chan struct{}
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	server, client := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// bubbleServer runs h on a real http.Server over in-memory connections.
// Call it inside synctest.Test; everything is shut down when the test ends.
func bubbleServer(t *testing.T, h http.Handler) *http.Client {
	ln := newPipeListener()
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }() // ErrServerClosed once the test ends
	client := &http.Client{Transport: &http.Transport{DialContext: ln.dial}}
	t.Cleanup(func() {
		client.CloseIdleConnections()
		srv.Close()
	})
	return client
}

// bubbleServerTimed is bubbleServer that also reports how long after the
// call each stream ended.
func bubbleServerTimed(t *testing.T, h *Handler) (*http.Client, <-chan time.Duration) {
	returned := make(chan time.Duration, 1)
	start := time.Now()
	h.streamEnded = func(string) { returned <- time.Since(start) }
	return bubbleServer(t, h), returned
}

// wantReturnedAt checks, in a synctest bubble, that the stream is still
// running until d has passed and has ended exactly then.
func wantReturnedAt(t *testing.T, returned <-chan time.Duration, d time.Duration) {
	t.Helper()
	synctest.Wait()
	select {
	case got := <-returned:
		t.Fatalf("stream ended after %v, before %v", got, d)
	default:
	}
	time.Sleep(d)
	synctest.Wait()
	select {
	case got := <-returned:
		if got != d {
			t.Errorf("stream ended after %v, want %v", got, d)
		}
	default:
		t.Fatalf("stream still running after %v", d)
	}
}

func TestHeartbeatWhileIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := New(testOptions()) // heartbeat 15s
		defer h.Close()
		client := bubbleServer(t, h)
		start := time.Now()
		resp, err := client.Get("http://ssehub/stream?count=2&interval=50s")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		lines := bufio.NewReader(resp.Body)
		var got []string
		for {
			line, err := lines.ReadString('\n')
			if err != nil {
				break
			}
			if line == "\n" {
				continue
			}
			got = append(got, time.Since(start).String()+" "+strings.TrimSuffix(line, "\n"))
		}
		want := []string{
			"0s retry: 2500",
			"0s id: 0", "0s data: Streamed line 0",
			"15s : heartbeat", "30s : heartbeat", "45s : heartbeat",
			"50s id: 1", "50s data: Streamed line 1",
			"50s event: close", "50s data: bye",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("stream:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

func TestHeartbeatIsCountedFromTheLastWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := testOptions()
		opts.Stream.HeartbeatInterval = 10 * time.Second
		h := New(opts)
		defer h.Close()
		client := bubbleServer(t, h)
		start := time.Now()
		resp, err := client.Get("http://ssehub/stream?count=4&interval=6s")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		p := stream.NewParser(resp.Body)
		p.OnComment = func(text string) {
			t.Errorf("heartbeat %q at %v although events come every 6s", text, time.Since(start))
		}
		for range 5 {
			if _, err := nextEvent(p); err != nil {
				t.Fatal(err)
			}
		}
		if got := time.Since(start); got != 18*time.Second {
			t.Errorf("stream took %v, want 18s", got)
		}
	})
}

func TestWriteTimeoutDropsAClientThatDoesNotRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := testOptions()
		opts.Stream.WriteTimeout = 7 * time.Second
		h := New(opts)
		defer h.Close()
		client, returned := bubbleServerTimed(t, h)
		// 10000 lines at once: far more than the connection buffers
		// hold, and the client never reads the body.
		resp, err := client.Get("http://ssehub/stream?count=10000&interval=0s")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		wantReturnedAt(t, returned, 7*time.Second)
	})
}

func TestClientGoneEndsIdleStream(t *testing.T) {
	// Real sockets; the test's goleak check proves nothing outlives it.
	ts := newTestServer(t, testOptions())
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/stream?count=2&interval=1m", nil)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := nextEvent(stream.NewParser(resp.Body)); err != nil {
		t.Fatal(err)
	}
	// Mid-interval: the next line is a minute away.
	cancel()
	ts.waitReturned(t, "/stream")
}

func TestCloseEndsOpenStreamsAtOnce(t *testing.T) {
	ts := newTestServer(t, testOptions())
	resp := ts.do(t, "GET", "/stream?count=2&interval=1m", nil, nil)
	p := stream.NewParser(resp.Body)
	if _, err := nextEvent(p); err != nil {
		t.Fatal(err)
	}
	ts.h.Close()
	if _, err := nextEvent(p); !errors.Is(err, io.EOF) {
		t.Fatalf("after Close: %v, want the stream to end", err)
	}
	ts.waitReturned(t, "/stream")
	waitDrained(t, ts.h) // with the detached transport, Wait sees the stream gone too
	wantJSONError(t, ts.do(t, "GET", "/readyz", nil, nil), http.StatusServiceUnavailable)
}

// TestCloseEndsAnIdleStreamCleanly closes the handler while a stream is
// idle past its write deadline, as a stream is between heartbeats with
// the default settings (15s, 10s): its end, the last chunk, is a write
// too, and must not fail on that old deadline. The client reads the
// stream to its clean end; cut, Go's client reads io.ErrUnexpectedEOF.
// In a synctest bubble, with fake time: over a real socket the stream's
// first event had to be written within the 100 ms timeout, which a loaded
// machine could run out, and the stream was cut before the test began.
func TestCloseEndsAnIdleStreamCleanly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := testOptions()
		opts.Stream.WriteTimeout = 100 * time.Millisecond
		opts.Stream.HeartbeatInterval = time.Hour
		// No retry field as the stream ends: that is a write of a step,
		// which would set a deadline of its own for the end too.
		opts.Stream.Retry = 0
		h := New(opts)
		defer h.Close()
		client, returned := bubbleServerTimed(t, h)
		resp, err := client.Get("http://ssehub/stream?count=2&interval=1m")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if _, err := nextEvent(stream.NewParser(resp.Body)); err != nil {
			t.Fatal(err)
		}
		// The deadline was set before the first write: it has passed now.
		time.Sleep(10 * opts.Stream.WriteTimeout)
		h.Close()
		if rest, err := io.ReadAll(resp.Body); err != nil {
			t.Fatalf("after Close: %v (read %q), want the stream's clean end", err, rest)
		}
		<-returned
	})
}

// TestCloseEndsAStreamCleanlyForASlowReader closes the handler while a
// stream is idle past its write deadline, and its client then pauses its
// reading for 4s, less than half of stream.write_timeout: the stream's end
// (the last chunk) is a write of the stream, which has at least half of
// the write timeout, in either transport, and the client reads the
// stream to its clean end.
func TestCloseEndsAStreamCleanlyForASlowReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := testOptions()
		opts.Stream.WriteTimeout = 10 * time.Second
		opts.Stream.HeartbeatInterval = time.Hour
		h := New(opts)
		defer h.Close()
		client, returned := bubbleServerTimed(t, h)
		resp, err := client.Get("http://ssehub/stream?count=2&interval=1m")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		p := stream.NewParser(resp.Body)
		if _, err := nextEvent(p); err != nil {
			t.Fatal(err)
		}
		time.Sleep(24 * time.Second) // the deadline set with the first write has passed
		h.Close()
		// The client reads nothing meanwhile, and an in-memory
		// connection holds nothing: the stream's end waits for it.
		time.Sleep(4 * time.Second)
		if ev, err := nextEvent(p); !errors.Is(err, io.EOF) {
			t.Fatalf("after a 4s pause: %+v, %v; want the stream's clean end", ev, err)
		}
		<-returned
	})
}

func TestHubWriteTimeoutDropsASubscriberThatDoesNotRead(t *testing.T) {
	skipOnNATS(t, synctestWhy)
	synctest.Test(t, func(t *testing.T) {
		opts, broker := hubOptions(t, stream.MemoryOptions{SubscriberBuffer: 100000})
		opts.Stream.WriteTimeout = 7 * time.Second
		h := New(opts)
		defer h.Close()
		client, returned := bubbleServerTimed(t, h)
		resp, err := client.Get("http://ssehub/api/v1/events?topic=a")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		// The client never reads: far more than the connection buffers.
		data := strings.Repeat("x", 1000)
		for range 1000 {
			if _, _, err := broker.Publish(stream.Publication{Topic: "a", Data: data}); err != nil {
				t.Fatal(err)
			}
		}
		wantReturnedAt(t, returned, 7*time.Second)
		if got := h.metrics.writeTimeouts.Load(); got != 1 {
			t.Errorf("%d write timeouts counted, want 1", got)
		}
		if got := broker.Stats().Subscribers; got != 0 {
			t.Errorf("%d subscribers left, want 0", got)
		}
	})
}

func TestHubHeartbeatResetBySends(t *testing.T) {
	skipOnNATS(t, synctestWhy)
	synctest.Test(t, func(t *testing.T) {
		opts, broker := hubOptions(t, stream.MemoryOptions{FirstID: 1})
		opts.Stream.HeartbeatInterval = 10 * time.Second
		h := New(opts)
		defer h.Close()
		client := bubbleServer(t, h)
		start := time.Now()
		resp, err := client.Get("http://ssehub/api/v1/events?topic=a")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var beats []time.Duration
		p := stream.NewParser(resp.Body)
		p.OnComment = func(string) { beats = append(beats, time.Since(start)) }
		go func() {
			time.Sleep(6 * time.Second)
			if _, _, err := broker.Publish(stream.Publication{Topic: "a", Data: "at 6s"}); err != nil {
				t.Error(err)
			}
			time.Sleep(27 * time.Second)
			if _, _, err := broker.Publish(stream.Publication{Topic: "a", Data: "at 33s"}); err != nil {
				t.Error(err)
			}
		}()
		for range 2 {
			if _, err := nextEvent(p); err != nil {
				t.Fatal(err)
			}
		}
		want := []time.Duration{16 * time.Second, 26 * time.Second}
		if fmt.Sprint(beats) != fmt.Sprint(want) {
			t.Errorf("heartbeats at %v, want %v (10s after each write)", beats, want)
		}
	})
}

// A step whose write fails (here: times out, the client reads nothing) did
// not send its events: neither the stream's end line nor the metrics may
// count them. In the gin transport the failure comes with the flush after
// the step, in the detached one with its write.
func TestEventsOfAFailedWriteAreNotCountedAsSent(t *testing.T) {
	skipOnNATS(t, synctestWhy)
	synctest.Test(t, func(t *testing.T) {
		var logs testlog.Buffer
		opts, broker := hubOptions(t, stream.MemoryOptions{})
		opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		opts.Stream.WriteTimeout = 7 * time.Second
		h := New(opts)
		defer h.Close()
		client, ended := bubbleServerTimed(t, h)
		resp, err := client.Get("http://ssehub/api/v1/events?topic=a")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ev, err := stream.NewParser(resp.Body).Next(); err != nil || ev.Type != "position" {
			t.Fatalf("first event %+v (%v), want the position", ev, err)
		}
		// The client reads nothing more: the event's write blocks, and
		// times out.
		if _, _, err := broker.Publish(stream.Publication{Topic: "a", Data: "never read"}); err != nil {
			t.Fatal(err)
		}
		wantReturnedAt(t, ended, 7*time.Second)
		line := logs.String()
		if !strings.Contains(line, `msg="stream ended" path=/api/v1/events events=0 `) {
			t.Errorf("the end line counts events the client never got:\n%s", line)
		}
		metrics, err := client.Get("http://ssehub/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer metrics.Body.Close()
		b, _ := io.ReadAll(metrics.Body)
		if !strings.Contains(string(b), "\nssehub_stream_events_sent_total 0\n") {
			t.Errorf("/metrics: %s; want ssehub_stream_events_sent_total 0", grepLines(string(b), "ssehub_stream_events_sent_total"))
		}
		// The access line of a stream that ran inside Gin says the same
		// bytes as its end line (a detached one's was written when it was
		// handed over, before any).
		synctest.Wait()
		sent := regexp.MustCompile(`msg="stream ended" path=/api/v1/events .*bytes=(\d+) `).FindStringSubmatch(logs.String())
		access := regexp.MustCompile(`msg=request method=GET path=/api/v1/events .*bytes=(\d+) `).FindStringSubmatch(logs.String())
		if sent == nil || access == nil {
			t.Fatalf("no end line or access line:\n%s", logs.String())
		}
		if !testDetached && access[1] != sent[1] {
			t.Errorf("the access line says %s bytes, the end line %s:\n%s", access[1], sent[1], logs.String())
		}
	})
}
