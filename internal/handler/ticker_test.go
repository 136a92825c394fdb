package handler

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

func TestTickerSendsEveryLineThenClose(t *testing.T) {
	ts := newTestServer(t, testOptions())
	resp := ts.do(t, "GET", "/stream?count=4&interval=0s", nil, map[string]string{"Accept-Encoding": "gzip"})
	wantStreamHeaders(t, resp)
	p, events := readAll(t, resp.Body)
	if got := p.ReconnectionTime(); got != 2500*time.Millisecond {
		t.Errorf("retry %v, want 2.5s", got)
	}
	if len(events) != 5 {
		t.Fatalf("%d events, want 4 lines and close: %+v", len(events), events)
	}
	for i, ev := range events[:4] {
		want := stream.Event{ID: strconv.Itoa(i), Data: "Streamed line " + strconv.Itoa(i)}
		if i == 0 {
			want.Retry = 2500 * time.Millisecond
		}
		if ev != want {
			t.Errorf("event %d: %+v, want %+v", i, ev, want)
		}
	}
	if last := events[4]; last.Type != "close" || last.Data != "bye" {
		t.Errorf("last event %+v, want close/bye", last)
	}
}

func TestTickerRetryFieldComesFirst(t *testing.T) {
	ts := newTestServer(t, testOptions())
	resp := ts.do(t, "GET", "/stream?count=1", nil, nil)
	buf := make([]byte, len("retry: 2500\n\n"))
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != "retry: 2500\n\n" {
		t.Errorf("stream starts with %q", buf)
	}
}

func TestTickerUsesConfiguredDefaults(t *testing.T) {
	ts := newTestServer(t, testOptions()) // count 3, interval 0
	resp := ts.do(t, "GET", "/stream", nil, nil)
	_, events := readAll(t, resp.Body)
	if len(events) != 4 {
		t.Fatalf("%d events, want 3 lines and close", len(events))
	}
}

func TestTickerSendsEachLineAsItIsProduced(t *testing.T) {
	ts := newTestServer(t, testOptions())
	// The second line is a minute away: the first must arrive on its own,
	// long before then. A server that held it back would hit the
	// request's deadline.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/stream?count=2&interval=1m", nil)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ev, err := nextEvent(stream.NewParser(resp.Body))
	if err != nil {
		t.Fatalf("the first line did not come on its own: %v", err)
	}
	if ev.Data != "Streamed line 0" {
		t.Fatalf("first event %+v", ev)
	}
}

func TestTickerResumesAfterLastEventID(t *testing.T) {
	ts := newTestServer(t, testOptions())
	resp := ts.do(t, "GET", "/stream?count=5", nil, map[string]string{"Last-Event-ID": "2"})
	_, events := readAll(t, resp.Body)
	var ids []string
	for _, ev := range events {
		ids = append(ids, ev.ID+":"+ev.Type)
	}
	// The close event keeps the last id, as the spec's id buffer does.
	if got, want := strings.Join(ids, " "), "3: 4: 4:close"; got != want {
		t.Errorf("ids %q, want %q", got, want)
	}
}

// The 204 says no-cache, as the stream it stands for does: a 204 is
// cacheable by default (RFC 9110), and Last-Event-ID is no part of a
// cache's key, so a shared cache could answer it to a new client of the
// same URL, whose EventSource would stop for good.
func TestTickerAfterFinalIDAnswers204(t *testing.T) {
	ts := newTestServer(t, testOptions())
	resp := ts.do(t, "GET", "/stream?count=5", nil, map[string]string{"Last-Event-ID": "4"})
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("status %d, want 204: only a non-200 answer stops EventSource", resp.StatusCode)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-cache" {
		t.Errorf("Cache-Control %q, want no-cache", got)
	}
}

// An id the ticker never sent resets, one that reads as a number of a
// line's included: "-0" skipped line 0 without a word, and "+4" or "04",
// read as the final id 4, was answered 204, which stops EventSource.
func TestTickerUnknownLastEventIDResets(t *testing.T) {
	for _, id := range []string{"x", "-1", "5", "99999999999999999999", "-0", "+1", "01", "+4", "04"} {
		t.Run(id, func(t *testing.T) {
			ts := newTestServer(t, testOptions())
			resp := ts.do(t, "GET", "/stream?count=5", nil, map[string]string{"Last-Event-ID": id})
			_, events := readAll(t, resp.Body)
			if len(events) != 7 {
				t.Fatalf("%d events, want reset, 5 lines and close", len(events))
			}
			if events[0].Type != "reset" || !strings.Contains(events[0].Data, strconv.Quote(id)) {
				t.Errorf("first event %+v, want a reset naming %q", events[0], id)
			}
			if events[1].ID != "0" {
				t.Errorf("after reset, id %q, want 0", events[1].ID)
			}
		})
	}
}

