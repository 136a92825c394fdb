package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/natsbroker"
	"github.com/ssehub/ssehub/internal/stream"
)

// Run on the NATS broker: an event published before a restart of ssehub
// (its process memory gone) is replayed from the stream after it.
func TestRunOnNATSResumesAcrossARestart(t *testing.T) {
	ns := startNATSServer(t)
	cfg := config.Default()
	cfg.Auth.PublishTokens = []string{"tok"}
	onNATS := func(m *Main) {
		m.nats = &natsbroker.Options{URLs: []string{ns.ClientURL()}, ReconnectWait: 20 * time.Millisecond}
	}

	wantResumeAcrossARestart(t, cfg, onNATS)
}

// nats.publish_batching reaches the broker: true, the default, leaves
// the option at its zero value (batching on); false turns batching off.
func TestNATSOptionsPublishBatching(t *testing.T) {
	cfg := config.Default()
	if natsOptions(cfg, "nats://127.0.0.1:4222").DisablePublishBatching {
		t.Error("nats.publish_batching: true disables publish batching")
	}
	cfg.NATS.PublishBatching = false
	if !natsOptions(cfg, "nats://127.0.0.1:4222").DisablePublishBatching {
		t.Error("nats.publish_batching: false leaves publish batching on")
	}
}

// nats.ca_file reaches the broker, except with nats.embedded: the
// embedded server, in the process, speaks no TLS.
func TestNATSOptionsCAFile(t *testing.T) {
	cfg := config.Default()
	cfg.NATS.CAFile = "ca.pem"
	if got := natsOptions(cfg, "tls://nats.test:4222").CAFile; got != "ca.pem" {
		t.Errorf("CAFile %q, want ca.pem", got)
	}
	cfg.NATS.Embedded = true
	if got := natsOptions(cfg, "nats://127.0.0.1:4222").CAFile; got != "" {
		t.Errorf("CAFile %q with nats.embedded, want none", got)
	}
}

// nats.credentials_file reaches the broker, except with nats.embedded:
// the embedded server, in the process, asks for no credentials.
func TestNATSOptionsCredentialsFile(t *testing.T) {
	cfg := config.Default()
	cfg.NATS.CredentialsFile = "hub.creds"
	if got := natsOptions(cfg, "nats://nats.test:4222").CredentialsFile; got != "hub.creds" {
		t.Errorf("CredentialsFile %q, want hub.creds", got)
	}
	cfg.NATS.Embedded = true
	if got := natsOptions(cfg, "nats://127.0.0.1:4222").CredentialsFile; got != "" {
		t.Errorf("CredentialsFile %q with nats.embedded, want none", got)
	}
}

// With nats.embedded the process runs its own NATS server, storing in
// nats.store_dir: a single instance keeps its history across restarts with
// nothing else to run.
func TestRunOnEmbeddedNATSResumesAcrossARestart(t *testing.T) {
	cfg := config.Default()
	cfg.Auth.PublishTokens = []string{"tok"}
	cfg.Hub.Broker = "nats"
	cfg.NATS.Embedded = true
	cfg.NATS.StoreDir = t.TempDir()
	wantResumeAcrossARestart(t, cfg)
}

// wantResumeAcrossARestart publishes two events, restarts ssehub, resumes
// after the first and wants the second, replayed from the stream.
func wantResumeAcrossARestart(t *testing.T, cfg config.Config, hooks ...func(*Main)) {
	t.Helper()
	url, stop := startMain(t, cfg, hooks...)
	first := publishTo(t, url, "a", "before")
	second := publishTo(t, url, "a", "missed")
	stop()

	url, _ = startMain(t, cfg, hooks...)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url+"/api/v1/events?topic=a", nil)
	req.Header.Set("Last-Event-ID", first)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := stream.NewParser(resp.Body)
	for {
		ev, err := nextEvent(p)
		if err != nil {
			t.Fatal(err)
		}
		if ev.ID == "" && ev.Type == "" {
			continue
		}
		if ev.ID != second || ev.Data != "missed" {
			t.Fatalf("after the restart: %+v, want id %s", ev, second)
		}
		return
	}
}

func publishTo(t *testing.T, url, topic, data string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", url+"/api/v1/topics/"+topic+"/events", strings.NewReader(`{"data": "`+data+`"}`))
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated || out.ID == "" {
		t.Fatalf("publish: %d %+v %v", resp.StatusCode, out, err)
	}
	return out.ID
}

