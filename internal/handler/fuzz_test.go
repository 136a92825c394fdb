package handler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/ssehub/ssehub/internal/jwtauth"
	"github.com/ssehub/ssehub/internal/stream"
)

// The fuzz targets of this file send what a client may send (a query, a
// header, a body) to the real router on a real socket, one server for
// all of a target's inputs, and hold the answer to the contract: a 2xx
// (a stream that starts as it must), or a 4xx with a JSON
// {"error": ...}; never a 5xx, a panic or a hang.

// fuzzWait bounds the wait for an answer, and for a stream's first
// event: an input that is answered later than this hangs.
const fuzzWait = 10 * time.Second

// fuzzSubscribeToken is the subscribe token of the fuzz servers.
const fuzzSubscribeToken = "fuzz-subscribe-token"

// newFuzzServer is a hub server with the demo on, publish and subscribe
// tokens and HS256 JWTs, and a few events in its history, on a broker of
// this pass.
func newFuzzServer(f *testing.F) (*testServer, []string) {
	opts, _ := hubOptions(f, stream.MemoryOptions{FirstID: 1, HistorySize: 4})
	opts.Hub.SubscribeTokens = []string{fuzzSubscribeToken}
	v, err := jwtauth.New(jwtauth.Options{HMACSecret: []byte(jwtTestSecret)})
	if err != nil {
		f.Fatal(err)
	}
	opts.Hub.JWT = v
	ts := newTestServer(f, opts)
	var ids []string
	for i := range 6 {
		ids = append(ids, fuzzPublish(f, ts, "fuzz.t"+strconv.Itoa(i%2), `{"data": `+strconv.Itoa(i)+`}`))
	}
	return ts, ids
}

// fuzzPublish publishes an event and returns its id.
func fuzzPublish(f *testing.F, ts *testServer, topic, body string) string {
	req, err := http.NewRequest("POST", ts.URL+"/api/v1/topics/"+topic+"/events", strings.NewReader(body))
	if err != nil {
		f.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := ts.Client().Do(req)
	if err != nil {
		f.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
		f.Fatalf("publish: %d, %v", resp.StatusCode, err)
	}
	return out.ID
}

// fuzzJWT is a JWT the fuzz servers accept, granting sub and pub.
func fuzzJWT(f *testing.F, sub, pub []string) string {
	c := jwtauth.Claims{SSEHub: jwtauth.Grants{Subscribe: sub, Publish: pub}}
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(24 * time.Hour))
	return mint(f, c)
}

// fuzzRequest sends method path?rawQuery with header and body, or skips
// the input when net/http's client refuses to send it (a header value
// with a line break): the router never sees such a request.
func fuzzRequest(t *testing.T, ts *testServer, method, path, rawQuery string, header http.Header, body io.Reader) (*http.Response, context.CancelFunc) {
	t.Helper()
	if !validRequestTarget(rawQuery) {
		t.Skip("not a query a request line can carry")
	}
	for _, vs := range header {
		for _, v := range vs {
			if !validHeaderValue(v) {
				t.Skip("not a header value net/http sends")
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), fuzzWait)
	req, err := http.NewRequestWithContext(ctx, method, ts.URL+path, body)
	if err != nil {
		cancel()
		t.Skip(err)
	}
	req.URL.RawQuery = rawQuery
	req.Header = header
	resp, err := ts.Client().Do(req)
	if err != nil {
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s %s?%q: no answer in %v", method, path, rawQuery, fuzzWait)
		}
		t.Fatalf("%s %s?%q: %v", method, path, rawQuery, err)
	}
	return resp, func() {
		resp.Body.Close()
		cancel()
	}
}

