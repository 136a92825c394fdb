package natsbroker

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/ssehub/ssehub/internal/handler"
	"github.com/ssehub/ssehub/internal/stream"
	"go.uber.org/goleak"
)

// TestMain checks that no goroutine outlived the tests. The tests that
// call t.Parallel wait on timers (publish timeouts, slow answers, askEvery,
// elections), not on the CPU: -parallel's default, GOMAXPROCS, ran two at a
// time on a runner of two cores. Four, not more: each starts a NATS
// server with its own file store, and at eight, beside other packages'
// tests, creating a stream once took longer than JetStream's 5 s API
// timeout. Given on the command line, -parallel is kept.
func TestMain(m *testing.M) {
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		if err := flag.Set("test.parallel", "4"); err != nil {
			panic(err)
		}
	}
	goleak.VerifyTestMain(m)
}

const (
	testToken = "t0ken"
	waitLimit = 10 * time.Second
)

// natsServer is a NATS server with JetStream in the test process, on a
// loopback port, storing in a directory of the test's.
type natsServer struct {
	*server.Server
	dir        string
	port       int
	maxPayload int32 // the server's max_payload; 0: NATS's default, 1 MiB
	// maxConsumers is the server's cap on the consumers of a stream
	// (default_max_consumers); 0: NATS's default, 1000.
	maxConsumers int
	// denied, when set, are the subjects the user "restricted" (password
	// "restricted") may not publish to; a client without credentials is
	// then a user who may publish anywhere.
	denied []string
	// token, when set, is the token every client must give.
	token string
	// maxStore is the server's JetStream file storage (max_file_store);
	// 0: NATS's default, most of the disk.
	maxStore int64
	// noJetStream runs the server without JetStream, as one restarted
	// without -js.
	noJetStream bool
}

// restrictedURL is ns's URL as the user whose publishes denied leaves out.
func (ns *natsServer) restrictedURL() string {
	return fmt.Sprintf("nats://restricted:restricted@127.0.0.1:%d", ns.port)
}

func startNATS(t testing.TB) *natsServer {
	t.Helper()
	return startNATSWith(t, &natsServer{})
}

// startNATSWith starts ns, set as the test needs it (maxPayload,
// maxConsumers), on a port and store of its own.
func startNATSWith(t testing.TB, ns *natsServer) *natsServer {
	t.Helper()
	ns.dir, ns.port = t.TempDir(), -1
	ns.start(t)
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// start runs the server, again on the same port and store after a stop.
func (ns *natsServer) start(t testing.TB) {
	t.Helper()
	s, err := server.NewServer(ns.options())
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(waitLimit) {
		t.Fatal("nats server not ready")
	}
	ns.Server = s
	ns.port = s.Addr().(*net.TCPAddr).Port
}

// deny sets the subjects the user "restricted" may not publish to, on
// the running server, as an operator's configuration reload does.
func (ns *natsServer) deny(t *testing.T, subjects ...string) {
	t.Helper()
	ns.denied = subjects
	if err := ns.ReloadOptions(ns.options()); err != nil {
		t.Fatal(err)
	}
}

// options are ns's server options, on ns.port.
func (ns *natsServer) options() *server.Options {
	opts := &server.Options{
		Host: "127.0.0.1", Port: ns.port, JetStream: !ns.noJetStream, StoreDir: ns.dir,
		NoLog: true, NoSigs: true, MaxPayload: ns.maxPayload,
		JetStreamLimits:   server.JSLimitOpts{DefaultMaxConsumers: ns.maxConsumers},
		JetStreamMaxStore: ns.maxStore,
	}
	opts.Authorization = ns.token
	if ns.denied != nil {
		opts.Users = []*server.User{
			{Username: "anyone", Password: "anyone"},
			{Username: "restricted", Password: "restricted", Permissions: &server.Permissions{
				Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: ns.denied},
			}},
		}
		opts.NoAuthUser = "anyone"
	}
	return opts
}

// operator returns a JetStream client of its own on ns, as an operator's
// tool or another program would use, closed when the test ends.
func (ns *natsServer) operator(t *testing.T) jetstream.JetStream {
	t.Helper()
	return jetStreamClient(t, ns.ClientURL())
}

