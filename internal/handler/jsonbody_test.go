package handler

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// jsonEndpoint is a route of newHubServer that reads its body with
// decodeJSONBody.
type jsonEndpoint struct {
	path  string
	field string // a string field of its body
	limit int    // its body cap
	ok    int    // its status for a good body
}

var jsonEndpoints = []jsonEndpoint{
	{"/stream", "text", maxTokenBody, http.StatusOK},
	{"/api/v1/topics/a/events", "data", 1024, http.StatusCreated},
}

// body is a body of e whose one field is the string value.
func (e jsonEndpoint) body(value string) string {
	return `{"` + e.field + `":"` + value + `"}`
}

func TestJSONBodyIsAsStrictOnEveryEndpoint(t *testing.T) {
	const jsonType = "application/json"
	for _, e := range jsonEndpoints {
		good := e.body("a b")
		tests := []struct {
			name, body, contentType string
			status                  int
			mentions                string
		}{
			{"good", good, jsonType, e.ok, ""},
			{"white space after", good + " \r\n\t", "application/json; charset=utf-8", e.ok, ""},
			{"a stray ]", good + " ]", jsonType, 400, "one JSON object"},
			{"a stray }", good + "}", jsonType, 400, "one JSON object"},
			{"a second object", good + "\n" + good, jsonType, 400, "one JSON object"},
			{"a number after", good + " 1", jsonType, 400, "one JSON object"},
			{"a second object cut short", good + " {", jsonType, 400, "one JSON object"},
			{"unknown field", `{"` + e.field + `":"a","nope":1}`, jsonType, 400, `unknown field "nope"`},
			{"a field in another case", `{"` + strings.ToUpper(e.field) + `":"a"}`, jsonType, 400, `unknown field "` + strings.ToUpper(e.field) + `": field names are case-sensitive`},
			{"a field twice", `{"` + e.field + `":"a","` + e.field + `":"b"}`, jsonType, 400, `field "` + e.field + `" is there twice`},
			{"empty body", ``, jsonType, 400, "want a JSON object such as"},
			{"only white space", " \n ", jsonType, 400, "want a JSON object such as"},
			{"an array", `[` + good + `]`, jsonType, 400, "want a JSON object, not array"},
			{"cut short", `{"` + e.field + `":`, jsonType, 400, "ends too early"},
			{"not JSON", e.field + "=a", jsonType, 400, "not valid JSON"},
			// As a file saved by an editor that adds one: it was "not
			// valid JSON (at byte 1)", sending its client to the JSON.
			{"a byte order mark", "\ufeff" + good, jsonType, 400, "starts with a byte order mark"},
			{"no Content-Type", good, "", 415, `Content-Type "", want application/json`},
			{"text/plain", good, "text/plain", 415, "want application/json"},
			{"form", e.field + "=a", "application/x-www-form-urlencoded", 415, "want application/json"},
			{"a lookalike type", good, "application/jsonx", 415, "want application/json"},
			// Read as UTF-8, a Latin-1 é became U+FFFD, and the publish 201.
			{"charset latin-1", e.body("caf\xe9"), "application/json; charset=iso-8859-1", 415, `charset "iso-8859-1", want utf-8`},
			{"charset quoted", good, `application/json; charset="ISO-8859-1"`, 415, `charset "ISO-8859-1", want utf-8`},
			{"charset utf-16", good, "application/json;charset=utf-16", 415, `charset "utf-16", want utf-8`},
			{"charset empty quoted", good, `application/json; charset=""`, 415, `charset "", want utf-8`},
			{"charset UTF-8", good, "application/json; charset=UTF-8", e.ok, ""},
			{"charset utf8, a misspelling", good, "application/json; charset=utf8", e.ok, ""},
			{"charset US-ASCII, which UTF-8 extends", good, "application/json; charset=US-ASCII", e.ok, ""},
			{"charset utf-8 quoted, in any case", good, `application/json; Charset="Utf-8"`, e.ok, ""},
			{"another parameter", good, `application/json; profile="https://example.com/event"`, e.ok, ""},
			{"over the cap", e.body(strings.Repeat("x", e.limit)), jsonType, 413, strconv.Itoa(e.limit)},
			{"white space past the cap", good + strings.Repeat(" ", e.limit), jsonType, 413, strconv.Itoa(e.limit)},
		}
		for _, tt := range tests {
			t.Run(e.path+"/"+tt.name, func(t *testing.T) {
				ts := newHubServer(t)
				header := map[string]string{"Authorization": "Bearer " + testToken}
				if tt.contentType != "" {
					header["Content-Type"] = tt.contentType
				}
				resp := ts.do(t, "POST", e.path, strings.NewReader(tt.body), header)
				if tt.status == e.ok {
					b, err := io.ReadAll(resp.Body)
					if resp.StatusCode != e.ok || err != nil {
						t.Fatalf("status %d, want %d: %s %v", resp.StatusCode, e.ok, b, err)
					}
					return
				}
				if msg := wantJSONError(t, resp, tt.status); !strings.Contains(msg, tt.mentions) {
					t.Errorf("error %q does not mention %q", msg, tt.mentions)
				}
				if n := ts.h.hub.Broker.Stats().Published; n != 0 {
					t.Errorf("a refused body published %d events", n)
				}
			})
		}
	}
}

