package handler

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

// bubbleServerH2 is bubbleServer over HTTP/2 without TLS (h2c, with prior
// knowledge): Go's HTTP/2 server and client, in a synctest bubble where
// time is fake. Over HTTP/2 a write deadline is a timer of the server's
// for each request's stream, which resets it when it fires: in the
// bubble, a test can let a short stream.write_timeout pass while a stream
// idles, and have every answer it needs written however loaded the
// machine is. Call it inside synctest.Test.
func bubbleServerH2(t *testing.T, h http.Handler) *http.Client {
	ln := newPipeListener()
	srv := &http.Server{Handler: h, Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go func() { _ = srv.Serve(ln) }() // ErrServerClosed once the test ends
	tr := &http.Transport{DialContext: ln.dial, Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: tr}
	t.Cleanup(func() {
		client.CloseIdleConnections()
		srv.Close()
	})
	return client
}

// TestHTTP2IdleSubscriptionOutlivesItsWriteTimeout subscribes over
// HTTP/2 and lets the subscription idle for three times
// stream.write_timeout before an event: on HTTP/2 a write deadline left
// in place after a step resets the request's stream when it passes,
// written or not, so each step lifts its deadline after its flush
// (ginWriter). The event must arrive. In a synctest bubble: over a real
// socket with a 200 ms timeout (as TestHTTP2StreamsAndSubscriptions did)
// the subscription's head and the publish's answer had to be written
// within it, which a loaded machine could run out.
func TestHTTP2IdleSubscriptionOutlivesItsWriteTimeout(t *testing.T) {
	skipOnNATS(t, synctestWhy)
	synctest.Test(t, func(t *testing.T) {
		opts, _ := hubOptions(t, stream.MemoryOptions{})
		opts.Stream.WriteTimeout = 200 * time.Millisecond
		h := New(opts)
		defer h.Close()
		client := bubbleServerH2(t, h)
		sub, err := client.Get("http://ssehub/api/v1/events?topic=a")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Body.Close()
		if sub.ProtoMajor != 2 {
			t.Fatalf("subscription protocol %s, want HTTP/2", sub.Proto)
		}
		wantStreamHeaders(t, sub)
		p := stream.NewParser(sub.Body)
		time.Sleep(3 * opts.Stream.WriteTimeout)
		req, err := http.NewRequest("POST", "http://ssehub/api/v1/topics/a/events", strings.NewReader(`{"event": "note", "data": "over h2"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated || err != nil {
			t.Fatalf("publish: %d %s %v", resp.StatusCode, b, err)
		}
		if ev := next(t, p); ev.Type != "note" || ev.Data != "over h2" {
			t.Errorf("event %+v, want note, over h2", ev)
		}
	})
}
