package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestFanout subscribes, then publishes as ssebench does, and reads the
// events off the live stream: the head comes before any event, and ids
// follow the publish order.
func TestFanout(t *testing.T) {
	p := newPeer("secret")
	srv := httptest.NewServer(p.routes())
	defer srv.Close()
	defer p.sse.Shutdown(context.Background()) //nolint:errcheck // the test is over

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/events?topic=news", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("subscribe: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}

	for i, body := range []string{`{"data":{"seq":0}}`, `{"event":"tick","data":"a\nb"}`} {
		ans := post(t, srv.URL+"/api/v1/topics/news/events", "secret", body, http.StatusCreated)
		want := publishAnswer{ID: []string{"1", "2"}[i], Topic: "news"}
		if ans != want {
			t.Errorf("publish %d: answer %+v, want %+v", i, ans, want)
		}
	}
	post(t, srv.URL+"/api/v1/topics/news/events", "wrong", `{"data":1}`, http.StatusUnauthorized)
	post(t, srv.URL+"/api/v1/topics/news/events", "secret", `{"event":"x"}`, http.StatusBadRequest)

	want := "retry: 3000\n\n" +
		"id: 1\ndata: {\"seq\":0}\n\n" +
		"id: 2\nevent: tick\ndata: a\ndata: b\n\n"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(res.Body, got); err != nil {
		t.Fatalf("reading the stream: %v (got %q)", err, got)
	}
	if string(got) != want {
		t.Errorf("stream:\n%q\nwant\n%q", got, want)
	}
}

func TestSubscribeWithoutTopic(t *testing.T) {
	p := newPeer("")
	srv := httptest.NewServer(p.routes())
	defer srv.Close()
	res, err := http.Get(srv.URL + "/api/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d, want 400", res.StatusCode)
	}
}

// post publishes body with token and checks the status.
func post(t *testing.T, url, token, body string, status int) publishAnswer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var ans publishAnswer
	if res.StatusCode != status {
		t.Fatalf("publish %s: status %d, want %d", body, res.StatusCode, status)
	}
	if status == http.StatusCreated {
		if err := json.NewDecoder(res.Body).Decode(&ans); err != nil {
			t.Fatal(err)
		}
	}
	return ans
}
