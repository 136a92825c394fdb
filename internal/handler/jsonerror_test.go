package handler

import (
	"strings"
	"testing"

	"github.com/ssehub/ssehub/internal/stream"
)

func TestJSONErrorsNameNoGoInternals(t *testing.T) {
	opts, _ := hubOptions(t, stream.MemoryOptions{})
	ts := newTestServer(t, opts)
	tests := []struct {
		path, body, want string
	}{
		{"/stream", `{"text": 42}`, `"text" must be a string, not number`},
		{"/stream", `{"text": "a", "interval": [1]}`, `"interval" must be a string, not array`},
		{"/stream", `[1, 2]`, `want a JSON object, not array`},
		{"/stream", `{"text": "a",}`, `not valid JSON (at byte 14)`},
		{"/stream", `{"text": "a", "x": 1}`, `unknown field "x"`},
		{"/api/v1/topics/a/events", `{"event": 7, "data": 1}`, `"event" must be a string, not number`},
		{"/api/v1/topics/a/events", `{"data": 1, "more": 2}`, `unknown field "more"`},
		// Valid JSON, too deep for encoding/json: it was "not valid JSON".
		{"/stream", `{"text": ` + strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth) + `}`, `JSON nested too deeply (at byte 10009)`},
	}
	for _, tt := range tests {
		resp := ts.do(t, "POST", tt.path, strings.NewReader(tt.body), map[string]string{
			"Content-Type": "application/json", "Authorization": "Bearer " + testToken,
		})
		msg := wantJSONError(t, resp, 400)
		if !strings.Contains(msg, tt.want) {
			t.Errorf("%s %.60s: %q, want it to say %q", tt.path, tt.body, msg, tt.want)
		}
		for _, internal := range []string{"Go ", "struct", "tokenRequest", "publishRequest", "json:"} {
			if strings.Contains(msg, internal) {
				t.Errorf("%s %.60s: %q names %q", tt.path, tt.body, msg, internal)
			}
		}
	}
}
