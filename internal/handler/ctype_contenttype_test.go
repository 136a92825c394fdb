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
			{"a list after a parameter", "application/json; charset=utf-8, text/plain", 400, `a single media type is expected`},
			{"a long one, quoted in part", "application/json; " + strings.Repeat("x", 4096), 400, `a parameter is not name=value`},
			{"charset twice, differing", "application/json; charset=utf-8; charset=latin1", 400, `a parameter is given twice`},
			{"a parameter twice, differing", "application/json; a=1; a=2", 400, `a parameter is given twice`},
			// Still accepted: mime takes these.
			{"a trailing semicolon", "application/json;", e.ok, ""},
			{"charset twice, the same", "application/json; charset=utf-8; charset=utf-8", e.ok, ""},
			// The type decides first.
			{"another type, malformed", "text/plain; foo", 415, `want application/json`},
			{"a lookalike, malformed", "application/jsonx; foo", 415, `want application/json`},
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

// TestJSONBodyContentTypeList checks, on every JSON endpoint, that a
// Content-Type holding a list of media types is 400 saying that one is
// expected, not 415 "want application/json", which did not say what was
// wrong with "application/json, text/plain"; a comma within a quoted
// parameter value is no list.
func TestJSONBodyContentTypeList(t *testing.T) {
	for _, e := range jsonEndpoints {
		for _, tt := range []struct{ name, contentType string }{
			{"json first", "application/json, text/plain"},
			{"json second", "text/plain, application/json"},
			{"json twice", "application/json,application/json"},
			{"a trailing comma", "application/json,"},
			{"after a parameter", "application/json; charset=utf-8, text/plain"},
			{"after a quoted parameter", `application/json; a="x;y", text/plain`},
		} {
			t.Run(e.path+"/"+tt.name, func(t *testing.T) {
				ts := newHubServer(t)
				resp := ts.do(t, "POST", e.path, strings.NewReader(e.body("a b")), map[string]string{
					"Authorization": "Bearer " + testToken, "Content-Type": tt.contentType,
				})
				msg := wantJSONError(t, resp, 400)
				if want := `a single media type is expected`; !strings.Contains(msg, want) {
					t.Errorf("error %q does not mention %q", msg, want)
				}
				if n := ts.h.hub.Broker.Stats().Published; n != 0 {
					t.Errorf("a refused body published %d events", n)
				}
			})
		}
		t.Run(e.path+"/a comma in a quoted value", func(t *testing.T) {
			ts := newHubServer(t)
			resp := ts.do(t, "POST", e.path, strings.NewReader(e.body("a b")), map[string]string{
				"Authorization": "Bearer " + testToken, "Content-Type": `application/json; a="x, text/plain"`,
			})
			b, err := io.ReadAll(resp.Body)
			if resp.StatusCode != e.ok || err != nil {
				t.Fatalf("status %d, want %d: %s %v", resp.StatusCode, e.ok, b, err)
			}
		})
	}
}

// TestJSONBodyEncodedCharset checks, on every JSON endpoint, a charset
// given in RFC 2231's encoded form, charset*, which mime.ParseMediaType
// drops when it does not decode: such a body was read as UTF-8 whatever
// the client meant. One that does not decode is 400 saying the charset
// cannot be read, a plain charset=utf-8 beside it included; one that
// decodes to utf-8 is accepted, and one that decodes to another charset
// is 415 naming it.
func TestJSONBodyEncodedCharset(t *testing.T) {
	const unread = `the charset parameter cannot be read`
	for _, e := range jsonEndpoints {
		tests := []struct {
			name, contentType string
			status            int
			mentions          string
		}{
			{"not encoded", "application/json; charset*=x", 400, unread},
			{"in upper case", "application/json; CHARSET*=x", 400, unread},
			{"an empty encoding", "application/json; charset*=''utf-8", 400, unread},
			{"an encoding mime cannot read", "application/json; charset*=iso-8859-1''utf-8", 400, unread},
			{"a bad escape", "application/json; charset*=utf-8''utf%ZZ8", 400, unread},
			{"beside a plain utf-8", "application/json; charset=utf-8; charset*=x", 400, unread},
			{"a piece with no first", "application/json; charset*1=utf-8", 400, unread},
			{"to latin1", "application/json; charset*=utf-8''latin1", 415, `charset "latin1", want utf-8`},
			{"to latin1, beside a plain utf-8", "application/json; charset=utf-8; charset*=utf-8''latin1", 415, `charset "latin1", want utf-8`},
			{"to utf-8", "application/json; charset*=utf-8''utf-8", e.ok, ""},
			{"to utf-8, escaped, with a language", "application/json; charset*=UTF-8'en'%75tf-8", e.ok, ""},
			{"to utf-8 in pieces", "application/json; charset*0*=us-ascii''utf; charset*1=-8", e.ok, ""},
			{"to utf-8, beside a plain latin1", "application/json; charset=latin1; charset*=utf-8''utf-8", e.ok, ""},
			{"another parameter encoded", "application/json; foo*=x", e.ok, ""},
		}
		for _, tt := range tests {
			t.Run(e.path+"/"+tt.name, func(t *testing.T) {
				ts := newHubServer(t)
				resp := ts.do(t, "POST", e.path, strings.NewReader(e.body("a b")), map[string]string{
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
				if n := ts.h.hub.Broker.Stats().Published; n != 0 {
					t.Errorf("a refused body published %d events", n)
				}
			})
		}
	}
}