// A publish under way when the server shuts down is answered as it
// happened: 201 once stored, and a refusal only for what was not stored.
// Closing the broker as the shutdown began answered stored events 503
// ("shutting down: try again"), and their retries stored them twice.
func TestShutdownAnswersThePublishesUnderWayOnNATS(t *testing.T) {
	ns := startNATSServer(t)
	cfg := config.Default()
	cfg.Auth.PublishTokens = []string{"tok"}
	url, stop := startMain(t, cfg, func(m *Main) {
		m.nats = &natsbroker.Options{URLs: []string{ns.ClientURL()}, ReconnectWait: 20 * time.Millisecond}
	})

	const publishers = 16
	var (
		mu       sync.Mutex
		refused  []string // data of the publishes answered 5xx
		accepted int
	)
	// The shutdown comes once the publishers have had a few publishes
	// each accepted, with many under way at any moment: a fixed pause
	// could end, on a busy machine, before the first was answered.
	underWay := make(chan struct{})
	var wg sync.WaitGroup
	for g := range publishers {
		wg.Go(func() {
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			for i := 0; ; i++ {
				data := fmt.Sprintf("p%d-%d", g, i)
				req, _ := http.NewRequest("POST", url+"/api/v1/topics/a/events", strings.NewReader(`{"data": "`+data+`"}`))
				req.Header.Set("Authorization", "Bearer tok")
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				resp.Body.Close()
				mu.Lock()
				switch {
				case resp.StatusCode == http.StatusCreated:
					accepted++
					if accepted == 4*publishers {
						close(underWay) // once: accepted only grows
					}
				case resp.StatusCode >= 500:
					refused = append(refused, data)
				}
				mu.Unlock()
				if resp.StatusCode != http.StatusCreated {
					return
				}
			}
		})
	}
	select {
	case <-underWay:
	case <-time.After(30 * time.Second):
		mu.Lock()
		n := accepted
		mu.Unlock()
		t.Fatalf("%d publishes accepted in 30s, want %d before the shutdown", n, 4*publishers)
	}
	stop()
	wg.Wait()

	stored := storedData(t, ns.ClientURL(), natsbroker.DefaultStream)
	for _, data := range refused {
		if stored[data] {
			t.Errorf("publish %s answered 5xx at shutdown, but stored", data)
		}
	}
	if len(stored) < accepted {
		t.Errorf("%d events stored, %d publishes accepted", len(stored), accepted)
	}
}

// natsWait bounds the tests' waits for their NATS server: start-up, a
// test client's connection (not nats.go's 2 s, nats.DefaultTimeout) and
// its JetStream requests (not jetstream's 5 s), which the in-process
// server may take longer than on a loaded machine.
const natsWait = 10 * time.Second

// connectNATS connects a NATS client of the test's to url, or fails the
// test; the connection has natsWait to be made.
func connectNATS(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.Timeout(natsWait))
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

// storedData returns the data of every message of a JetStream stream.
func storedData(t *testing.T, natsURL, name string) map[string]bool {
	t.Helper()
	nc := connectNATS(t, natsURL)
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(natsWait))
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	stored := make(map[string]bool)
	for seq := st.CachedInfo().State.FirstSeq; seq <= st.CachedInfo().State.LastSeq; seq++ {
		m, err := st.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		stored[string(m.Data)] = true
	}
	return stored
}