// validRequestTarget reports whether a query can go into a request line
// as it is: visible ASCII but '#' (which would end it), or any byte past
// ASCII, which net/http's server takes as it is.
func validRequestTarget(q string) bool {
	for i := 0; i < len(q); i++ {
		if c := q[i]; c <= ' ' || c == 0x7f || c == '#' {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether net/http's client sends v as a header
// value unchanged: no control byte but a tab, and no white space around
// it, which the server would trim.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return strings.TrimSpace(v) == v
}

// wantRefusal checks that resp, not a 2xx, is a 4xx with a JSON error.
func wantRefusal(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 400 || resp.StatusCode > 499 {
		t.Fatalf("status %d, want 2xx or 4xx: %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Fatalf("%d with Content-Type %q: %s", resp.StatusCode, ct, b)
	}
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
		t.Fatalf("%d without a JSON error: %q", resp.StatusCode, b)
	}
	if !utf8.ValidString(e.Error) {
		t.Fatalf("%d with an error that is not UTF-8: %q", resp.StatusCode, e.Error)
	}
	return e.Error
}

// fuzzFirstEvent reads the first event of a stream, failing on a stream
// that ends or sends nothing in fuzzWait (the request's context).
func fuzzFirstEvent(t *testing.T, body io.Reader) stream.Event {
	t.Helper()
	return fuzzNext(t, stream.NewParser(body))
}

// fuzzNext reads the next event of a stream, as fuzzFirstEvent.
func fuzzNext(t *testing.T, p *stream.Parser) stream.Event {
	t.Helper()
	ev, err := p.Next()
	if err != nil {
		t.Fatalf("next event: %v", err)
	}
	return ev
}

// header builds a request header of the pairs kv, leaving out those whose
// value is empty.
func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] != "" {
			h[kv[i]] = []string{kv[i+1]}
		}
	}
	return h
}

// FuzzSubscribe sends GET /api/v1/events with a fuzzed query (topics,
// last_event_id, access_token), Last-Event-ID, Authorization and Cookie.
// An accepted subscription is a stream that starts with its position
// (no last event id) or a reset (a last event id that is no id); a
// refused one a 4xx JSON error.
func FuzzSubscribe(f *testing.F) {
	ts, ids := newFuzzServer(f)
	jwtGood := fuzzJWT(f, []string{"fuzz.>"}, nil)
	for _, s := range []struct{ query, lastID, auth, cookie string }{
		{"topic=fuzz.t0", "", "Bearer " + fuzzSubscribeToken, ""},
		{"topic=fuzz.*&topic=demo.x", ids[2], "Bearer " + fuzzSubscribeToken, ""},
		{"topic=fuzz.>&last_event_id=" + ids[4], "", "Bearer " + jwtGood, ""},
		{"topic=demo.a&last_event_id=007", "", "", ""},
		{"topic=demo.>", "18446744073709551615", "", ""},
		{"topic=demo.>", "-1", "", ""},
		{"topic=fuzz.t1&access_token=" + fuzzSubscribeToken, "0", "", ""},
		{"topic=fuzz.t1", "1", "", "ssehub_token=" + jwtGood},
		{"topic=fuzz.t1", "", "Bearer", ""},
		{"topic=fuzz.t1", "", "bearer  x y", ""},
		{"topic=fuzz.t1&topic=fuzz.t1&topic=a&topic=b", "", "Basic Zm9vOmJhcg==", ""},
		{"topic=a..b", "", "", ""},
		{"topic=%ZZ", "", "", ""},
		{"topic=demo.a;x=1", "", "", ""},
		{"topic=demo.a&last_event_id=1&last_event_id=2", "", "", ""},
		{"", "", "", ""},
		{"topic=fuzz.t0&access_token=a+b", "", "", ""},
		{"topic=fuzz.t0", "", "Bearer " + jwtGood[:len(jwtGood)-2], "ssehub_token=a; ssehub_token=b"},
	} {
		f.Add(s.query, s.lastID, s.auth, s.cookie)
	}
	f.Fuzz(func(t *testing.T, query, lastID, auth, cookie string) {
		resp, done := fuzzRequest(t, ts, "GET", "/api/v1/events", query, header("Last-Event-ID", lastID, "Authorization", auth, "Cookie", cookie), nil)
		defer done()
		if resp.StatusCode != http.StatusOK {
			wantRefusal(t, resp)
			return
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream; charset=utf-8" {
			t.Fatalf("200 with Content-Type %q", ct)
		}
		q, err := url.ParseQuery(query)
		if err != nil {
			t.Fatalf("200 for a query that does not parse: %v", err)
		}
		if lastID == "" {
			lastID = q.Get("last_event_id")
		}
		_, isID := stream.ParseID(lastID)
		switch {
		case lastID == "":
			if ev := fuzzFirstEvent(t, resp.Body); ev.Type != "position" || !parsesAsID(ev.ID) {
				t.Fatalf("a live-only stream starts with %+v, want its position", ev)
			}
		case !isID:
			if ev := fuzzFirstEvent(t, resp.Body); ev.Type != "reset" || !parsesAsID(ev.ID) {
				t.Fatalf("a resume from %q starts with %+v, want a reset", lastID, ev)
			}
		}
	})
}