// jetStreamClient connects a JetStream client of its own to url (servers
// separated by commas) with opts, as connectNATS does, closed when the
// test ends.
func jetStreamClient(t *testing.T, url string, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc := connectNATS(t, url, opts...)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// connectNATS connects a NATS client of its own to url (servers separated
// by commas) with opts, or fails the test. The connection has waitLimit to
// be made, not nats.go's 2 s (nats.DefaultTimeout), which the in-process
// server took longer than on a loaded machine ("nats: timeout"); opts may
// set another.
func connectNATS(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{nats.Timeout(waitLimit)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

func (ns *natsServer) stop() {
	ns.Shutdown()
	ns.WaitForShutdown()
}

// instance is one ssehub: a Broker on the test's NATS server behind the
// real handler on a real socket.
type instance struct {
	*httptest.Server
	broker *Broker
	h      *handler.Handler
	closed bool
}

func testBrokerOptions(ns *natsServer) Options {
	return Options{
		URLs:           []string{ns.ClientURL()},
		HistorySize:    100,
		PublishTimeout: 2 * time.Second,
		ReconnectWait:  20 * time.Millisecond,
		Logger:         slog.New(slog.DiscardHandler),
	}
}

// publishModes are the two ways a broker publishes: batched, from the
// publisher's goroutine (the default), and each from its caller's
// goroutine (Options.DisablePublishBatching).
var publishModes = []struct {
	name    string
	disable bool // Options.DisablePublishBatching
}{
	{"batched", false},
	{"unbatched", true},
}

// eachPublishMode runs test as one subtest per publish mode; options
// returns testBrokerOptions set to the mode.
func eachPublishMode(t *testing.T, test func(t *testing.T, options func(*natsServer) Options)) {
	t.Helper()
	for _, mode := range publishModes {
		t.Run(mode.name, func(t *testing.T) {
			test(t, func(ns *natsServer) Options {
				opts := testBrokerOptions(ns)
				opts.DisablePublishBatching = mode.disable
				return opts
			})
		})
	}
}

// newInstance opens a Broker of opts behind a handler with middleware.
func newInstance(t *testing.T, opts Options, middleware ...gin.HandlerFunc) *instance {
	t.Helper()
	b, err := Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	h := handler.New(handler.Options{
		Middleware: middleware,
		Logger:     slog.New(slog.DiscardHandler),
		Stream:     handler.StreamOptions{HeartbeatInterval: time.Minute, WriteTimeout: 5 * time.Second},
		Hub:        handler.HubOptions{Broker: b, PublishTokens: []string{testToken}},
	})
	in := &instance{Server: httptest.NewServer(h), broker: b, h: h}
	t.Cleanup(in.close)
	return in
}

// close ends the instance's streams, then its server and broker.
func (in *instance) close() {
	if in.closed {
		return
	}
	in.closed = true
	in.h.Close()
	in.Server.Close()
	in.broker.Close()
}

// postAnswer publishes as post does, and returns the status, the
// answer's body and its header.
func (in *instance) postAnswer(t *testing.T, topic, body string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", in.URL+"/api/v1/topics/"+topic+"/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := in.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(answer), resp.Header
}

// metrics returns the instance's /metrics.
func (in *instance) metrics(t *testing.T) string {
	t.Helper()
	resp, err := in.Client().Get(in.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(text)
}

// readyz returns the instance's /readyz answer, its body closed.
func (in *instance) readyz(t *testing.T) *http.Response {
	t.Helper()
	resp, err := in.Client().Get(in.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// metricLines are the lines of metrics, a /metrics answer, that start
// with prefix.
func metricLines(metrics, prefix string) string {
	var lines []string
	for line := range strings.Lines(metrics) {
		if strings.HasPrefix(line, prefix) {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "")
}

// post publishes and returns the status, the answer's id and its header.
// extra are more request headers, as name, value pairs.
func (in *instance) post(t *testing.T, topic, body string, extra ...string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", in.URL+"/api/v1/topics/"+topic+"/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	resp, err := in.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.ID, resp.Header
}

func (in *instance) publish(t *testing.T, topic, data string) string {
	t.Helper()
	status, id, _ := in.post(t, topic, fmt.Sprintf(`{"data": %q}`, data))
	if status != http.StatusCreated || id == "" {
		t.Fatalf("publish to %s: %d", topic, status)
	}
	return id
}

// client reads one subscription's events on a goroutine of its own.
type client struct {
	events chan stream.Event
	cancel context.CancelFunc
}

func (in *instance) subscribe(t *testing.T, query, lastEventID string) *client {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", in.URL+"/api/v1/events?"+query, nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := in.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatalf("subscribe %s: %v", query, err)
	}
	if resp.StatusCode != http.StatusOK {
		// The answer's error says why (a 503: what NATS did not answer).
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("subscribe %s: %v %s", query, resp.Status, body)
	}
	c := &client{events: make(chan stream.Event, 1000), cancel: cancel}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(c.events)
		defer resp.Body.Close()
		p := stream.NewParser(resp.Body)
		for {
			ev, err := p.Next()
			if err != nil {
				return
			}
			if ev.ID == "" && ev.Type == "" && ev.Data == "" || ev.Type == "position" {
				continue // the retry field, a heartbeat, a live-only stream's position
			}
			ev.Retry, ev.Comment = 0, ""
			c.events <- ev
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// next waits for the next event, or fails the test after waitLimit.
func (c *client) next(t *testing.T) stream.Event {
	t.Helper()
	return c.nextWithin(t, waitLimit, fmt.Sprint("no event within ", waitLimit))
}

// nextWithin waits for the next event, or fails the test after limit,
// saying why.
func (c *client) nextWithin(t *testing.T, limit time.Duration, why string) stream.Event {
	t.Helper()
	select {
	case ev, ok := <-c.events:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(limit):
		t.Fatal(why)
	}
	return stream.Event{}
}

// ended waits for the stream to end, every event before the end discarded.
func (c *client) ended(t *testing.T) {
	t.Helper()
	timeout := time.After(waitLimit)
	for {
		select {
		case _, ok := <-c.events:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("the stream did not end")
		}
	}
}

// waitFor polls cond until it holds, or fails the test after waitLimit.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settled reports whether b is ready with no check of its stream under
// way: what a publish sees without waiting. Ready alone does not tell a
// test that a check is over, or a new stream taken: it stays nil while a
// check is fresh (checkFresh).
func settled(b *Broker) bool { return b.ready(b.cur.Load()) == nil }
