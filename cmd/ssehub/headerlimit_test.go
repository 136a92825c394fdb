package main

// Tests of the bound on a request's head, over a real socket: a stream
// holds its request, head included, for as long as it runs, so a head
// past maxHeaderBytes is refused (431) over HTTP/1.1 and over HTTP/2,
// while the largest head a client of ssehub needs is served.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/stream"
)

// oversizedLastEventID is a Last-Event-ID past maxHeaderBytes, and under net/http's
// default bound (1 MiB), so that only ssehub's own bound refuses it.
var oversizedLastEventID = strings.Repeat("9", 4*maxHeaderBytes)

// TestRequestHeadBounded: a subscription whose head is past maxHeaderBytes
// gets 431 and no stream, over HTTP/1.1 and over h2c; the largest head a
// subscriber needs (32 topics of 255 bytes, a long token and cookie) is
// served.
func TestRequestHeadBounded(t *testing.T) {
	cfg := config.Default()
	cfg.Server.H2C = true
	base, _ := startMain(t, cfg)
	addr := strings.TrimPrefix(base, "http://")

	t.Run("largest needed", func(t *testing.T) {
		var topics []string
		for i := range 32 {
			topics = append(topics, "topic=demo."+strconv.Itoa(i)+"."+strings.Repeat("t", stream.MaxTopicLen-8))
		}
		req, err := http.NewRequest(http.MethodGet, base+"/api/v1/events?"+strings.Join(topics, "&"), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.Repeat("j", 8<<10))
		req.Header.Set("Cookie", "session="+strings.Repeat("c", 4<<10))
		req.Header.Set("Last-Event-ID", "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("a head of %d bytes: %s, want 200", len(req.URL.RawQuery)+12<<10, resp.Status)
		}
	})

	t.Run("HTTP/1.1", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET /api/v1/events?topic=demo.x HTTP/1.1\r\nHost: ssehub.test\r\n"+
			"Last-Event-ID: "+oversizedLastEventID+"\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		// The answer's head alone: a stream's body would not end.
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("a Last-Event-ID of %d bytes: %s, want 431", len(oversizedLastEventID), resp.Status)
		}
	})

	t.Run("h2c", func(t *testing.T) {
		// One field past the bound ends the connection (net/http: a
		// COMPRESSION_ERROR); fields that are not, but add up past it,
		// get 431.
		status, goAway := h2cStatus(t, addr, "/api/v1/events?topic=demo.x", "last-event-id", oversizedLastEventID)
		if status != http.StatusRequestHeaderFieldsTooLarge && (status != 0 || goAway == http2.ErrCodeNo) {
			t.Errorf("a Last-Event-ID of %d bytes: status %d, GOAWAY %v, want 431 or the connection ended with an error", len(oversizedLastEventID), status, goAway)
		}
		pad := strings.Repeat("p", maxHeaderBytes/4)
		status, goAway = h2cStatus(t, addr, "/api/v1/events?topic=demo.x", "last-event-id", "1", "x-pad-1", pad, "x-pad-2", pad, "x-pad-3", pad, "x-pad-4", pad)
		if status != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("a head of %d bytes: status %d, GOAWAY %v, want 431", 4*len(pad), status, goAway)
		}
	})
}

// TestRequestHeadBoundFitsMoreTopics: with hub.max_topics_per_subscription
// raised, a subscription to that many topics of 255 bytes, with the same
// token and cookie, is within its bounds and is served, not refused 431
// for a head past the 64 KiB that leaves room for 32.
func TestRequestHeadBoundFitsMoreTopics(t *testing.T) {
	cfg := config.Default()
	cfg.Server.H2C = true
	cfg.Hub.MaxTopicsPerSubscription = 400
	base, _ := startMain(t, cfg)
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	for _, h2 := range []bool{false, true} {
		var topics []string
		for i := range cfg.Hub.MaxTopicsPerSubscription {
			topics = append(topics, fmt.Sprintf("topic=demo.%03d.", i)+strings.Repeat("t", stream.MaxTopicLen-11)+".>")
		}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/api/v1/events?"+strings.Join(topics, "&"), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.Repeat("j", 8<<10))
		req.Header.Set("Cookie", "session="+strings.Repeat("c", 4<<10))
		transport := &http.Transport{}
		if h2 {
			transport.Protocols = &protocols
			transport.Protocols.SetHTTP1(false)
		}
		resp, err := (&http.Client{Transport: transport}).Do(req)
		if uerr := (*url.Error)(nil); errors.As(err, &uerr) {
			t.Fatalf("HTTP/2 %v: %d topics: %v", h2, len(topics), uerr.Err) // not its URL of 100 KiB
		} else if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		transport.CloseIdleConnections()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("HTTP/2 %v: %d topics of %d bytes (a query of %d bytes): %s, want 200",
				h2, len(topics), stream.MaxTopicLen, len(req.URL.RawQuery), resp.Status)
		}
	}
}

