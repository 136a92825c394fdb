package handler

import (
	"io"
	"strings"
	"testing"
	"unicode/utf16"
)

// TestJSONBodyMalformedContentTypeParameter checks, on every JSON
// endpoint through the router, that a Content-Type of application/json
// whose parameters do not parse is 400 saying so, not 415 "want
// application/json", which sent the client to the type it already sent;
// and that the answer does not quote Go's own mime error. An unsupported
// type is still 415 whatever its parameters, and a charset other than
// UTF-8 still 415 naming it.
func TestJSONBodyMalformedContentTypeParameter(t *testing.T) {
	for _, e := range jsonEndpoints {
		good := e.body("a b")
		tests := []struct {
			name, contentType string
			status            int
			mentions          string
		}{
			{"a bare name", "application/json; foo", 400, `a parameter is not name=value`},
			{"in upper case, spaced", "APPLICATION/JSON ; foo", 400, `a parameter is not name=value`},
			{"charset with no value", "application/json; charset", 400, `a parameter is not name=value`},
			{"charset=", "application/json; charset=", 400, `a parameter is not name=value`},
			{"an unclosed quote", `application/json; charset="utf-8`, 400, `a parameter is not name=value`},
			{"a space in a value", "application/json; charset=utf 8", 400, `a parameter is not name=value`},
			{"two semicolons", "application/json;;", 400, `a parameter is not name=value`},
			{"a list after a parameter", "application/json; charset=utf-8, text/plain", 400, `a parameter is not name=value`},
			{"a long one, quoted in part", "application/json; " + strings.Repeat("x", 4096), 400, `a parameter is not name=value`},
			{"charset twice, differing", "application/json; charset=utf-8; charset=latin1", 400, `a parameter is given twice`},
			{"a parameter twice, differing", "application/json; a=1; a=2", 400, `a parameter is given twice`},
			// Still accepted: mime takes these.
			{"a trailing semicolon", "application/json;", e.ok, ""},
			{"charset twice, the same", "application/json; charset=utf-8; charset=utf-8", e.ok, ""},
			// The type decides first.
			{"another type, malformed", "text/plain; foo", 415, `want application/json`},
			{"a lookalike, malformed", "application/jsonx; foo", 415, `want application/json`},
			{"a type list", "application/json, text/plain", 415, `want application/json`},
			{"a lookalike folding to json", "application/j\u017fon; foo", 415, `want application/json`},
		}
		for _, tt := range tests {
			t.Run(e.path+"/"+tt.name, func(t *testing.T) {
				ts := newHubServer(t)
				resp := ts.do(t, "POST", e.path, strings.NewReader(good), map[string]string{
					"Authorization": "Bearer " + testToken, "Content-Type": tt.contentType,
				})
				if tt.status == e.ok {
					b, err := io.ReadAll(resp.Body)
					if resp.StatusCode != e.ok || err != nil {
						t.Fatalf("status %d, want %d: %s %v", resp.StatusCode, e.ok, b, err)
					}
					return
				}
				msg := wantJSONError(t, resp, tt.status)
				if !strings.Contains(msg, tt.mentions) {
					t.Errorf("error %q does not mention %q", msg, tt.mentions)
				}
				if len(msg) > 512 {
					t.Errorf("error of %d bytes quotes the whole header", len(msg))
				}
				if strings.Contains(msg, "mime:") {
					t.Errorf("error %q quotes Go's mime error", msg)
				}
				if tt.status == 400 && strings.Contains(msg, "want application/json") {
					t.Errorf("error %q asks for the type that was sent", msg)
				}
				if n := ts.h.hub.Broker.Stats().Published; n != 0 {
					t.Errorf("a refused body published %d events", n)
				}
			})
		}
	}
}

// TestJSONBodyUTF16 checks that a body really sent in UTF-16, as its
// charset says, is 415 naming the charset on every JSON endpoint, not a
// 400 about JSON that does not parse, nor anything stored.
func TestJSONBodyUTF16(t *testing.T) {
	for _, e := range jsonEndpoints {
		for _, charset := range []string{"utf-16", "UTF-16LE", "utf-32"} {
			t.Run(e.path+"/"+charset, func(t *testing.T) {
				var body []byte
				for _, u := range utf16.Encode([]rune(e.body("caf\u00e9"))) {
					body = append(body, byte(u), byte(u>>8))
				}
				ts := newHubServer(t)
				resp := ts.do(t, "POST", e.path, strings.NewReader(string(body)), map[string]string{
					"Authorization": "Bearer " + testToken, "Content-Type": "application/json; charset=" + charset,
				})
				msg := wantJSONError(t, resp, 415)
				if want := `charset "` + charset + `", want utf-8`; !strings.Contains(msg, want) {
					t.Errorf("error %q does not mention %q", msg, want)
				}
				if n := ts.h.hub.Broker.Stats().Published; n != 0 {
					t.Errorf("a refused body published %d events", n)
				}
			})
		}
	}
}