// TestJSONBodyRefusesAContentEncoding checks that a body declared encoded,
// which the server would read as it came, is refused on every JSON
// endpoint with 415 naming the coding and Accept-Encoding saying what is
// taken. Before, a gzip body was 400 "not valid JSON", and a body declared
// br but sent plain was published.
func TestJSONBodyRefusesAContentEncoding(t *testing.T) {
	for _, e := range jsonEndpoints {
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		if _, err := io.WriteString(zw, e.body("a b")); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name, body string
			encoding   []string
			refused    string // the coding the error names; "" for a good body
		}{
			{"gzip", gz.String(), []string{"gzip"}, "gzip"},
			{"br, sent plain", e.body("a b"), []string{"br"}, "br"},
			{"in a list", e.body("a b"), []string{"identity, deflate"}, "deflate"},
			{"in a second header", e.body("a b"), []string{"identity", "x-gzip"}, "x-gzip"},
			{"zstd", e.body("a b"), []string{"ZSTD"}, "ZSTD"},
			{"identity", e.body("a b"), []string{"identity"}, ""},
			{"IDENTITY, identity", e.body("a b"), []string{"IDENTITY, identity"}, ""},
			{"empty", e.body("a b"), []string{""}, ""},
		}
		for _, tt := range tests {
			t.Run(e.path+"/"+tt.name, func(t *testing.T) {
				ts := newHubServer(t)
				req, err := http.NewRequestWithContext(t.Context(), "POST", ts.URL+e.path, strings.NewReader(tt.body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", "Bearer "+testToken)
				req.Header.Set("Content-Type", "application/json")
				req.Header["Content-Encoding"] = tt.encoding
				resp, err := ts.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if tt.refused == "" {
					b, err := io.ReadAll(resp.Body)
					if resp.StatusCode != e.ok || err != nil {
						t.Fatalf("status %d, want %d: %s %v", resp.StatusCode, e.ok, b, err)
					}
					return
				}
				msg := wantJSONError(t, resp, http.StatusUnsupportedMediaType)
				if want := `Content-Encoding "` + tt.refused + `": not supported`; !strings.Contains(msg, want) {
					t.Errorf("error %q, want it to contain %q", msg, want)
				}
				if got := resp.Header.Get("Accept-Encoding"); got != "identity" {
					t.Errorf("Accept-Encoding %q, want identity", got)
				}
				if n := ts.h.hub.Broker.Stats().Published; n != 0 {
					t.Errorf("a refused body published %d events", n)
				}
			})
		}
	}
}

// TestCheckJSONContentTypeAgreesWithMime checks the fast path against
// mime.ParseMediaType: application/json, with no charset or utf-8. What
// it refuses is errUnsupportedMediaType, but for application/json whose
// parameters mime cannot read, and for a list: errBadRequest. (An encoded
// charset* that mime drops is TestJSONBodyEncodedCharset's.)
func TestCheckJSONContentTypeAgreesWithMime(t *testing.T) {
	for _, ct := range []string{
		"application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8",
		"Application/JSON", "application/json ; charset=utf-8", "application/json; charset=latin1",
		"application/json; charset", "application/json; a=1; a=2", "application/jsonx", "application/j\u017fon",
		"text/json", "application/x-www-form-urlencoded", "", " application/json",
		"application/json; charset=utf8", `application/json; charset="utf-8"`, "application/json; CHARSET=UTF-8",
		"application/json; charset=utf-8; charset=latin1", "application/json; charset*=utf-8''latin1",
		"application/json; q=1", "application/json; charset=us-ascii", "application/json; charset=ascii",
		"application/json; foo", "APPLICATION/JSON ; foo", "application/json;;", "application/json;",
		"application/jsonx; foo", "text/plain; foo", "application/j\u017fon; foo", "application/json, text/plain",
	} {
		mediaType, params, err := mime.ParseMediaType(ct)
		charset, named := params["charset"]
		want := err == nil && mediaType == "application/json" && (!named || slices.ContainsFunc([]string{"utf-8", "utf8", "us-ascii"}, func(s string) bool { return strings.EqualFold(s, charset) }))
		wantKind := errUnsupportedMediaType
		if base, _, _ := strings.Cut(ct, ";"); err != nil && (strings.TrimSpace(strings.ToLower(base)) == "application/json" || strings.Contains(ct, ",")) {
			wantKind = errBadRequest
		}
		err = checkJSONContentType(ct)
		if got := err == nil; got != want || err != nil && !errors.Is(err, wantKind) {
			t.Errorf("checkJSONContentType(%q) = %v, want nil: %v, else %v", ct, err, want, wantKind)
		}
	}
}

// FuzzDecodeJSONBody checks decodeJSONBody against json.Unmarshal. Within
// the limit, it takes a body exactly when json.Unmarshal does and the body
// names each field at most once, spelled as publishRequest does, and no
// other, none of them null; it then decodes the same values; past the limit it takes none. What it refuses is a 400 or a 413.
func FuzzDecodeJSONBody(f *testing.F) {
	for _, seed := range []string{
		`{"data":"hello"}`, ` {"event" : "e" , "data" : {"a": [1, 2, {"b": "}\"]"}]}} `,
		`{"data":"\u0000\u2028 \\ \"x\""}`, "{\"data\":\"\xff\"}", `{"data":[]}`, `{"data":-0.0e+1}`,
		`{"data":null}`, `{}`, `null`, `{"event":null,"data":1}`, `{"event":1}`,
		`{"data":1,"data":2}`, `{"Data":1}`, `{"d\u0061ta":1}`, `{"dat\u0061":1,"x":2}`, `{"d\u0041ta":1}`,
		`{"data":1,"d\u0061ta":2}`, `{"event":"a\"}","data":{"data":1,"Data":2}}`, `{"data":"\\","event":"\\\""}`,
		`{"data":1}]`, `{"data":1}}`, `{"data":1} {}`, `{"data":1} 1`, `{"data":1} "`, `[1]`, ``, " ",
		`{"data":"` + strings.Repeat("x", 600) + `"}`, `{"data":1}` + strings.Repeat(" ", 600),
	} {
		f.Add([]byte(seed))
	}
	const limit = 512
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		var got publishRequest
		err := decodeJSONBody(httptest.NewRecorder(), r, limit, &got, `{}`)

		var want publishRequest
		wantErr := json.Unmarshal(body, &want)
		if wantErr == nil {
			wantErr = unknownField(body, "event", "data")
		}
		switch {
		case len(body) > limit:
			if err == nil {
				t.Fatalf("took %d bytes, limit %d", len(body), limit)
			}
		case (err == nil) != (wantErr == nil):
			t.Fatalf("%q: decodeJSONBody says %v, json.Unmarshal %v", body, err, wantErr)
		case err == nil && (got.Event != want.Event || !bytes.Equal(got.Data, want.Data)):
			t.Fatalf("%q: decodeJSONBody %q %q, json.Unmarshal %q %q", body, got.Event, got.Data, want.Event, want.Data)
		}
		if status := statusOf(err); err != nil && status != http.StatusBadRequest && status != http.StatusRequestEntityTooLarge {
			t.Fatalf("%q: status %d for %v", body, status, err)
		}
	})
}

