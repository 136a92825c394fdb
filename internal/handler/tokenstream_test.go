package handler

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestTokenStreamSendsOneEventPerWordThenDone(t *testing.T) {
	ts := newTestServer(t, testOptions())
	body := `{"text": "  hello\tbig \n world ", "interval": "0s"}`
	resp := ts.do(t, "POST", "/stream", strings.NewReader(body), map[string]string{"Content-Type": "application/json"})
	wantStreamHeaders(t, resp)
	_, events := readAll(t, resp.Body)
	if len(events) != 4 {
		t.Fatalf("%d events, want 3 tokens and [DONE]: %+v", len(events), events)
	}
	for i, want := range []string{"hello", "big", "world"} {
		var tok struct {
			Index *int    `json:"index"`
			Token *string `json:"token"`
		}
		if err := json.Unmarshal([]byte(events[i].Data), &tok); err != nil {
			t.Fatalf("event %d data %q: %v", i, events[i].Data, err)
		}
		if tok.Index == nil || *tok.Index != i || tok.Token == nil || *tok.Token != want {
			t.Errorf("event %d data %q, want index %d token %q", i, events[i].Data, i, want)
		}
	}
	if events[3].Data != "[DONE]" {
		t.Errorf("last event %+v, want [DONE]", events[3])
	}
}

func TestTokenStreamEscapesTokens(t *testing.T) {
	ts := newTestServer(t, testOptions())
	resp := ts.do(t, "POST", "/stream", strings.NewReader(`{"text": "say \"hi\"\u2028 <b>", "interval": "0s"}`),
		map[string]string{"Content-Type": "application/json"})
	_, events := readAll(t, resp.Body)
	var got []string
	for _, ev := range events[:len(events)-1] {
		var tok struct{ Token string }
		if err := json.Unmarshal([]byte(ev.Data), &tok); err != nil {
			t.Fatalf("data %q: %v", ev.Data, err)
		}
		got = append(got, tok.Token)
	}
	if strings.Join(got, "|") != `say|"hi"|<b>` {
		t.Errorf("tokens %q", got)
	}
}

func TestTokenStreamRejectsBadBodies(t *testing.T) {
	tests := []struct {
		name, body string
		status     int
		mentions   string
	}{
		{"empty body", ``, 400, "JSON object"},
		{"not JSON", `text=hello`, 400, "body"},
		{"truncated", `{"text": "hi"`, 400, "body"},
		{"wrong type", `{"text": 42}`, 400, "text"},
		{"unknown field", `{"text": "hi", "speed": 1}`, 400, "speed"},
		{"two objects", `{"text": "a"} {"text": "b"}`, 400, "one JSON object"},
		{"no text", `{"interval": "10ms"}`, 400, "text"},
		{"blank text", `{"text": " \n\t "}`, 400, "text"},
		{"null text", `{"text": null}`, 400, `"text"`},
		{"null interval", `{"text": "hi", "interval": null}`, 400, `"interval" must not be null`},
		{"bad interval", `{"text": "hi", "interval": "soon"}`, 400, "interval"},
		{"empty interval", `{"text": "hi", "interval": ""}`, 400, `interval ""`},
		{"negative interval", `{"text": "hi", "interval": "-1ms"}`, 400, "interval"},
		{"long interval", `{"text": "hi", "interval": "6s"}`, 400, "interval"},
		{"too large", `{"text": "` + strings.Repeat("a ", 33<<10) + `"}`, 413, "65536"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, testOptions())
			resp := ts.do(t, "POST", "/stream", strings.NewReader(tt.body), map[string]string{"Content-Type": "application/json"})
			msg := wantJSONError(t, resp, tt.status)
			if !strings.Contains(msg, tt.mentions) {
				t.Errorf("error %q does not mention %q", msg, tt.mentions)
			}
		})
	}
}

func TestUnknownRoutesAndMethodsAnswerJSON(t *testing.T) {
	ts := newTestServer(t, testOptions())
	wantJSONError(t, ts.do(t, "GET", "/nope", nil, nil), http.StatusNotFound)
	wantJSONError(t, ts.do(t, "PUT", "/stream", nil, nil), http.StatusMethodNotAllowed)
	wantJSONError(t, ts.do(t, "DELETE", "/healthz", nil, nil), http.StatusMethodNotAllowed)
	// A trailing slash names no route: a JSON 404, not Gin's redirect
	// (which the test client would follow to a 200).
	wantJSONError(t, ts.do(t, "GET", "/healthz/", nil, nil), http.StatusNotFound)
	wantJSONError(t, ts.do(t, "GET", "/stream/", nil, nil), http.StatusNotFound)
}