// startNATSServer runs a NATS server with JetStream in the test process,
// storing in a directory of the test's, until the test ends.
func startNATSServer(t *testing.T) *server.Server {
	t.Helper()
	return runNATSServer(t, &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
}

// runNATSServer runs a NATS server of opts in the test process until the
// test ends.
func runNATSServer(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(natsWait) {
		t.Fatal("nats server not ready")
	}
	return ns
}

// A stop asked for while the broker opens (the first signal of `docker
// stop` or `systemctl stop` while JetStream is slow to answer) is a stop:
// Run returns nil, and the process exits 0. It returned the broker's
// "context canceled", and a supervisor took the stop for a failure of NATS.
func TestStopWhileTheBrokerOpensIsNoFailure(t *testing.T) {
	// A NATS server whose JetStream never answers: the API's requests
	// reach a subscriber that keeps them.
	ns := runNATSServer(t, &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	nc := connectNATS(t, ns.ClientURL())
	defer nc.Close()
	asked := make(chan *nats.Msg, 1)
	if _, err := nc.ChanSubscribe("$JS.API.>", asked); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	cfg := config.Default()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Stream.Transport = testTransport
	m := &Main{
		Config: cfg, Logger: slog.New(slog.DiscardHandler),
		nats: &natsbroker.Options{URLs: []string{ns.ClientURL()}},
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	select {
	case <-asked:
	case err := <-done:
		t.Fatalf("Run returned %v before asking JetStream", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not ask JetStream for its stream")
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("stopped while the broker opened: Run returned %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of the stop")
	}
}

// A stop that comes as the broker fails for its own reason (no NATS
// server at nats.url) does not hide the failure: Run returned nil, and
// the process exited 0, as for a stop while JetStream was slow. The
// context is done before Run begins; connecting takes no context, so
// its refusal is NATS's.
func TestStopWhileTheBrokerFailsStillReportsIt(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	cfg := config.Default()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Stream.Transport = testTransport
	m := &Main{
		Config: cfg, Logger: slog.New(slog.DiscardHandler),
		nats: &natsbroker.Options{URLs: []string{url}},
	}
	ctx, stop := context.WithCancel(context.Background())
	stop()
	if err := m.Run(ctx); err == nil || !strings.Contains(err.Error(), "hub broker") {
		t.Errorf("Run returned %v, want the broker's failure", err)
	}
}

// A publish whose NATS server stopped answering (hung, or cut off without
// a word) holds its connection until server.shutdown_timeout passes,
// which closes it; its answer then reaches no one, and waits only for
// the broker. Run closes the broker then, so that the publish ends, its
// access line before "stopped". It waited closedStreamsGrace for the
// publish's handler in vain, said "stopped", and the line came after it,
// from the broker's deferred close (or was lost with the exit).
func TestShutdownEndsAPublishWaitingOnAHungNATS(t *testing.T) {
	ns := startNATSServer(t)
	p := startHangingProxy(t, ns.Addr().String())
	cfg := config.Default()
	cfg.Auth.PublishTokens = []string{"tok"}
	cfg.Server.ShutdownTimeout = 500 * time.Millisecond
	var logs lockedBuffer
	url, stop := startMainReturning(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)), func(m *Main) {
		m.nats = &natsbroker.Options{URLs: []string{p.url()}, ReconnectWait: 20 * time.Millisecond, PublishTimeout: time.Minute}
	})
	if status, answer := publishOverHTTP(t, url, "tok", "a", "before"); status != http.StatusCreated {
		t.Fatalf("publish: %d %s", status, answer)
	}

	sent := p.hang()
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		req, _ := http.NewRequest("POST", url+"/api/v1/topics/a/events", strings.NewReader(`{"data": "held"}`))
		req.Header.Set("Authorization", "Bearer tok")
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-sent: // the publish is on its way to NATS, which holds it
	case <-time.After(10 * time.Second):
		t.Fatal("the publish did not reach NATS")
	}
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v", err)
	}
	<-answered
	out := logs.tail(1 << 20)
	published := strings.Index(out, `path=/api/v1/topics/a/events status=503`)
	stopped := strings.Index(out, `msg=stopped`)
	if published < 0 || stopped < 0 || published > stopped {
		t.Errorf("the held publish's access line is not logged before \"stopped\"; log:\n%s", out)
	}
}

// hangingProxy passes TCP connections on to a server until hang, after
// which it passes nothing on in either direction, as a NATS server that
// hung, or a network that dropped every packet, without closing anything.
type hangingProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	hung  chan struct{} // closed by hang
	sent  chan struct{} // closed once a client published to topic a after hang
	noted sync.Once
}

// startHangingProxy proxies to addr until the test ends.
func startHangingProxy(t *testing.T, addr string) *hangingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &hangingProxy{ln: ln, hung: make(chan struct{}), sent: make(chan struct{})}
	var pipes sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		pipes.Wait()
	})
	pipes.Go(func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", addr)
			if err != nil {
				client.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, client, server)
			p.mu.Unlock()
			pipes.Go(func() { p.pipe(server, client, true) })
			pipes.Go(func() { p.pipe(client, server, false) })
		}
	})
	return p
}

func (p *hangingProxy) url() string { return "nats://" + p.ln.Addr().String() }

// hang stops passing bytes on; the channel is closed once a client
// publishes to the subject of topic a after it.
func (p *hangingProxy) hang() <-chan struct{} {
	close(p.hung)
	return p.sent
}

// pipe copies src to dst until hang, then reads src and drops it until
// the proxy closes.
func (p *hangingProxy) pipe(dst, src net.Conn, fromClient bool) {
	b := make([]byte, 32<<10)
	for {
		n, err := src.Read(b)
		if err != nil {
			return
		}
		select {
		case <-p.hung:
			if fromClient && bytes.Contains(b[:n], []byte("PUB "+natsbroker.DefaultSubjectPrefix+".a ")) {
				p.noted.Do(func() { close(p.sent) })
			}
			continue
		default:
		}
		if _, err := dst.Write(b[:n]); err != nil {
			return
		}
	}
}
