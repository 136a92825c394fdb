package handler

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/internal/stream"
)

// TestDemoStreamsCountInTheMetrics: the demo streams, on either transport,
// count as requests of the route /stream by method and status once they
// end, and in ssehub_streams_ended_total by why: a ticker and a token
// stream that ran to their end (completed), a token stream whose client
// left (client_gone); a ticker's reset counts, and refusals before a
// stream (204 after the last id, a 400 for the body) count as requests
// only.
func TestDemoStreamsCountInTheMetrics(t *testing.T) {
	ts := newTestServer(t, testOptions())
	json := map[string]string{"Content-Type": "application/json"}

	readAll(t, ts.do(t, "GET", "/stream?count=2", nil, nil).Body)
	ts.waitReturned(t, "/stream")
	readAll(t, ts.do(t, "GET", "/stream?count=2", nil, map[string]string{"Last-Event-ID": "x"}).Body)
	ts.waitReturned(t, "/stream")
	if resp := ts.do(t, "GET", "/stream?count=2", nil, map[string]string{"Last-Event-ID": "1"}); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("a resume after the last id: %d, want 204", resp.StatusCode)
	}
	readAll(t, ts.do(t, "POST", "/stream", strings.NewReader(`{"text": "a b", "interval": "0s"}`), json).Body)
	ts.waitReturned(t, "/stream")
	wantJSONError(t, ts.do(t, "POST", "/stream", strings.NewReader(`{"text": ""}`), json), http.StatusBadRequest)

	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/stream", strings.NewReader(`{"text": "a b c", "interval": "5s"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	p := stream.NewParser(resp.Body)
	if ev := next(t, p); !strings.Contains(ev.Data, `"a"`) {
		t.Fatalf("first event %+v, want the first word", ev)
	}
	cancel()
	resp.Body.Close()
	ts.waitReturned(t, "/stream")

	waitMetrics(t, ts, []string{
		`ssehub_http_requests_total{code="200",method="GET",route="/stream"} 2`,
		`ssehub_http_requests_total{code="204",method="GET",route="/stream"} 1`,
		`ssehub_http_requests_total{code="200",method="POST",route="/stream"} 2`,
		`ssehub_http_requests_total{code="400",method="POST",route="/stream"} 1`,
		`ssehub_streams_ended_total{reason="completed"} 3`,
		`ssehub_streams_ended_total{reason="client_gone"} 1`,
		`ssehub_stream_resets_total 1`,
		`ssehub_streams_active 0`,
		// 2 lines and close, reset and 2 lines and close, 2 words and
		// [DONE], the first word.
		`ssehub_stream_events_sent_total 11`,
	})
}
