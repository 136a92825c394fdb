package handler

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// FuzzPublishBody checks the fast path against encoding/json: for every
// body parsePublishBody takes, decodePublishBody must agree, and the data
// must come out as json.Unmarshal or json.Compact would have it.
func FuzzPublishBody(f *testing.F) {
	for _, seed := range []string{
		`{"data":"hello"}`, ` {"event" : "e" , "data" : {"a": [1, 2, {"b": "}\"]"}]}} `,
		`{"data":"\u0000\u2028 \\ \"x\""}`, "{\"data\":\"\xff\"}", `{"data":[]}`, `{"data":-0.0e+1}`,
		`{"data":null}`, `{}`, `{"event":"reset","data":1}`, `{"event":null,"data":1}`,
		`{"data":1,"data":2}`, `{"Data":1}`, `{"d\u0061ta":1}`, `{"data":1}]`, `{"data":1} {}`, `[1]`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		event, data, ok := parsePublishBody(body)
		if !ok {
			return
		}
		wantEvent, wantData, err := decodePublishBody(body, nil)
		if err != nil {
			t.Fatalf("fast path took %q, encoding/json refuses it: %v", body, err)
		}
		if event != wantEvent || !bytes.Equal(data, wantData) {
			t.Fatalf("%q: fast path event %q data %q, encoding/json %q %q", body, event, data, wantEvent, wantData)
		}
		if len(data) == 0 {
			return
		}
		if data[0] == '"' {
			var want string
			wantErr := json.Unmarshal(data, &want)
			got, err := unquoteJSON(data)
			if got != want || (err == nil) != (wantErr == nil) {
				t.Fatalf("unquote %q: %q, %v; json.Unmarshal %q, %v", data, got, err, want, wantErr)
			}
			return
		}
		var want bytes.Buffer
		wantErr := json.Compact(&want, data)
		got, err := compactJSON(new(bytes.Buffer), data)
		if (err == nil) != (wantErr == nil) || err == nil && got != want.String() {
			t.Fatalf("compact %q: %q, %v; json.Compact %q, %v", data, got, err, want.String(), wantErr)
		}
	})
}

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

func TestIsJSONContentTypeAgreesWithMime(t *testing.T) {
	for _, ct := range []string{
		"application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8",
		"Application/JSON", "application/json ; charset=utf-8", "application/json; charset=latin1",
		"application/json; charset", "application/json; a=1; a=2", "application/jsonx", "application/j\u017fon",
		"text/json", "application/x-www-form-urlencoded", "", " application/json",
	} {
		mediaType, _, err := mime.ParseMediaType(ct)
		want := err == nil && mediaType == "application/json"
		if got := isJSONContentType(ct); got != want {
			t.Errorf("isJSONContentType(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestPublishRefusesWhatFollowsTheObject(t *testing.T) {
	for _, body := range []string{`{"data":1}]`, `{"data":1}}`, `{"data":1} 2`} {
		ts := newHubServer(t)
		resp := ts.do(t, "POST", "/api/v1/topics/a/events", strings.NewReader(body), map[string]string{
			"Authorization": "Bearer " + testToken, "Content-Type": "application/json",
		})
		if msg := wantJSONError(t, resp, http.StatusBadRequest); !strings.Contains(msg, "one JSON object") {
			t.Errorf("%s: error %q does not mention one JSON object", body, msg)
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