// unknownField reports the first key of the JSON object body that is none
// of fields, matched exactly (encoding/json would ignore case), that is
// there twice (encoding/json would keep the last), or whose value is null
// (encoding/json would leave the field as it was). It reads the keys with
// encoding/json's own tokenizer, as a reference for decodeJSONBody's scan.
func unknownField(body []byte, fields ...string) error {
	if err := json.Unmarshal(body, new(map[string]json.RawMessage)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil { // the '{'
		return err
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string)
		if !slices.Contains(fields, key) {
			return fmt.Errorf("unknown field %q", key)
		}
		if seen[key] {
			return fmt.Errorf("field %q twice", key)
		}
		seen[key] = true
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return err
		}
		if string(value) == "null" {
			return fmt.Errorf("field %q null", key)
		}
	}
	return nil
}

// A body whose framing is broken, a chunk that is not one or a body that
// ends before its Content-Length or its last chunk (the client
// half-closed), is a 400 that says so, on every JSON endpoint: both were
// "not valid JSON" or "the JSON ends too early", about a body whose JSON
// may be whole. One that ended between two chunks was said to have ended
// "in the middle of a chunk", which sent its client looking at its chunk
// sizes.
func TestJSONBodyWithBrokenFramingSaysSo(t *testing.T) {
	for _, e := range jsonEndpoints {
		good := e.body("a b")
		for _, tt := range []struct {
			name, framing, body string
			mentions            string
		}{
			{"a chunk size that is no number", "Transfer-Encoding: chunked", "zz\r\n" + good + "\r\n0\r\n\r\n", "chunk"},
			{"short of its Content-Length", fmt.Sprintf("Content-Length: %d", len(good)+10), good, fmt.Sprintf("ended after %d of its %d bytes", len(good), len(good)+10)},
			{"in the middle of a chunk", "Transfer-Encoding: chunked", fmt.Sprintf("%x\r\n", len(good)+10) + good, "ended before its last chunk"},
			{"between chunks", "Transfer-Encoding: chunked", fmt.Sprintf("%x\r\n%s\r\n", len(good), good), "ended before its last chunk"},
		} {
			t.Run(e.path+"/"+tt.name, func(t *testing.T) {
				resp := sendHalfClosed(t, "POST "+e.path+" HTTP/1.1\r\nHost: ssehub\r\nAuthorization: Bearer "+testToken+
					"\r\nContent-Type: application/json\r\n"+tt.framing+"\r\n\r\n"+tt.body)
				if msg := wantJSONError(t, resp, http.StatusBadRequest); !strings.Contains(msg, tt.mentions) {
					t.Errorf("error %q, want it to mention %q", msg, tt.mentions)
				}
			})
		}
	}
}

