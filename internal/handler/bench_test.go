package handler

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/stream"
)

// BenchmarkTickerStream measures one GET /stream client receiving 10000
// lines with no interval: the paced loop, the shared frames, one write and
// one flush per step, over a real socket.
func BenchmarkTickerStream(b *testing.B) {
	opts := testOptions()
	h := New(opts)
	defer h.Close()
	ts := newBenchServer(b, h)
	const count = 10000
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := http.Get(ts + "/stream?count=" + strconv.Itoa(count) + "&interval=0s")
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n < count*30 {
			b.Fatalf("read %d bytes: %v", n, err)
		}
	}
	b.ReportMetric(float64(count*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkSubscriberReplay measures the delivery path of one subscriber:
// 100-byte events already queued (a resume from the start of the history)
// written in coalesced steps over a real socket.
func BenchmarkSubscriberReplay(b *testing.B) {
	const events = 100000
	broker := stream.NewMemory(stream.MemoryOptions{HistorySize: events + 1, FirstID: 1e15})
	defer broker.Close()
	data := strings.Repeat("x", 100)
	var frames int64
	for range events + 1 {
		msg, _, err := broker.Publish(stream.Publication{Topic: "bench", Data: data})
		if err != nil {
			b.Fatal(err)
		}
		frames += int64(len(msg.Frame))
	}
	opts := testOptions()
	opts.Stream.Retry = 0
	opts.Hub = HubOptions{Broker: broker}
	h := New(opts)
	defer h.Close()
	ts := newBenchServer(b, h)
	perFrame := frames / (events + 1)
	want := perFrame * events // ids 1e15+1 on: every frame the same size

	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", ts+"/api/v1/events?topic=bench", nil)
		req.Header.Set("Last-Event-ID", "1000000000000000")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.CopyN(io.Discard, resp.Body, want); err != nil {
			b.Fatalf("read %d of %d bytes: %v", n, want, err)
		}
		cancel()
		resp.Body.Close()
	}
	b.ReportMetric(float64(events*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkSubscriberLive measures publish to delivery for one subscriber:
// b.N 100-byte events published as fast as the broker takes them while the
// subscriber's stream drains its queue into a real socket.
func BenchmarkSubscriberLive(b *testing.B) {
	broker := stream.NewMemory(stream.MemoryOptions{SubscriberBuffer: b.N + 1, FirstID: 1e15})
	defer broker.Close()
	opts := testOptions()
	opts.Stream.Retry = 0
	opts.Hub = HubOptions{Broker: broker}
	h := New(opts)
	defer h.Close()
	ts := newBenchServer(b, h)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts+"/api/v1/events?topic=bench", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	data := strings.Repeat("x", 100)
	probe, _ := (&stream.Event{ID: "1000000000000000", Data: data}).AppendTo(nil)

	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for range b.N {
			if _, _, err := broker.Publish(stream.Publication{Topic: "bench", Data: data}); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	if n, err := io.CopyN(io.Discard, resp.Body, int64(len(probe)*b.N)); err != nil {
		b.Fatalf("read %d bytes: %v", n, err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkPublish measures POST /api/v1/topics/{topic}/events over a real
// socket and a keep-alive connection: a 100-byte body shaped like
// ssebench's (compact JSON object data), the in-memory broker, no
// subscribers. The client's own cost is part of ns/op.
func BenchmarkPublish(b *testing.B) {
	broker := stream.NewMemory(stream.MemoryOptions{FirstID: 1e15})
	defer broker.Close()
	opts := testOptions()
	opts.Hub = HubOptions{Broker: broker, PublishTokens: []string{testToken}}
	h := New(opts)
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := srv.Client()
	url := srv.URL + "/api/v1/topics/bench.prices/events"
	body := `{"data":{"seq":123456,"ts":1767225600000000000,"pad":"` + strings.Repeat("x", 43) + `"}}`
	if len(body) != 100 {
		b.Fatalf("body is %d bytes, want 100", len(body))
	}

	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusCreated {
			b.Fatalf("status %d: %v", resp.StatusCode, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// newBenchServer serves h on a real loopback socket for a benchmark.
func newBenchServer(b *testing.B, h http.Handler) string {
	b.Helper()
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	return srv.URL
}

// BenchmarkTickerConnection measures what one short stream costs from
// connect to close: a fresh connection, GET /stream?count=10&interval=0s,
// read to the end. It is the per-connection part of the 2000-client
// ticker run in docs/BENCHMARKS.md, where each client holds a connection
// for 10 lines.
func BenchmarkTickerConnection(b *testing.B) {
	benchTickerConnections(b, testOptions())
}

// BenchmarkTickerConnectionUnderMiddleware is BenchmarkTickerConnection
// under a middleware (Options.Middleware) whose writer does not unwrap: the
// stream reaches Gin's writer under it through the request's Keys. With
// the detached transport too the streams stay inside Gin's c.Stream
// under such a writer (Handler.wrappedWriter).
func BenchmarkTickerConnectionUnderMiddleware(b *testing.B) {
	opts := testOptions()
	opts.Middleware = []gin.HandlerFunc{func(c *gin.Context) {
		c.Writer = wrappingWriter{c.Writer}
		c.Next()
	}}
	benchTickerConnections(b, opts)
}

// benchTickerConnections runs BenchmarkTickerConnection's clients against
// a handler with opts.
func benchTickerConnections(b *testing.B, opts Options) {
	h := New(opts)
	defer h.Close()
	ts := newBenchServer(b, h)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(ts + "/stream?count=10&interval=0s")
			if err != nil {
				b.Error(err)
				return
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}
