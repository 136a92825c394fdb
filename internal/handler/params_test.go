package handler

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/internal/stream"
)

// A parameter given twice is refused, naming it, not read as its first
// value: ?count=1&count=3 streamed 1 line where a proxy or a log that
// reads the last value sees 3. topic is a list by design.
func TestRepeatedParametersAreRefused(t *testing.T) {
	ts := newHubServer(t)
	tests := []struct {
		name, path string
		lastIDs    []string // Last-Event-ID headers
		mentions   string
	}{
		{"count", "/stream?count=1&count=3", nil, "query parameter count given 2 times"},
		{"interval", "/stream?interval=0s&interval=1s&interval=2s", nil, "query parameter interval given 3 times"},
		{"Last-Event-ID of the ticker", "/stream?count=3", []string{"0", "1"}, "header Last-Event-ID given 2 times"},
		{"last_event_id", "/api/v1/events?topic=a&last_event_id=1&last_event_id=2", nil, "query parameter last_event_id given 2 times"},
		{"last_event_id beside the header", "/api/v1/events?topic=a&last_event_id=1&last_event_id=1", []string{"1"}, "query parameter last_event_id given 2 times"},
		{"Last-Event-ID of a subscription", "/api/v1/events?topic=a", []string{"1", "2"}, "header Last-Event-ID given 2 times"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), "GET", ts.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header["Last-Event-Id"] = tt.lastIDs
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest { // a stream: not read to its end
				t.Fatalf("status %d, want 400", resp.StatusCode)
			}
			if msg := wantJSONError(t, resp, http.StatusBadRequest); !strings.Contains(msg, tt.mentions) {
				t.Errorf("error %q, want it to mention %q", msg, tt.mentions)
			}
		})
	}

	// Given once, each is read; topic may come several times.
	resp := ts.do(t, "GET", "/stream?count=2&interval=0s", nil, map[string]string{"Last-Event-ID": "0"})
	wantStreamHeaders(t, resp)
	if _, events := readAll(t, resp.Body); len(events) != 2 || events[0].ID != "1" {
		t.Errorf("events %+v, want line 1 and close", events)
	}
	sub := ts.do(t, "GET", "/api/v1/events?topic=a&topic=b&last_event_id=1", nil, nil)
	wantStreamHeaders(t, sub)
}

// Credentials given twice, two Authorization headers or two access_token
// parameters, are a 400 naming them, not the first one taken, with the
// challenge RFC 6750 §3.1 gives such a request: error="invalid_request".
func TestRepeatedCredentialsAreRefused(t *testing.T) {
	opts, _ := hubOptions(t, stream.MemoryOptions{})
	opts.Hub.SubscribeTokens = []string{"sub"}
	ts := newTestServer(t, opts)
	wantInvalidRequest := func(t *testing.T, resp *http.Response) {
		t.Helper()
		if got, want := resp.Header.Get("WWW-Authenticate"), `Bearer realm="ssehub", error="invalid_request"`; got != want {
			t.Errorf("WWW-Authenticate %q, want %q", got, want)
		}
	}

	for _, tt := range []struct{ method, path string }{
		{"POST", "/api/v1/topics/a/events"},
		{"GET", "/api/v1/events?topic=a"},
		{"GET", "/api/v1/topics"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, ts.URL+tt.path, strings.NewReader(`{"data": "x"}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header["Authorization"] = []string{"Bearer " + testToken, "Bearer other"}
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if msg := wantJSONError(t, resp, http.StatusBadRequest); !strings.Contains(msg, "header Authorization given 2 times") {
				t.Errorf("two Authorization headers: %q", msg)
			}
			wantInvalidRequest(t, resp)
		})
	}

	resp := ts.do(t, "GET", "/api/v1/events?topic=a&access_token=sub&access_token=other", nil, nil)
	if msg := wantJSONError(t, resp, http.StatusBadRequest); !strings.Contains(msg, "query parameter access_token given 2 times") {
		t.Errorf("two access_token parameters on a subscription: %q", msg)
	}
	wantInvalidRequest(t, resp)
	// Another 400 is no matter of credentials: no challenge.
	resp = ts.do(t, "GET", "/api/v1/events?topic=a&last_event_id=1&last_event_id=2", nil, map[string]string{"Authorization": "Bearer sub"})
	wantJSONError(t, resp, http.StatusBadRequest)
	if got := resp.Header.Get("WWW-Authenticate"); got != "" {
		t.Errorf("a 400 for last_event_id says WWW-Authenticate %q", got)
	}
	// Once, each is read.
	wantStreamHeaders(t, ts.do(t, "GET", "/api/v1/events?topic=a&access_token=sub", nil, nil))
}

// A JSON body's Content-Type given twice is a 400 naming it, on every
// JSON endpoint: the first was read, so application/json beside
// text/plain (or a charset ISO-8859-1 in the second) was taken, where a
// proxy or a filter that reads the last sees another body.
func TestRepeatedContentTypeIsRefused(t *testing.T) {
	for _, e := range jsonEndpoints {
		for _, second := range []string{"text/plain", "application/json; charset=iso-8859-1", "application/json"} {
			t.Run(e.path+"/"+second, func(t *testing.T) {
				ts := newHubServer(t)
				req, err := http.NewRequestWithContext(t.Context(), "POST", ts.URL+e.path, strings.NewReader(e.body("a b")))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", "Bearer "+testToken)
				req.Header["Content-Type"] = []string{"application/json", second}
				resp, err := ts.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if msg := wantJSONError(t, resp, http.StatusBadRequest); !strings.Contains(msg, "header Content-Type given 2 times") {
					t.Errorf("error %q, want it to say Content-Type was given twice", msg)
				}
				if n := ts.h.hub.Broker.Stats().Published; n != 0 {
					t.Errorf("a refused body published %d events", n)
				}
			})
		}
	}
}
