package handler

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ssehub/ssehub/internal/stream"
)

// FuzzPublish sends arbitrary bodies to the real router: the answer is a
// 201 whose event carries exactly the data asked for, or a 4xx JSON error
// that changed nothing. Never a 5xx, never a panic.
func FuzzPublish(f *testing.F) {
	for _, seed := range []string{
		`{"data": "hello"}`,
		`{"event": "e", "data": {"a": [1, 2, {"b": null}]}}`,
		`{"data": "line 1\r\nline 2\rline 3\n"}`,
		`{"data": "\u0000\u2028"}`,
		`{"data": null}`, `{"data": 1e400}`, `{"data": -0.0}`, `{"data": true}`,
		`{"event": "", "data": ""}`, `{"event": "a\nb", "data": 1}`,
		`{"data": 1} trailing`, `{"data": 1}{}`, `{"data": 1} ]`, `{"data": 1}}`, `[1]`, `"x"`, `{`, ``, `{"data": "\ud800"}`,
		`{"Data": 2}`, `{"data": 1, "data": 2}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		broker := stream.NewMemory(stream.MemoryOptions{FirstID: 1})
		defer broker.Close()
		sub, err := broker.Subscribe([]string{">"}, "")
		if err != nil {
			t.Fatal(err)
		}
		opts := testOptions()
		opts.Hub = HubOptions{Broker: broker, PublishTokens: []string{"t"}, MaxEventBytes: 4096}
		h := New(opts)
		defer h.Close()

		req := httptest.NewRequest("POST", "/api/v1/topics/fuzz.topic/events", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer t")
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		switch rec.Code {
		case http.StatusCreated:
			var req struct {
				Data json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(body, &req); err != nil {
				t.Fatalf("201 for a body that does not decode: %v", err)
			}
			want := compactOrString(t, req.Data)
			msgs, _ := sub.Take(nil, 0)
			if len(msgs) != 1 {
				t.Fatalf("201, yet %d events queued to a subscriber", len(msgs))
			}
			msg := msgs[0]
			ev, err := stream.NewParser(bytes.NewReader(msg.Frame)).Next()
			if err != nil {
				t.Fatalf("frame %q: %v", msg.Frame, err)
			}
			if ev.Data != want || !utf8.ValidString(ev.Data) {
				t.Fatalf("event data %q, want %q", ev.Data, want)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			var e struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("%d without a JSON error: %q", rec.Code, rec.Body)
			}
			if n := broker.Stats().Published; n != 0 {
				t.Fatalf("%d answer, yet %d events published", rec.Code, n)
			}
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	})
}

// compactOrString is what a subscriber must receive for a publish's data:
// a JSON string as it is (its line ends as LF), any other value compact,
// each byte that is not UTF-8 U+FFFD in either.
func compactOrString(t *testing.T, data json.RawMessage) string {
	var s string
	if data[0] == '"' {
		if err := json.Unmarshal(data, &s); err != nil {
			t.Fatalf("string %q: %v", data, err)
		}
		s = strings.ReplaceAll(s, "\r\n", "\n")
		return strings.ReplaceAll(s, "\r", "\n")
	}
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		t.Fatalf("compact %q: %v", data, err)
	}
	return string([]rune(b.String())) // a U+FFFD for each byte not UTF-8
}

func TestHubSubscribeChurnLeavesNothing(t *testing.T) {
	opts, broker := hubOptions(t, stream.MemoryOptions{})
	ts := newTestServer(t, opts)
	for i := range 50 {
		resp := ts.do(t, "GET", "/api/v1/events?topic=churn.>", nil, nil)
		wantStreamHeaders(t, resp)
		ts.publish(t, "churn.x", `{"data": "n"}`)
		if _, err := nextEvent(stream.NewParser(resp.Body)); err != nil {
			t.Fatalf("subscription %d: %v", i, err)
		}
		resp.Body.Close() // the client goes away
		ts.waitReturned(t, "/api/v1/events")
	}
	if n := broker.Stats().Subscribers; n != 0 {
		t.Errorf("%d subscribers left after churn, want 0", n)
	}
}