// parsesAsID reports whether id is an event id, as a client sends it back.
func parsesAsID(id string) bool {
	_, ok := stream.ParseID(id)
	return ok
}

// FuzzTopics sends GET /api/v1/topics with a fuzzed query (after, limit,
// access_token) and Authorization: 200 with a JSON list of at most limit
// topics, or a 4xx JSON error.
func FuzzTopics(f *testing.F) {
	ts, _ := newFuzzServer(f)
	jwtAll := fuzzJWT(f, []string{">"}, nil)
	for _, s := range []struct{ query, auth string }{
		{"", "Bearer " + fuzzSubscribeToken},
		{"limit=1", "Bearer " + jwtAll},
		{"limit=1&after=fuzz.t0", "Bearer " + fuzzSubscribeToken},
		{"limit=01", "Bearer " + fuzzSubscribeToken},
		{"limit=1001", "Bearer " + fuzzSubscribeToken},
		{"limit=-1&limit=2", "Bearer " + fuzzSubscribeToken},
		{"after=%00", "Bearer " + fuzzSubscribeToken},
		{"after=a.*", "Bearer " + fuzzSubscribeToken},
		{"access_token=" + fuzzSubscribeToken + "&limit=+1", ""},
		{"access_token=", ""},
		{"x=%", "Bearer " + fuzzSubscribeToken},
	} {
		f.Add(s.query, s.auth)
	}
	f.Fuzz(func(t *testing.T, query, auth string) {
		resp, done := fuzzRequest(t, ts, "GET", "/api/v1/topics", query, header("Authorization", auth), nil)
		defer done()
		if resp.StatusCode != http.StatusOK {
			wantRefusal(t, resp)
			return
		}
		var answer struct {
			Topics []struct{ Topic string }
			Next   string
		}
		if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
			t.Fatalf("200 whose body is not the list: %v", err)
		}
		q, _ := url.ParseQuery(query)
		if limit, err := strconv.Atoi(q.Get("limit")); err == nil && len(answer.Topics) > limit {
			t.Fatalf("limit %d, yet %d topics", limit, len(answer.Topics))
		}
		for _, topic := range answer.Topics {
			if topic.Topic <= q.Get("after") {
				t.Fatalf("after %q, yet topic %q", q.Get("after"), topic.Topic)
			}
		}
	})
}

