package handler

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

// TestKeepAliveAfterAnExpiredWriteDeadline answers a request on a
// kept-alive HTTP/1.1 connection whose last answer, a stream or a plain
// one, set a write deadline (stream.write_timeout from its last write)
// that passed while the client idled. ssehub's server has no
// WriteTimeout, so nothing of the handler's resets the deadline between
// two requests: net/http lifts it once each answer is done
// (conn.serve, after finishRequest). Were it left, what net/http writes
// before or instead of a handler's first bounded write would fail at
// once, and the connection close without an answer: the 100 Continue of
// a publish sent with Expect: 100-continue (its 201 then lost, the event
// stored all the same), or the 400 net/http gives a malformed request.
func TestKeepAliveAfterAnExpiredWriteDeadline(t *testing.T) {
	const timeout = 100 * time.Millisecond
	opts, _ := hubOptions(t, stream.MemoryOptions{})
	opts.Stream.WriteTimeout = timeout
	ts := newTestServer(t, opts)

	firsts := map[string]string{"plain": "GET /healthz HTTP/1.1\r\nHost: ssehub\r\n\r\n"}
	if !testDetached { // a detached stream closes its connection after it
		firsts["stream"] = "GET /stream?count=1&interval=0s HTTP/1.1\r\nHost: ssehub\r\n\r\n"
	}
	body := `{"data":"kept"}`
	seconds := map[string]struct {
		req    string
		status []int // the answers, in order
	}{
		"plain": {"GET /healthz HTTP/1.1\r\nHost: ssehub\r\n\r\n", []int{200}},
		"expect 100-continue": {"POST /api/v1/topics/kept/events HTTP/1.1\r\nHost: ssehub\r\nAuthorization: Bearer " + testToken +
			"\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body, []int{100, 201}},
		"malformed": {"GET /healthz HTTP/1.1\r\nHost: ssehub\r\nBad Header\r\n\r\n", []int{400}},
	}
	for fname, first := range firsts {
		for sname, second := range seconds {
			t.Run(fname+" then "+sname, func(t *testing.T) {
				conn := ts.dial(t)
				br := bufio.NewReader(conn)
				if _, err := io.WriteString(conn, first); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadAll(resp.Body); err != nil || resp.Close {
					t.Fatalf("first answer: %v, close %v: want it whole, the connection kept", err, resp.Close)
				}
				// The deadline was set before the answer went out: it
				// has passed once the client idled as long again.
				time.Sleep(2 * timeout)
				if _, err := io.WriteString(conn, second.req); err != nil {
					t.Fatal(err)
				}
				for _, want := range second.status {
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						t.Fatalf("no %d answer after the idle: %v", want, err)
					}
					b, err := io.ReadAll(resp.Body)
					if err != nil || resp.StatusCode != want {
						t.Fatalf("%s %q (%v), want %d in full", resp.Status, b, err, want)
					}
				}
			})
		}
	}
}