func TestTickerRejectsBadQuery(t *testing.T) {
	for _, q := range []string{
		"count=0", "count=10001", "count=abc", "count=", "count=1.5",
		// A count is written as a number is, as limit is on
		// GET /api/v1/topics: a sign or a leading zero was taken.
		"count=03", "count=%2B3", "count=-0",
		"interval=-1s", "interval=61s", "interval=fast", "interval=500",
	} {
		t.Run(q, func(t *testing.T) {
			ts := newTestServer(t, testOptions())
			resp := ts.do(t, "GET", "/stream?"+q, nil, nil)
			msg := wantJSONError(t, resp, http.StatusBadRequest)
			param := strings.SplitN(q, "=", 2)[0]
			if !strings.Contains(msg, param) {
				t.Errorf("error %q does not name %s", msg, param)
			}
		})
	}
}

func TestTickerFramesMatchTheEncoder(t *testing.T) {
	frames := newTickerFrames(12)
	got := string(frames.append(nil, 9, 12))
	var want []byte
	for i := 9; i < 12; i++ {
		want, _ = (&stream.Event{ID: strconv.Itoa(i), Data: "Streamed line " + strconv.Itoa(i)}).AppendTo(want)
	}
	if got != string(want) {
		t.Errorf("frames 9..11 = %q, want %q", got, want)
	}
	if got := string(frames.append(nil, 0, 1)); got != "id: 0\ndata: Streamed line 0\n\n" {
		t.Errorf("frame 0 = %q", got)
	}
}

// closingWriter is a ResponseWriter that closes h once the stream has
// taken its slot: openStream lifts the read deadline of a Gin stream
// (SetReadDeadline), and hijacks the connection of a detached one
// (Hijack), both after startStream and before the first step.
type closingWriter struct {
	http.ResponseWriter
	h *Handler
}

func (w closingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w closingWriter) SetReadDeadline(t time.Time) error {
	w.h.Close()
	return http.NewResponseController(w.ResponseWriter).SetReadDeadline(t)
}

func (w closingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.h.Close()
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// TestPacedStreamClosedBeforeItsFirstStepSendsItsFirstItem closes the
// handler after a ticker or token stream took its slot, before its first
// step: the stream, begun, sends its first item at once (its retry field
// with it) as a hub stream sends its answer, and then ends; it does not
// end as often as not with no frame at all, by a random pick between its
// first timer, already fired, and the handler's close.
func TestPacedStreamClosedBeforeItsFirstStepSendsItsFirstItem(t *testing.T) {
	for _, c := range []struct {
		method, path, body, want string
	}{
		{"GET", "/stream?count=3&interval=1m", "", "Streamed line 0"},
		{"POST", "/stream", `{"text": "one two three", "interval": "5s"}`, `{"index":0,"token":"one"}`},
	} {
		t.Run(c.method, func(t *testing.T) {
			for range 20 {
				h := New(testOptions())
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					h.ServeHTTP(closingWriter{w, h}, r)
				}))
				t.Cleanup(srv.Close)
				t.Cleanup(func() { h.Close() })
				req, err := http.NewRequestWithContext(t.Context(), c.method, srv.URL+c.path, strings.NewReader(c.body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				p, events := readAll(t, resp.Body)
				resp.Body.Close()
				// The shutdown's last retry: field (farewell) is spread
				// between the configured 2.5s and twice it.
				if last := p.ReconnectionTime(); resp.StatusCode != http.StatusOK || len(events) == 0 || events[0].Data != c.want ||
					events[0].Retry != 2500*time.Millisecond || last < 2500*time.Millisecond || last > 5*time.Second {
					t.Fatalf("status %d, events %+v, last retry %v; want the first item with the retry field, then the shutdown's",
						resp.StatusCode, events, last)
				}
				waitDrained(t, h)
			}
		})
	}
}