// FuzzPublishRequest sends POST /api/v1/topics/{topic}/events with a
// fuzzed topic segment, Content-Type, Content-Encoding, Idempotency-Key,
// Authorization and body (FuzzPublish fuzzes the body alone): 201 with
// the event's id and topic, or a 4xx JSON error.
func FuzzPublishRequest(f *testing.F) {
	ts, _ := newFuzzServer(f)
	jwtPub := fuzzJWT(f, nil, []string{"fuzz.*"})
	for _, s := range []struct{ topic, ctype, encoding, key, auth, body string }{
		{"fuzz.a", "application/json", "", "", "Bearer " + testToken, `{"data": 1}`},
		{"demo.x", "application/json; charset=UTF-8", "identity", "k-1", "", `{"event": "e", "data": "x"}`},
		{"fuzz.b", "Application/JSON; charset=\"utf8\"", "", "k-1", "Bearer " + jwtPub, `{"data": [1]}`},
		{"fuzz.c", "application/json; charset*=utf-8''utf-8", "gzip", "", "Bearer " + testToken, `{"data": 1}`},
		{"fuzz.c", "application/json; charset*=utf-8''%ZZ", "", "", "Bearer " + testToken, `{"data": 1}`},
		{"fuzz.c", "application/json; charset*0=utf; charset*1=-8", "", "", "Bearer " + testToken, `{"data": 1}`},
		{"fuzz.c", "application/json, text/plain", "", "", "Bearer " + testToken, `{"data": 1}`},
		{"fuzz.c", "application/json; a=\"x,y\"; a=z", "", "", "Bearer " + testToken, `{"data": 1}`},
		{"fuzz.c", "text/plain", "", "", "Bearer " + testToken, `{"data": 1}`},
		{"fuzz%2Ec", "application/json", "", "\x7f", "Bearer " + testToken, `{"data": 1}`},
		{"a%2Fb", "application/json", "", "", "Bearer " + testToken, `{"data": 1}`},
		{"fuzz.d", "application/json", "", "", "Bearer " + fuzzSubscribeToken, `{"data": 1}`},
		{"fuzz.d", "application/json", "", "", "Bearer " + jwtPub + "x", `{"data": 1}`},
		{"fuzz.d", "", "", "", "Bearer " + testToken, `{"data": 1}`},
	} {
		f.Add(s.topic, s.ctype, s.encoding, s.key, s.auth, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, topic, ctype, encoding, key, auth string, body []byte) {
		if topic == "" || strings.ContainsAny(topic, "/?") || !validRequestTarget(topic) {
			t.Skip("not one path segment")
		}
		h := header("Content-Type", ctype, "Content-Encoding", encoding, "Idempotency-Key", key, "Authorization", auth)
		resp, done := fuzzRequest(t, ts, "POST", "/api/v1/topics/"+topic+"/events", "", h, strings.NewReader(string(body)))
		defer done()
		if resp.StatusCode != http.StatusCreated {
			wantRefusal(t, resp)
			return
		}
		var out struct{ ID, Topic string }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("201 without its JSON answer: %v", err)
		}
		want, err := url.PathUnescape(topic)
		if err != nil || out.Topic != want || !parsesAsID(out.ID) {
			t.Fatalf("201 %+v for topic segment %q", out, topic)
		}
		if err := checkJSONContentType(ctype); err != nil {
			t.Fatalf("201 for Content-Type %q, which checkJSONContentType refuses: %v", ctype, err)
		}
	})
}

// FuzzCheckJSONContentType checks checkJSONContentType alone, faster
// than through the router: a Content-Type it accepts is application/json
// with no charset or one that reads as UTF-8, as mime reads it; one it
// refuses is a 400 or a 415.
func FuzzCheckJSONContentType(f *testing.F) {
	for _, s := range []string{
		"application/json", "application/json; charset=utf-8", "APPLICATION/JSON ; Charset=\"UTF-8\"",
		"application/json; charset=iso-8859-1", "application/json; charset*=utf-8''us-ascii",
		"application/json; charset*=iso-8859-1''utf-8", "application/json; charset*0*=utf-8''ut; charset*1*=f-8",
		"application/json; charset*=''", "application/json; charset*=utf-8''%", "application/json;;",
		"application/json; charset=utf-8; charset=latin1", "application/json, text/plain",
		"application/json; x=\"a,b\"", "application/json; x=\"a\\\"b;c\"", "text/json", "", ";", "application/json; charset=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		err := checkJSONContentType(ct)
		if err != nil {
			if s := statusOf(err); s != http.StatusBadRequest && s != http.StatusUnsupportedMediaType {
				t.Fatalf("%q: status %d: %v", ct, s, err)
			}
			if !utf8.ValidString(err.Error()) {
				t.Fatalf("%q: error text not UTF-8: %q", ct, err)
			}
			return
		}
		media, params, perr := mime.ParseMediaType(ct)
		if perr != nil || media != "application/json" {
			t.Fatalf("%q accepted, but mime reads %q, %v", ct, media, perr)
		}
		if cs, ok := params["charset"]; ok && !utf8Charset(cs) {
			t.Fatalf("%q accepted with charset %q", ct, cs)
		}
	})
}

