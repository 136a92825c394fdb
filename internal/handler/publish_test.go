package handler

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
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