// The body of a GET stream's request, read and dropped, says what is
// wrong with its framing as a JSON body does: a body that ended before its
// Content-Length or before its last chunk was answered with Go's own
// text, "unexpected EOF".
func TestStreamBodyWithBrokenFramingSaysSo(t *testing.T) {
	const body = "ignored"
	for _, path := range []string{"/stream", "/api/v1/events?topic=a"} {
		for _, tt := range []struct {
			name, framing, body string
			mentions            string
		}{
			{"a chunk size that is no number", "Transfer-Encoding: chunked", "zz\r\n" + body + "\r\n0\r\n\r\n", "chunk"},
			{"short of its Content-Length", fmt.Sprintf("Content-Length: %d", len(body)+10), body, fmt.Sprintf("body: it ended after %d of its %d bytes", len(body), len(body)+10)},
			{"in the middle of a chunk", "Transfer-Encoding: chunked", fmt.Sprintf("%x\r\n", len(body)+10) + body, "body: it ended before its last chunk"},
			{"between chunks", "Transfer-Encoding: chunked", fmt.Sprintf("%x\r\n%s\r\n", len(body), body), "body: it ended before its last chunk"},
		} {
			t.Run(path+"/"+tt.name, func(t *testing.T) {
				resp := sendHalfClosed(t, "GET "+path+" HTTP/1.1\r\nHost: ssehub\r\n"+tt.framing+"\r\n\r\n"+tt.body)
				if msg := wantJSONError(t, resp, http.StatusBadRequest); !strings.Contains(msg, tt.mentions) {
					t.Errorf("error %q, want it to mention %q", msg, tt.mentions)
				}
			})
		}
	}
}