// FuzzTicker sends GET /stream with a fuzzed query (count, interval) and
// Last-Event-ID: a stream that starts at the line after the last event
// id, or with a reset; a 204 after the last line; or a 4xx JSON error.
func FuzzTicker(f *testing.F) {
	ts, _ := newFuzzServer(f)
	for _, s := range []struct{ query, lastID string }{
		{"", ""},
		{"count=5&interval=1ms", "2"},
		{"count=5", "4"},
		{"count=5", "04"},
		{"count=5", "+1"},
		{"count=10000&interval=60s", ""},
		{"count=1&interval=-1s", ""},
		{"interval=1h", ""},
		{"count=0x10", ""},
		{"count=2&count=3", ""},
		{"interval=", ""},
		{"count=3", "9223372036854775808"},
		{"interval=1.5e3ms", "-0"},
	} {
		f.Add(s.query, s.lastID)
	}
	f.Fuzz(func(t *testing.T, query, lastID string) {
		resp, done := fuzzRequest(t, ts, "GET", "/stream", query, header("Last-Event-ID", lastID), nil)
		defer done()
		switch resp.StatusCode {
		case http.StatusNoContent:
			return
		case http.StatusOK:
		default:
			wantRefusal(t, resp)
			return
		}
		q, _ := url.ParseQuery(query)
		count := 3 // testOptions' TickerCount
		if v := q.Get("count"); v != "" {
			count, _ = strconv.Atoi(v)
		}
		from, reset := tickerResume(lastID, count)
		p := stream.NewParser(resp.Body)
		ev := fuzzNext(t, p)
		if reset != "" {
			if ev.Type != "reset" {
				t.Fatalf("Last-Event-ID %q: first event %+v, want a reset", lastID, ev)
			}
			ev = fuzzNext(t, p)
		}
		if ev.ID != strconv.Itoa(from) {
			t.Fatalf("Last-Event-ID %q: first event %+v, want id %d", lastID, ev, from)
		}
	})
}

// FuzzTokenStream sends POST /stream with a fuzzed Content-Type and
// body: a stream whose first event is the first word, or a 4xx JSON
// error.
func FuzzTokenStream(f *testing.F) {
	ts, _ := newFuzzServer(f)
	for _, s := range []struct{ ctype, body string }{
		{"application/json", `{"text": "hello world"}`},
		{"application/json", `{"text": "a b", "interval": "0s"}`},
		{"application/json", `{"text": "a", "interval": "5s"}`},
		{"application/json", `{"text": "a", "interval": "-1ms"}`},
		{"application/json", `{"text": "a", "interval": ""}`},
		{"application/json", `{"text": "a", "interval": null}`},
		{"application/json", `{"text": "\u2028 \u00a0x"}`},
		{"application/json", `{"text": " "}`},
		{"application/json", `{"Text": "a"}`},
		{"application/json", `{"text": "a", "text": "b"}`},
		{"application/json", "\xef\xbb\xbf{\"text\": \"a\"}"},
		{"text/plain", `{"text": "a"}`},
	} {
		f.Add(s.ctype, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		resp, done := fuzzRequest(t, ts, "POST", "/stream", "", header("Content-Type", ctype), strings.NewReader(string(body)))
		defer done()
		if resp.StatusCode != http.StatusOK {
			wantRefusal(t, resp)
			return
		}
		var req struct{ Text string }
		if err := json.Unmarshal(body, &req); err != nil {
			t.Fatalf("200 for a body that does not decode: %v", err)
		}
		ev := fuzzFirstEvent(t, resp.Body)
		var tok token
		if err := json.Unmarshal([]byte(ev.Data), &tok); err != nil || tok.Index != 0 || tok.Token != strings.Fields(req.Text)[0] {
			t.Fatalf("first event %+v (%v), want the first word of %q", ev, err, req.Text)
		}
	})
}