// headerBytes grows with hub.max_topics_per_subscription past 32, up to
// net/http's own bound: a key set to a million topics does not let a
// client send a head of 264 MB.
func TestHeaderBytes(t *testing.T) {
	for topics, want := range map[int]int{
		1: maxHeaderBytes, 32: maxHeaderBytes, 33: maxHeaderBytes + topicParamBytes,
		400: maxHeaderBytes + 368*topicParamBytes, 1_000_000: http.DefaultMaxHeaderBytes,
	} {
		if got := headerBytes(topics); got != want {
			t.Errorf("headerBytes(%d) = %d, want %d", topics, got, want)
		}
	}
}

// TestRequestHeadBoundAnnouncedOverHTTP2: over HTTP/2 the bound is
// announced (SETTINGS_MAX_HEADER_LIST_SIZE), and Go's client, which heeds
// it, fails a request past it without sending it, as the README says; it
// sees no 431.
func TestRequestHeadBoundAnnouncedOverHTTP2(t *testing.T) {
	cfg := config.Default()
	cfg.Server.H2C = true
	base, _ := startMain(t, cfg)
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	transport := &http.Transport{Protocols: &protocols}
	t.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: transport}
	for _, pad := range []int{1 << 10, maxHeaderBytes} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/healthz", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Pad", strings.Repeat("p", pad))
		resp, err := client.Do(req)
		if pad < maxHeaderBytes {
			if err != nil || resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
				t.Fatalf("a head under the bound over HTTP/2: %v %v, want 200 over HTTP/2", resp, err)
			}
			resp.Body.Close()
			continue
		}
		if err == nil {
			resp.Body.Close()
			t.Fatalf("a head past the bound over HTTP/2: %s, want the client to fail it unsent", resp.Status)
		}
		if !strings.Contains(err.Error(), "larger than peer's advertised limit") {
			t.Errorf("a head past the bound over HTTP/2: %v, want the client's own refusal", err)
		}
	}
}

// h2cStatus sends one GET for path with the headers (name, value, ...)
// over cleartext HTTP/2 to addr, its head split over frames of the
// default size, and returns the status of the answer, or the code of a
// GOAWAY that came instead.
func h2cStatus(t *testing.T, addr, path string, headers ...string) (status int, goAway http2.ErrCode) {
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
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range []hpack.HeaderField{
		{Name: ":method", Value: http.MethodGet},
		{Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: "ssehub.test"},
		{Name: ":path", Value: path},
	} {
		if err := enc.WriteField(f); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if err := enc.WriteField(hpack.HeaderField{Name: headers[i], Value: headers[i+1]}); err != nil {
			t.Fatal(err)
		}
	}
	const frameSize = 16 << 10 // SETTINGS_MAX_FRAME_SIZE's initial value
	b := block.Bytes()
	first := b[:min(len(b), frameSize)]
	b = b[len(first):]
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first, EndStream: true, EndHeaders: len(b) == 0}); err != nil {
		t.Fatal(err)
	}
	for len(b) > 0 {
		next := b[:min(len(b), frameSize)]
		b = b[len(next):]
		if err := fr.WriteContinuation(1, len(b) == 0, next); err != nil {
			t.Fatal(err)
		}
	}
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
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
		case *http2.MetaHeadersFrame:
			status, err := strconv.Atoi(f.PseudoValue("status"))
			if err != nil {
				t.Fatalf("status %q: %v", f.PseudoValue("status"), err)
			}
			return status, 0
		case *http2.RSTStreamFrame:
			t.Fatalf("stream reset: %v", f.ErrCode)
		case *http2.GoAwayFrame:
			return 0, f.ErrCode
		}
	}
}
