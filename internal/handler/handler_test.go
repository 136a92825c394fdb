package handler

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
	"github.com/ssehub/ssehub/internal/testpass"
	"go.uber.org/goleak"
)

// testDetached is the transport of this pass of the tests: every stream
// test runs with streams inside Gin's c.Stream, then detached.
var testDetached bool

// testPasses are the passes of TestMain: each transport on the memory
// broker, then the gin transport on the NATS broker. The hub on NATS
// writes through the same transport code as on memory, so one transport
// is enough there, and it keeps the package's run time down.
var testPasses = []struct {
	detached bool
	nats     bool
}{{false, false}, {true, false}, {false, true}}

// TestMain runs every test once per pass (testPasses), and checks after
// each pass that no goroutine outlived its tests. The NATS pass runs a
// NATS server with JetStream in the process for its length, its store in
// a folder the next run removes if this one was killed before it could
// (removeStaleNATSDirs). The passes share go test's -timeout (testpass).
//
// Fuzzing (-fuzz) runs one pass: its workers, processes of their own, run
// TestMain's first pass whatever pass the coordinator is in, so that the
// passes after the first fuzzed the first's transport and broker again
// (and tripled -fuzztime). The pass is
// SSEHUB_FUZZ_PASS, its index in testPasses (0 without it), which the
// workers inherit.
func TestMain(m *testing.M) {
	flag.Parse()
	removeStaleNATSDirs(os.TempDir())
	timeout := testpass.Start()
	passes := testPasses[:]
	if fuzzing() {
		i, err := strconv.Atoi(cmp.Or(os.Getenv("SSEHUB_FUZZ_PASS"), "0"))
		if err != nil || i < 0 || i >= len(testPasses) {
			fmt.Fprintf(os.Stderr, "SSEHUB_FUZZ_PASS %q: want 0 to %d\n", os.Getenv("SSEHUB_FUZZ_PASS"), len(testPasses)-1)
			os.Exit(2)
		}
		passes = testPasses[i : i+1]
	}
	code := 0
	for _, pass := range passes {
		if err := timeout.Next(); err != nil {
			fmt.Fprintf(os.Stderr, "transport %s, nats %v: not run: %v\n", transportName(pass.detached), pass.nats, err)
			code = 1
			break
		}
		if c := runPass(m, pass.detached, pass.nats); c != 0 {
			code = c
		}
	}
	os.Exit(code)
}

// fuzzing reports whether this process fuzzes: the coordinator (-fuzz)
// or one of its workers.
func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}

// runPass runs the tests once with the given transport and broker.
func runPass(m *testing.M, detached, onNATS bool) int {
	testDetached = detached
	name := "transport " + transportName(detached) + ", broker memory"
	if onNATS {
		name = "transport " + transportName(detached) + ", broker nats"
		ns, err := startNATS()
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			return 1
		}
		testNATS = ns
	}
	fmt.Printf("=== %s\n", name)
	code := m.Run()
	if testNATS != nil {
		testNATS.stop()
		testNATS = nil
	}
	if err := goleak.Find(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: goroutines left: %v\n", name, err)
		code = 1
	}
	return code
}

func transportName(detached bool) string {
	if detached {
		return "detached"
	}
	return "gin"
}

// testOptions are Options for tests: the demo on, a tiny page, a short
// ticker, the transport of this pass.
func testOptions() Options {
	return Options{
		Stream: StreamOptions{HeartbeatInterval: 15 * time.Second, Retry: 2500 * time.Millisecond, WriteTimeout: 10 * time.Second, Detached: testDetached},
		Demo:   DemoOptions{Enabled: true, TickerCount: 3, TickerInterval: 0},
		Static: fstest.MapFS{
			"index.html":     {Data: []byte("<!doctype html><title>ssehub demo</title>")},
			"app.js":         {Data: []byte("console.log('demo')")},
			"vendor/vue.js":  {Data: []byte("/* vue */")},
			"vendor/LICENSE": {Data: []byte("MIT")},
		},
	}
}

// testServer is the real router on a real socket. returned receives the
// path of each request once it is answered: when its handler returns, or
// for a stream (which may outlive its handler when detached) when the
// stream ends.
type testServer struct {
	*httptest.Server
	h        *Handler
	returned chan string
}

func newTestServer(t testing.TB, opts Options) *testServer {
	t.Helper()
	h := New(opts)
	ts := &testServer{h: h, returned: make(chan string, 1024)}
	report := func(path string) {
		select {
		case ts.returned <- path:
		default: // nobody is waiting for so many
		}
	}
	h.streamEnded = report
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if !isStream(w) {
			report(r.URL.Path)
		}
	}))
	t.Cleanup(func() {
		h.Close()
		ts.Server.Close()
		waitDrained(t, h)
	})
	return ts
}

// isStream reports whether w answered with an event stream.
func isStream(w http.ResponseWriter) bool {
	return strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream")
}

// do sends a request and fails the test on a transport error. The body is
// closed when the test ends.
func (ts *testServer) do(t *testing.T, method, path string, body io.Reader, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, ts.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// waitReturned waits until the handler of a request to path has returned.
func (ts *testServer) waitReturned(t *testing.T, path string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case p := <-ts.returned:
			if p == path {
				return
			}
		case <-timeout:
			t.Fatalf("handler for %s did not return", path)
		}
	}
}

// readAll parses every event of a stream until it ends.
func readAll(t *testing.T, r io.Reader) (*stream.Parser, []stream.Event) {
	t.Helper()
	p := stream.NewParser(r)
	var events []stream.Event
	for {
		ev, err := nextEvent(p)
		if errors.Is(err, io.EOF) {
			return p, events
		}
		if err != nil {
			t.Fatalf("after %d events: %v", len(events), err)
		}
		events = append(events, ev)
	}
}

// wantJSONError checks a JSON error answer and returns its message.
func wantJSONError(t *testing.T, resp *http.Response, status int) string {
	t.Helper()
	if resp.StatusCode != status {
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("status %d, want %d; an event stream", resp.StatusCode, status) // whose body does not end
		}
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q, want JSON", ct)
	}
	// An error's text may quote the request: no browser may take it for
	// HTML.
	if v := resp.Header.Values("X-Content-Type-Options"); len(v) != 1 || v[0] != "nosniff" {
		t.Errorf("X-Content-Type-Options %q, want nosniff", v)
	}
	var body struct {
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("error body: %v", err)
	}
	if body.Error == "" {
		t.Fatal(`no "error" in the body`)
	}
	return body.Error
}

// wantStreamHeaders checks the headers every event stream sends.
func wantStreamHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	want := map[string]string{
		"Content-Type":      "text/event-stream; charset=utf-8",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
		"Content-Encoding":  "",
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	// A detached stream closes its connection when it ends, and says so
	// (Go's client takes the header off into resp.Close); with Gin the
	// connection is kept.
	if resp.ProtoMajor == 1 && resp.Close != testDetached {
		t.Errorf("Connection: close is %v with transport %s", resp.Close, transportName(testDetached))
	}
}

// waitDrained calls Wait with a bound.
func waitDrained(t testing.TB, h *Handler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}