// FuzzRoute sends a fuzzed method and path, with Origin, Range and
// If-None-Match, to the router: the demo files, the API's routes, a 404
// or 405 for the rest. Never a 5xx; a 4xx to any method but HEAD is a
// JSON error.
func FuzzRoute(f *testing.F) {
	ts, _ := newFuzzServer(f)
	for _, s := range []struct{ method, path, origin, rng, inm string }{
		{"GET", "/", "", "", ""},
		{"GET", "/app.js", "http://elsewhere.test", "bytes=0-3", ""},
		{"GET", "/app.js", "", "bytes=0-1,2-3,-5", "*"},
		{"GET", "/app.js", "", "bytes=-0", ""},
		{"GET", "/app.js", "", "bytes=100-", ""},
		{"GET", "/app.js", "", "bytes=- 0", ""},
		{"GET", "/app.js", "", "bytes=-+0", ""},
		{"GET", "/app.js", "", "bytes=0-1,-\t0", ""},
		{"HEAD", "/vendor/vue.js", "", "bytes=0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0,0-0", `W/"x"`},
		{"GET", "/index.html", "", "", ""},
		{"GET", "/vendor/", "", "", ""},
		{"GET", "/%2e%2e/etc/passwd", "", "", ""},
		{"GET", "/a%2Fb", "", "", ""},
		{"GET", "/%68ealthz", "", "", ""},
		{"POST", "/healthz", "", "", ""},
		{"OPTIONS", "/api/v1/topics/x/events", "http://elsewhere.test", "", ""},
		{"DELETE", "/api/v1/topics/a%2Fb/events", "", "", ""},
		{"GET", "/api/v1/topics/a%zz/events", "", "", ""},
		{"PUT", "/app.js", "", "", ""},
		{"GET", "/metrics", "", "", ""},
		{"GET", "/readyz", "null", "", ""},
	} {
		f.Add(s.method, s.path, s.origin, s.rng, s.inm)
	}
	f.Fuzz(func(t *testing.T, method, path, origin, rng, inm string) {
		if method == "" || strings.ContainsFunc(method, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) }) {
			t.Skip("not a method")
		}
		if !strings.HasPrefix(path, "/") || strings.Contains(path, "?") || !validRequestTarget(path) {
			t.Skip("not a path")
		}
		if method == "CONNECT" {
			t.Skip("not a request of a path")
		}
		h := header("Origin", origin, "Range", rng, "If-None-Match", inm)
		resp, done := fuzzRequest(t, ts, method, path, "", h, nil)
		defer done()
		switch {
		case resp.StatusCode >= 500:
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		case resp.StatusCode >= 400 && method != http.MethodHead:
			wantRefusal(t, resp)
		case resp.StatusCode == http.StatusPartialContent:
			wantByteRanges(t, resp, rng)
		}
	})
}

// wantByteRanges checks the Content-Range of a 206, or of each part of a
// multipart/byteranges one: "bytes first-last/length", first at most last,
// last below length (RFC 9110 §14.4), which a client can parse.
func wantByteRanges(t *testing.T, resp *http.Response, rng string) {
	t.Helper()
	media, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if media != "multipart/byteranges" {
		wantContentRange(t, resp.Header.Get("Content-Range"), rng)
		return
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("Range %q: multipart body: %v", rng, err)
		}
		wantContentRange(t, part.Header.Get("Content-Range"), rng)
	}
}

// wantContentRange checks one satisfied range's Content-Range.
func wantContentRange(t *testing.T, cr, rng string) {
	t.Helper()
	var first, last, length int64
	if n, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &first, &last, &length); err != nil || n != 3 ||
		first < 0 || first > last || last >= length || cr != fmt.Sprintf("bytes %d-%d/%d", first, last, length) {
		t.Fatalf("Range %q: 206 with Content-Range %q", rng, cr)
	}
}
