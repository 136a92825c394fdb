package handler

import (
	"bufio"
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/handlers"
	"github.com/klauspost/compress/gzhttp"
	"github.com/ssehub/ssehub/internal/testlog"
)

// TestAStreamUnderAnOuterWriterIsWhatItsHeadSays runs a stream under a
// writer wrapped around the whole handler, outside Gin, as a program
// embedding ssehub's handler may put one: whatever the transport, the
// client must get a stream that its head describes, compressed when the
// head says Content-Encoding, plain when it says none.
//
// gorilla/handlers' CompressHandler says Content-Encoding: gzip before the
// handler runs, under a writer that can be hijacked: detached.Take sees
// the header and leaves the stream with Gin, which writes it through the
// compressor. Taken over, the head said gzip over a plain body.
// gzhttp says Content-Encoding only once enough of the body has come:
// detached, the connection is taken over first, and the stream goes out
// plain under a head that says so; with Gin it is compressed. A writer
// that cannot be hijacked keeps the stream with Gin. A stream that stays
// with Gin though stream.transport is detached is logged, once.
func TestAStreamUnderAnOuterWriterIsWhatItsHeadSays(t *testing.T) {
	for _, tt := range []struct {
		name string
		wrap func(http.Handler) http.Handler
		// gzip: the stream is compressed, with Gin and detached.
		gzip, gzipDetached bool
		// warned: detached, the stream stays with Gin, and says so.
		warned bool
	}{
		{"gorilla", handlers.CompressHandler, true, true, true},
		{"gzhttp", func(h http.Handler) http.Handler { return gzhttp.GzipHandler(h) }, true, false, false},
		{"not hijackable", func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h.ServeHTTP(struct{ http.ResponseWriter }{w}, r)
			})
		}, false, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs testlog.Buffer
			opts := testOptions()
			opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			h := New(opts)
			ts := &testServer{Server: httptest.NewServer(tt.wrap(h)), h: h}
			t.Cleanup(func() { h.Close(); ts.Close(); waitDrained(t, h) })
			for range 2 {
				conn := ts.dial(t)
				if _, err := io.WriteString(conn, "GET /stream?count=2&interval=0s HTTP/1.1\r\nHost: ssehub\r\nAccept-Encoding: gzip\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					t.Fatal(err)
				}
				body := io.Reader(resp.Body)
				ce := resp.Header.Get("Content-Encoding")
				want := tt.gzip
				if testDetached {
					want = tt.gzipDetached
				}
				switch {
				case !want && ce != "":
					t.Fatalf("Content-Encoding %q, want none", ce)
				case !want:
				case ce != "gzip":
					t.Fatalf("Content-Encoding %q, want gzip", ce)
				default:
					if body, err = gzip.NewReader(resp.Body); err != nil {
						t.Fatalf("the body is not what its head says: %v", err)
					}
				}
				b, err := io.ReadAll(body)
				resp.Body.Close()
				if err != nil || !strings.Contains(string(b), "data: Streamed line 1\n\nevent: close\n") {
					t.Fatalf("body %q (%v), want two lines and close", b, err)
				}
			}
			// Whoever set detached learns that it does not apply.
			want := 0
			if testDetached && tt.warned {
				want = 1
			}
			if n := logs.Count(`level=WARN msg="stream.transport is detached, but a writer around the handler keeps its streams inside Gin's c.Stream"`); n != want {
				t.Errorf("%d warnings, want %d:\n%s", n, want, logs.String())
			}
		})
	}
}