// A chunk line (its size and extensions) past net/http's bound of 4096
// bytes is a 400 that says so, on every endpoint that reads a body: it
// was answered with net/http's own text, "header line too long", which
// sent its client looking at its headers.
func TestBodyWithAChunkLinePastItsBoundSaysSo(t *testing.T) {
	paths := []string{"/api/v1/events?topic=a"}
	for _, e := range jsonEndpoints {
		paths = append(paths, e.path)
	}
	for _, path := range paths {
		method := http.MethodGet
		if !strings.Contains(path, "?") {
			method = http.MethodPost
		}
		t.Run(method+" "+path, func(t *testing.T) {
			conn := newHubServer(t).dial(t)
			body := `{"data": 1}`
			if _, err := io.WriteString(conn, method+" "+path+" HTTP/1.1\r\nHost: ssehub\r\nAuthorization: Bearer "+testToken+
				"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"+
				fmt.Sprintf("%x;%s\r\n%s\r\n0\r\n\r\n", len(body), strings.Repeat("x", 5000), body)); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if msg := wantJSONError(t, resp, http.StatusBadRequest); !strings.Contains(msg, "chunk line") {
				t.Errorf("error %q, want it to name the chunk line", msg)
			}
		})
	}
}

// A body whose connection failed while it was read (reset, on any
// transport) is a 400 that says so without the error's text: a
// *net.OpError names the server's own address and its peer's, which no
// answer may carry, even one its client may never read.
func TestBodyErrorOfAConnectionNamesNoAddress(t *testing.T) {
	server := &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 8111}
	peer := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 40000}
	err := bodyError(&net.OpError{Op: "read", Net: "tcp", Source: server, Addr: peer, Err: syscall.ECONNRESET}, 3, 10)
	if statusOf(err) != http.StatusBadRequest {
		t.Errorf("status %d for %v, want 400", statusOf(err), err)
	}
	if msg := err.Error(); strings.Contains(msg, "10.1.2.3") || strings.Contains(msg, "192.0.2.7") || !strings.Contains(msg, "connection") {
		t.Errorf("error %q: want it to say the connection failed, naming no address", msg)
	}
}

// A chunked body past its cap is answered 413 at once, while its client
// still waits to send the rest, and the connection closes: net/http, not
// told of the cap through Gin's writer, read on for up to 256 KiB more of
// the body before it answered, and a client that sent past the cap and
// waited got nothing until server.read_timeout. So on both JSON endpoints
// and for the body of a GET stream.
func TestChunkedBodyPastTheCapIsAnsweredAtOnce(t *testing.T) {
	cases := []struct{ method, path string }{{"GET", "/api/v1/events?topic=a"}, {"GET", "/stream"}}
	limits := []int{maxDiscardedBody, maxDiscardedBody}
	for _, e := range jsonEndpoints {
		cases = append(cases, struct{ method, path string }{"POST", e.path})
		limits = append(limits, e.limit)
	}
	for i, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			ts := newHubServer(t)
			conn := ts.dial(t)
			if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
				t.Fatal(err)
			}
			body := `{"data":"` + strings.Repeat("x", limits[i])
			req := c.method + " " + c.path + " HTTP/1.1\r\nHost: ssehub\r\nAuthorization: Bearer " + testToken +
				"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
				fmt.Sprintf("%x\r\n%s\r\n", len(body), body)
			if _, err := io.WriteString(conn, req); err != nil {
				t.Fatal(err)
			}
			// The rest of the body does not come.
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no answer while the client waits: %v", err)
			}
			defer resp.Body.Close()
			if msg := wantJSONError(t, resp, http.StatusRequestEntityTooLarge); !strings.Contains(msg, strconv.Itoa(limits[i])) {
				t.Errorf("error %q does not name the cap", msg)
			}
			if !resp.Close {
				t.Error("the connection is kept, with the rest of the body to come on it")
			}
		})
	}
}

