package handler

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/ssehub/ssehub/internal/stream"
	"github.com/ssehub/ssehub/internal/testlog"
)

func TestPublishAnswerIsWhatJSONMarshalWrites(t *testing.T) {
	for _, s := range []string{"1", "1767225600000000", "a.b-c_D", "", `"\`, "<&>", "\u2028\x00\x7f", "é\xff"} {
		want, err := json.Marshal(gin.H{"id": s, "topic": s})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendPublishAnswer([]byte("x"), s, s); string(got) != "x"+string(want) {
			t.Errorf("answer for %q: %s, want %s", s, got[1:], want)
		}
	}
}

func TestPublishWithoutContentLength(t *testing.T) {
	for _, tt := range []struct {
		body   string
		status int
	}{
		{`{"event": "e", "data": {"n": 1}}`, http.StatusCreated},
		{`{"data":"` + strings.Repeat("x", 2000) + `"}`, http.StatusRequestEntityTooLarge},
	} {
		ts := newHubServer(t)
		// A reader of unknown length: the client sends the body chunked.
		body := io.MultiReader(strings.NewReader(tt.body))
		resp := ts.do(t, "POST", "/api/v1/topics/a/events", body, map[string]string{
			"Authorization": "Bearer " + testToken, "Content-Type": "application/json",
		})
		if resp.StatusCode != tt.status {
			b, _ := io.ReadAll(resp.Body)
			t.Errorf("%.20s…: %d %s, want %d", tt.body, resp.StatusCode, b, tt.status)
		}
	}
}

// Field names are checked at the top of the body only: the data is the
// publisher's JSON, whatever its keys, and is stored as sent.
func TestPublishDataKeepsItsOwnKeys(t *testing.T) {
	ts := newHubServer(t)
	p := ts.subscribe(t, "topic=a", nil)
	const data = `{"Data":1,"data":2,"DATA":{"event":3,"Event":4}}`
	resp := ts.do(t, "POST", "/api/v1/topics/a/events", strings.NewReader(`{"event":"e","data":`+data+`}`), map[string]string{
		"Authorization": "Bearer " + testToken, "Content-Type": "application/json",
	})
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("publish: %d %s", resp.StatusCode, b)
	}
	if ev := next(t, p); ev.Type != "e" || ev.Data != data {
		t.Fatalf("event %+v, want the data as sent", ev)
	}
}

// postKeyed publishes body to topic with an Idempotency-Key header for
// each of keys (none: without one).
func (ts *testServer) postKeyed(t *testing.T, topic, body string, keys ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", ts.URL+"/api/v1/topics/"+topic+"/events", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	for _, k := range keys {
		req.Header.Add("Idempotency-Key", k)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// wantPublished checks a 201 answer to a publish to topic, replayed or
// not, and returns its id.
func wantPublished(t *testing.T, resp *http.Response, topic string, replayed bool) string {
	t.Helper()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("publish: %d %s, want 201", resp.StatusCode, b)
	}
	if got := resp.Header.Values("Idempotent-Replayed"); replayed && (len(got) != 1 || got[0] != "true") || !replayed && len(got) != 0 {
		t.Errorf("Idempotent-Replayed %q, want it %v", got, replayed)
	}
	var out struct{ ID, Topic string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.ID == "" || out.Topic != topic {
		t.Fatalf("publish answer %+v, %v", out, err)
	}
	return out.ID
}

// An Idempotency-Key that is not 1 to 128 bytes of visible ASCII, or is
// given twice, is a 400 naming the rule, and nothing is stored.
func TestPublishRefusesBadIdempotencyKeys(t *testing.T) {
	for _, tt := range []struct {
		name     string
		keys     []string
		mentions string
	}{
		{"empty", []string{""}, "not empty"},
		{"too long", []string{strings.Repeat("k", 129)}, "not 129 bytes"},
		{"tab", []string{"a\tb"}, "byte 1 is 0x09"},
		{"space", []string{"a b"}, "byte 1 is 0x20"},
		{"not ASCII", []string{"clé"}, "byte 2 is 0xC3"},
		{"twice", []string{"a", "b"}, "given 2 times"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := newHubServer(t)
			msg := wantJSONError(t, ts.postKeyed(t, "a", `{"data": 1}`, tt.keys...), http.StatusBadRequest)
			if !strings.Contains(msg, "Idempotency-Key") || !strings.Contains(msg, tt.mentions) {
				t.Errorf("error %q does not name the header and %q", msg, tt.mentions)
			}
			if tt.name != "twice" && !strings.Contains(msg, "1 to 128 bytes of visible ASCII (0x21-0x7E)") {
				t.Errorf("error %q does not state the rule", msg)
			}
			if got := ts.h.hub.Broker.Stats().Published; got != 0 {
				t.Errorf("%d published, want none", got)
			}
		})
	}
}

// A publish repeating a topic's key with the same event is answered 201
// with the first one's id and topic, and Idempotent-Replayed: true; the
// subscribers get the event once.
func TestPublishRepeatedIdempotencyKeyIsReplayed(t *testing.T) {
	ts := newHubServer(t)
	p := ts.subscribe(t, "topic=a", nil)
	const body = `{"event": "e", "data": {"n": 1}}`
	first := wantPublished(t, ts.postKeyed(t, "a", body, "order-42"), "a", false)
	if again := wantPublished(t, ts.postKeyed(t, "a", body, "order-42"), "a", true); again != first {
		t.Fatalf("repeat answered id %s, want the first one's, %s", again, first)
	}
	after := ts.publish(t, "a", `{"data": "after"}`)
	for _, want := range []string{first, after} {
		if ev := next(t, p); ev.ID != want {
			t.Fatalf("event %+v, want id %s: the repeat was stored", ev, want)
		}
	}
	if got := ts.h.hub.Broker.Stats().Published; got != 2 {
		t.Errorf("%d published, want 2", got)
	}
	b, _ := io.ReadAll(ts.do(t, "GET", "/metrics", nil, nil).Body)
	if !strings.Contains(string(b), "\nssehub_publish_replays_total 1\n") {
		t.Errorf("/metrics, want ssehub_publish_replays_total 1:\n%s", grepLines(string(b), "ssehub_"))
	}
}

// The same key with another event (its data or its type) is a 422, and
// nothing is stored.
func TestPublishReusedIdempotencyKeyIs422(t *testing.T) {
	ts := newHubServer(t)
	wantPublished(t, ts.postKeyed(t, "a", `{"event": "e", "data": 1}`, "k"), "a", false)
	for _, body := range []string{`{"event": "e", "data": 2}`, `{"event": "f", "data": 1}`, `{"data": 1}`} {
		resp := ts.postKeyed(t, "a", body, "k")
		msg := wantJSONError(t, resp, http.StatusUnprocessableEntity)
		if !strings.Contains(msg, `Idempotency-Key "k" was used for a different event on topic "a"`) {
			t.Errorf("%s: error %q", body, msg)
		}
		if resp.Header.Get("Idempotent-Replayed") != "" {
			t.Errorf("%s: a 422 says Idempotent-Replayed", body)
		}
	}
	if got := ts.h.hub.Broker.Stats().Published; got != 1 {
		t.Errorf("%d published, want 1", got)
	}
}

// A key is its topic's: the same key on another topic is a publish of its
// own. Without a key every publish is stored, as ever.
func TestPublishIdempotencyKeyIsPerTopic(t *testing.T) {
	ts := newHubServer(t)
	const body = `{"data": 1}`
	onA := wantPublished(t, ts.postKeyed(t, "a", body, "k"), "a", false)
	onB := wantPublished(t, ts.postKeyed(t, "b", body, "k"), "b", false)
	if onA == onB {
		t.Fatalf("key k on topics a and b answered one id, %s", onA)
	}
	plain1 := wantPublished(t, ts.postKeyed(t, "a", body), "a", false)
	plain2 := wantPublished(t, ts.postKeyed(t, "a", body), "a", false)
	if plain1 == plain2 {
		t.Fatalf("two publishes without a key answered one id, %s", plain1)
	}
	if got := ts.h.hub.Broker.Stats().Published; got != 4 {
		t.Errorf("%d published, want 4", got)
	}
}

// A body's bytes that are not UTF-8 become U+FFFD wherever they are in
// data, as encoding/json makes them in a string: inside an object or an
// array too. Passed through, they went out on a stream that says
// charset=utf-8, and a client that decodes it strictly failed on the
// event, and again on each reconnect that replayed it.
func TestPublishDataIsUTF8InEveryJSONValue(t *testing.T) {
	ts := newHubServer(t)
	p := ts.subscribe(t, "topic=a", nil)
	for _, tt := range []struct{ data, want string }{
		{"\"x\xffy\"", "x\uFFFDy"},
		{"{\"k\":\"x\xff\xfey\"}", "{\"k\":\"x\uFFFD\uFFFDy\"}"},
		{"[\"\xc3\", 1]", "[\"\uFFFD\",1]"},
		{"{\"\xe9t\xe9\":\"\xed\xa0\x80\"}", "{\"\uFFFDt\uFFFD\":\"\uFFFD\uFFFD\uFFFD\"}"},
	} {
		ts.publish(t, "a", `{"data":`+tt.data+`}`)
		if ev := next(t, p); ev.Data != tt.want {
			t.Errorf("data %q: sent as %q, want %q", tt.data, ev.Data, tt.want)
		}
	}
}

// A number in data past float64's range was taken and sent on as it was:
// JavaScript's JSON.parse reads 1e400 as Infinity, and encoding/json
// refuses it, so no subscriber could read the event. It is a 400 naming
// it; a number within the range, a string that reads as a number, and
// one that rounds to 0 are taken as before.
func TestPublishRefusesANumberPastFloat64(t *testing.T) {
	ts := newHubServer(t)
	for _, data := range []string{`1e400`, `-1E+400`, `{"a": [1, {"b": 2e999}]}`, `[0.1e310]`, "1" + strings.Repeat("0", 309)} {
		resp := ts.do(t, "POST", "/api/v1/topics/a/events", strings.NewReader(`{"data": `+data+`}`), map[string]string{
			"Authorization": "Bearer " + testToken, "Content-Type": "application/json",
		})
		if msg := wantJSONError(t, resp, http.StatusBadRequest); !strings.Contains(msg, "out of range") {
			t.Errorf("data %.40s: error %q, want it to say the number is out of range", data, msg)
		}
	}
	for _, data := range []string{`1e308`, `"1e400"`, `{"1e400": "\"1e400"}`, `1e-400`, `-0.5E-3`, "1" + strings.Repeat("0", 300), `[true, null, false]`} {
		ts.publish(t, "a", `{"data": `+data+`}`)
	}
}

// TestPublishToATopicWithAnEncodedSlash publishes to a topic written with
// a percent-encoded slash, "a%2Fb": the name is "a/b", which no topic
// may be, and the answer must say so, a 400 naming the topic, not a 404
// for a path the client never sent ("/api/v1/topics/a/b/events", the
// name decoded into path segments). A topic whose other characters come
// encoded ("orders%2Eeu") is still that topic.
func TestPublishToATopicWithAnEncodedSlash(t *testing.T) {
	opts, _ := hubOptions(t, stream.MemoryOptions{})
	ts := newTestServer(t, opts)
	header := map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "application/json"}

	resp := ts.do(t, "POST", "/api/v1/topics/a%2Fb/events", strings.NewReader(`{"data":1}`), header)
	msg := wantJSONError(t, resp, http.StatusBadRequest)
	if !strings.Contains(msg, `topic "a/b"`) {
		t.Fatalf("error %q does not name the topic \"a/b\"", msg)
	}

	resp = ts.do(t, "POST", "/api/v1/topics/orders%2Eeu/events", strings.NewReader(`{"data":1}`), header)
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("publish to orders%%2Eeu: %d %s", resp.StatusCode, b)
	}
	var out struct{ Topic string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Topic != "orders.eu" {
		t.Fatalf("published to %q (%v), want orders.eu", out.Topic, err)
	}
}

// TestEncodedPathsStillRoute: a path whose unreserved characters come
// percent-encoded, as some clients and proxies send them, is the same
// path (RFC 3986 §6.2.2.2).
func TestEncodedPathsStillRoute(t *testing.T) {
	opts, _ := hubOptions(t, stream.MemoryOptions{})
	ts := newTestServer(t, opts)
	for _, path := range []string{"/%68ealthz", "/api/v1/%74opics", "/%61pp.js"} {
		if resp := ts.do(t, "GET", path, nil, nil); resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
		}
	}
	msg := wantJSONError(t, ts.do(t, "GET", "/api%2Fv1/topics", nil, nil), http.StatusNotFound)
	if !strings.Contains(msg, `"/api%2Fv1/topics"`) {
		t.Errorf("404 %q does not name the path as sent", msg)
	}
}

// TestAnEncodedSlashIsNamedAsSentEverywhere: the path of a request with
// an encoded slash is named with it, "%2F", in the 405 and in the access
// line, as in the 404 (TestEncodedPathsStillRoute): the decoded path,
// /api/v1/topics/a/b/events, is one the client never sent, a route it
// did not ask for.
func TestAnEncodedSlashIsNamedAsSentEverywhere(t *testing.T) {
	var logs testlog.Buffer
	opts, _ := hubOptions(t, stream.MemoryOptions{})
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	ts := newTestServer(t, opts)
	const sent = "/api/v1/topics/a%2Fb/events"

	msg := wantJSONError(t, ts.do(t, "DELETE", sent, nil, nil), http.StatusMethodNotAllowed)
	if !strings.Contains(msg, `"`+sent+`"`) {
		t.Errorf("405 %q does not name the path as sent, %s", msg, sent)
	}
	ts.waitReturned(t, "/api/v1/topics/a/b/events")
	header := map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "application/json"}
	wantJSONError(t, ts.do(t, "POST", sent, strings.NewReader(`{"data":1}`), header), http.StatusBadRequest)
	ts.waitReturned(t, "/api/v1/topics/a/b/events")
	waitFor(t, func() bool { return strings.Count(logs.String(), "msg=request ") >= 2 })
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(line, "msg=request ") && pathOf(line) != sent {
			t.Errorf("access line %q names path %s, not %s as sent", line, pathOf(line), sent)
		}
	}
}

// TestAnEncodedPercentIsNamedAsSent: a path with an encoded "%" ("%25")
// is named with it. Its decoded form, "/x%2Fy" for "/x%252Fy", is another
// path, the one the 404 names for a request to "/x%2Fy": two requests
// told apart by the router were named alike.
func TestAnEncodedPercentIsNamedAsSent(t *testing.T) {
	ts := newTestServer(t, testOptions())
	for _, sent := range []string{"/x%252Fy", "/a%25b"} {
		msg := wantJSONError(t, ts.do(t, "GET", sent, nil, nil), http.StatusNotFound)
		if !strings.Contains(msg, `"`+sent+`"`) {
			t.Errorf("404 %q does not name the path as sent, %s", msg, sent)
		}
	}
}