// sendHalfClosed writes req, a raw HTTP/1.1 request, to a new hub server,
// closes its side of the connection (the client gone before its body's
// end), and returns the answer.
func sendHalfClosed(t *testing.T, req string) *http.Response {
	t.Helper()
	conn := newHubServer(t).dial(t)
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestBodyShortOfItsContentLengthOverHTTP2SaysSo: over HTTP/2 a request
// whose body ends (END_STREAM) before its content-length is a 400 that
// says so as on HTTP/1.1, on every endpoint that reads a body: it was
// answered with Go's own text, quoted, "request declared a Content-Length
// of 42 but only wrote 32 bytes".
func TestBodyShortOfItsContentLengthOverHTTP2SaysSo(t *testing.T) {
	opts, _ := hubOptions(t, stream.MemoryOptions{FirstID: 1})
	h := New(opts)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(func() { h.Close(); srv.Close(); waitDrained(t, h) })
	type request struct{ method, path, body string }
	var requests []request
	for _, e := range jsonEndpoints {
		requests = append(requests, request{"POST", e.path, e.body("a b")})
	}
	for _, path := range []string{"/stream", "/api/v1/events?topic=a"} {
		requests = append(requests, request{"GET", path, "ignored"})
	}
	for _, r := range requests {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			resp := sendHTTP2(t, srv.Listener.Addr().String(), r.method, r.path, r.body, len(r.body)+10)
			want := fmt.Sprintf("body: it ended after %d of its %d bytes", len(r.body), len(r.body)+10)
			if msg := wantJSONError(t, resp, http.StatusBadRequest); !strings.Contains(msg, want) {
				t.Errorf("error %q, want it to mention %q", msg, want)
			}
		})
	}
}

// sendHTTP2 sends one request over a new cleartext HTTP/2 connection to
// addr, its body in one DATA frame that ends the stream, declaring
// contentLength whatever the body's length, which Go's client does not
// let through. It returns the answer, its body read whole.
func sendHTTP2(t *testing.T, addr, method, path, body string, contentLength int) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{
		{":method", method},
		{":scheme", "http"},
		{":authority", addr},
		{":path", path},
		{"authorization", "Bearer " + testToken},
		{"content-type", "application/json"},
		{"content-length", strconv.Itoa(contentLength)},
	} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(fr.WriteSettings(),
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndHeaders: true}),
		fr.WriteData(1, true, []byte(body))); err != nil {
		t.Fatal(err)
	}
	resp := &http.Response{Header: http.Header{}, ProtoMajor: 2}
	var answer bytes.Buffer
	dec := hpack.NewDecoder(4096, nil)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := fr.WriteSettingsAck(); err != nil {
					t.Fatal(err)
				}
			}
		case *http2.HeadersFrame:
			fields, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				t.Fatal(err)
			}
			for _, hf := range fields {
				if hf.Name == ":status" {
					resp.StatusCode, _ = strconv.Atoi(hf.Value)
				} else {
					resp.Header.Add(hf.Name, hf.Value)
				}
			}
		case *http2.DataFrame:
			answer.Write(f.Data())
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			if resp.StatusCode == 0 {
				t.Fatalf("no answer: %v", f)
			}
		}
		if f.Header().StreamID == 1 && f.Header().Flags.Has(http2.FlagDataEndStream) {
			resp.Body = io.NopCloser(&answer)
			return resp
		}
	}
}
