package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/stream"
	"github.com/ssehub/ssehub/internal/testpki"
)

// nginxBinary is where Debian's nginx package puts nginx; make test
// installs it.
const nginxBinary = "/usr/sbin/nginx"

// nginxProxy is the README's nginx recipe running in front of a Main.
type nginxProxy struct {
	*nginxProcess
	upstream string        // ssehub's base URL
	accepted *atomic.Int64 // connections ssehub has accepted
	client   *http.Client
}

// nginxProcess is an nginx the test runs.
type nginxProcess struct {
	url     string // its base URL
	logFile string // the recipe's access log
	errLog  string // its error log
	pid     int    // its master process, or its only one
	tlsAddr string // host:port of its NGINX_TLS_PORT, if its conf has one
}

// startBehindNginx runs Main with cfg, and nginx with the README's recipe
// in front of it, on free loopback ports, until the test ends.
func startBehindNginx(t *testing.T, cfg config.Config) *nginxProxy {
	t.Helper()
	return startBehindNginxEdited(t, cfg, nil)
}

// nginxEdit replaces old, which the README's recipe holds once, with new.
type nginxEdit struct{ old, new string }

// startBehindNginxEdited is startBehindNginx with edits made to the
// README's recipe, and hooks run on Main before it runs (startMain's).
func startBehindNginxEdited(t *testing.T, cfg config.Config, edits []nginxEdit, hooks ...func(*Main)) *nginxProxy {
	t.Helper()
	requireNginx(t)
	p := &nginxProxy{accepted: new(atomic.Int64)}
	upstream, _ := startMain(t, cfg, append([]func(*Main){countAccepted(p.accepted)}, hooks...)...)
	p.upstream = upstream
	p.nginxProcess = runNginxEdited(t, edits, strings.TrimPrefix(upstream, "http://"))
	p.client = &http.Client{Transport: &http.Transport{}}
	t.Cleanup(p.client.CloseIdleConnections)
	return p
}

// requireNginx skips the test when nginxBinary is not installed.
func requireNginx(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(nginxBinary); err != nil {
		t.Skipf("%s is not installed (Debian package nginx; make test installs it): %v", nginxBinary, err)
	}
}

// runNginx runs nginx with the README's two nginx blocks (the main
// context's lines, then the recipe in the http block), upstreams
// (host:port) as its upstream servers, on a free loopback port until the
// test ends. The caller has called requireNginx.
func runNginx(t *testing.T, upstreams ...string) *nginxProcess {
	t.Helper()
	return runNginxEdited(t, nil, upstreams...)
}

// runNginxEdited is runNginx with edits made to its nginx.conf: the
// README's blocks in the test's frame (nginxFrame).
//
// nginx cannot listen on port 0, so the test picks a port that was free a
// moment ago; another process (a test of another package, run at the same
// time) may take it before nginx binds it. nginx then fails to start with
// "Address already in use" and runNginxEdited tries again on another port.
// It waits until the socket listening on the port is nginx's own, not until
// the port merely accepts connections: those could be another process's.
func runNginxEdited(t *testing.T, edits []nginxEdit, upstreams ...string) *nginxProcess {
	t.Helper()
	servers := ""
	for _, u := range upstreams {
		servers += "server " + u + ";\n    "
	}
	conf := fmt.Sprintf(nginxFrame, readmeNginxMain(t), readmeNginxRecipe(t))
	// Both upstream blocks, ssehub and ssehub_streams, list the servers.
	const server = "server 127.0.0.1:8111;\n    "
	if n := strings.Count(conf, server); n != 2 {
		t.Fatalf("the nginx.conf made of the README's blocks holds %q %d times, want twice (upstream ssehub and ssehub_streams): update this test with the README", server, n)
	}
	conf = strings.ReplaceAll(conf, server, servers)
	for _, r := range append([]nginxEdit{
		nginxReadTimeoutScaled(t, conf),
	}, edits...) {
		conf = editRecipe(t, conf, r)
	}
	const attempts = 5
	for attempt := 1; ; attempt++ {
		n, err := startNginx(t, conf)
		if err == nil {
			return n
		}
		if !errors.Is(err, errPortTaken) || attempt == attempts {
			t.Fatal(err)
		}
		t.Logf("trying another port after attempt %d: %v", attempt, err)
	}
}

// nginxReadTimeoutScaled edits the recipe's proxy_read_timeout for the
// tests' heartbeat, stream.heartbeat_interval 1s (nginxReadTimeoutFor).
func nginxReadTimeoutScaled(t *testing.T, conf string) nginxEdit {
	t.Helper()
	return nginxReadTimeoutFor(t, conf, time.Second)
}

// nginxReadTimeoutFor edits the recipe's proxy_read_timeout for a
// heartbeat: the recipe's divided by the default heartbeat (15s), times
// heartbeat, so that it keeps the recipe's ratio of the two. nginx gives
// up on a silent ssehub after it, and a healthy stream must outlive it.
func nginxReadTimeoutFor(t *testing.T, conf string, heartbeat time.Duration) nginxEdit {
	t.Helper()
	m := regexp.MustCompile(`proxy_read_timeout (\d+[smh]);`).FindStringSubmatch(conf)
	if m == nil {
		t.Fatal("the README's recipe has no proxy_read_timeout in seconds, minutes or hours: update this test")
	}
	timeout, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatal(err)
	}
	scaled := time.Duration(float64(timeout) * float64(heartbeat) / float64(config.Default().Stream.HeartbeatInterval))
	return nginxEdit{m[0], fmt.Sprintf("proxy_read_timeout %dms;", scaled.Milliseconds())}
}

// editRecipe makes one edit to recipe, failing the test unless recipe
// holds the old text exactly once.
func editRecipe(t *testing.T, recipe string, r nginxEdit) string {
	t.Helper()
	if n := strings.Count(recipe, r.old); n != 1 {
		t.Fatalf("the nginx.conf made of the README's blocks holds %q %d times, want once: update this test with the README", r.old, n)
	}
	return strings.Replace(recipe, r.old, r.new, 1)
}

// nginxFrame is the nginx.conf the tests run, around the README's main
// context lines and its recipe (the http block's); NGINX_DIR stands for a
// directory of the test's. It runs one process (master_process off): it
// runs as this user, and one worker means one upstream keep-alive cache.
// A test that reloads nginx edits in a master process and one worker.
const nginxFrame = `daemon off;
master_process off;
pid NGINX_DIR/nginx.pid;
error_log NGINX_DIR/error.log info;
%s
http {
    client_body_temp_path NGINX_DIR/client_body;
    proxy_temp_path NGINX_DIR/proxy;
    fastcgi_temp_path NGINX_DIR/fastcgi;
    uwsgi_temp_path NGINX_DIR/uwsgi;
    scgi_temp_path NGINX_DIR/scgi;

%s
}
`

// startNginx runs nginx with conf (nginxFrame's, edited), listening on a
// free loopback port, until the test ends, and returns it once it listens.
// A second port, for a second listen line, is NGINX_TLS_PORT in conf: it
// is picked afresh on each attempt, as the first is, and never the same
// number. Its error wraps errPortTaken when nginx could not bind a port
// because another process had it.
func startNginx(t *testing.T, conf string) (*nginxProcess, error) {
	t.Helper()
	dir := t.TempDir()
	ports := freePorts(t, 2)
	port, tlsPort := ports[0], ports[1]
	conf = editRecipe(t, conf, nginxEdit{"listen 80;", "listen 127.0.0.1:" + port + ";"})
	conf = strings.ReplaceAll(conf, "NGINX_TLS_PORT", tlsPort)
	conf = editRecipe(t, conf, nginxEdit{"/var/log/nginx/", dir + "/"})
	conf = strings.ReplaceAll(conf, "NGINX_DIR", dir)
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var output lockedBuffer
	cmd := exec.Command(nginxBinary, "-p", dir+"/", "-e", filepath.Join(dir, "error.log"), "-c", confFile)
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		// SIGTERM is a fast shutdown: open streams are cut. nginx without
		// a master process looks for a signal after each wait for events,
		// so one that arrives just before a wait (while nginx is busy) is
		// seen only at the next event, which may never come: send it again
		// until nginx exits.
		stuck := time.After(10 * time.Second)
		for {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
				return
			case <-time.After(500 * time.Millisecond):
			case <-stuck:
				_ = cmd.Process.Kill()
				<-exited
				t.Error("nginx did not stop within 10s of SIGTERM")
				return
			}
		}
	})
	n := &nginxProcess{
		logFile: filepath.Join(dir, "ssehub.access.log"),
		errLog:  filepath.Join(dir, "error.log"),
		pid:     cmd.Process.Pid,
		tlsAddr: "127.0.0.1:" + tlsPort,
	}
	errorLog := func() string {
		log, _ := os.ReadFile(n.errLog)
		return output.String() + string(log)
	}
	addr := "127.0.0.1:" + port
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := listensOn(cmd.Process.Pid, addr)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			n.url = "http://" + addr
			return n, nil
		}
		// nginx retries a bind that fails for a few seconds before it
		// gives up; there is no need to wait for that.
		if log := errorLog(); strings.Contains(log, "Address already in use") {
			_ = cmd.Process.Kill()
			<-exited
			return nil, fmt.Errorf("nginx on %s: %w:\n%s", addr, errPortTaken, log)
		}
		select {
		case <-exited:
			t.Fatalf("nginx exited before listening on %s:\n%s", addr, errorLog())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not listen on %s after 10s:\n%s", addr, errorLog())
		}
	}
}

// readmeNginxRecipe returns the README's recipe: its ```nginx block for
// nginx's http context, the one with the upstream.
func readmeNginxRecipe(t *testing.T) string {
	t.Helper()
	return readmeNginxBlock(t, "upstream ssehub {")
}

// readmeNginxMain returns the README's ```nginx block for nginx's main
// context, the one with the events block.
func readmeNginxMain(t *testing.T) string {
	t.Helper()
	return readmeNginxBlock(t, "\nevents {") // not a location ending in "events {"
}

// readmeNginxBlock returns the one of the README's two ```nginx blocks
// that holds marker.
func readmeNginxBlock(t *testing.T, marker string) string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(string(readme), "```nginx\n")
	if len(parts) != 3 {
		t.Fatalf("README.md has %d ```nginx blocks, want 2: the main context's lines and the http context's recipe", len(parts)-1)
	}
	var found []string
	for _, part := range parts[1:] {
		block, _, ok := strings.Cut(part, "\n```")
		if !ok {
			t.Fatal("README.md: a ```nginx block does not end")
		}
		if strings.Contains(block, marker) {
			found = append(found, block)
		}
	}
	if len(found) != 1 {
		t.Fatalf("README.md has %d ```nginx blocks holding %q, want 1", len(found), marker)
	}
	return found[0]
}

// get sends a GET through nginx; the body is closed when the test ends.
func (p *nginxProxy) get(t *testing.T, path string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", p.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s through nginx: %v", path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s through nginx: %s", path, resp.Status)
	}
	return resp
}

func TestNginxPassesEventsOneByOne(t *testing.T) {
	cfg := config.Default()
	cfg.Stream.HeartbeatInterval = time.Second // below the test's proxy_read_timeout (nginxReadTimeoutScaled)
	requireFirstLineWhileOpen(t, startBehindNginx(t, cfg))
}

// The README: ssehub's X-Accel-Buffering: no turns nginx's buffering off
// for a stream even without the recipe's proxy_buffering off. Buffering
// and gzip together (Go's client asks for gzip) hold the stream back;
// either alone, in nginx 1.22, does not. The header makes nginx pass each
// chunk on at once, flushing gzip.
func TestNginxPassesEventsOneByOneDespiteProxyBufferingAndGzip(t *testing.T) {
	cfg := config.Default()
	cfg.Stream.HeartbeatInterval = time.Second
	requireFirstLineWhileOpen(t, startBehindNginxEdited(t, cfg, []nginxEdit{
		{"proxy_buffering off;", "proxy_buffering on;"},
		{"gzip off;", "gzip on; gzip_types text/event-stream;"},
	}))
}

// requireFirstLineWhileOpen asks p for a demo stream whose second line
// comes a minute after the first, and requires the first line, then a
// heartbeat, within 10s: the stream is still open then, so the proxy
// passed the line on instead of holding it until the stream ended. (A
// heartbeat a second would take far longer than 10s to fill nginx's
// buffers.)
func requireFirstLineWhileOpen(t *testing.T, p *nginxProxy) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	type item struct {
		line      bool // the first "Streamed line"
		heartbeat bool // a comment
		err       error
	}
	items := make(chan item)
	done := make(chan struct{})
	defer func() {
		cancel() // ends the request, and with it the reader
		<-done
	}()
	go func() {
		defer close(done)
		send := func(it item) bool {
			select {
			case items <- it:
				return true
			case <-ctx.Done():
				return false
			}
		}
		req, err := http.NewRequestWithContext(ctx, "GET", p.url+"/stream?count=2&interval=60s", nil)
		if err != nil {
			send(item{err: err})
			return
		}
		resp, err := p.client.Do(req)
		if err != nil {
			send(item{err: err})
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			send(item{err: fmt.Errorf("status %s", resp.Status)})
			return
		}
		parser := stream.NewParser(resp.Body)
		parser.OnComment = func(string) { send(item{heartbeat: true}) }
		for {
			ev, err := nextEvent(parser)
			if err != nil {
				send(item{err: err})
				return
			}
			if strings.HasPrefix(ev.Data, "Streamed line") && !send(item{line: true}) {
				return
			}
		}
	}()

	deadline := time.After(10 * time.Second)
	line := false
	for {
		select {
		case it := <-items:
			switch {
			case it.err != nil:
				t.Fatalf("the stream through nginx ended (line arrived: %v): %v", line, it.err)
			case it.line && line:
				t.Fatal("the second line arrived within 10s; want it a minute after the first")
			case it.line:
				line = true
			case it.heartbeat && line:
				return // the first line arrived, and the stream is still open
			}
		case <-deadline:
			t.Fatalf("after 10s (line arrived: %v), want the first line and then a heartbeat: nginx holds the stream back", line)
		}
	}
}

func TestNginxKeepsAnIdleSubscriptionOpen(t *testing.T) {
	t.Parallel() // its own server; it waits on timers, not the CPU
	cfg := config.Default()
	cfg.Stream.HeartbeatInterval = time.Second
	cfg.Auth.PublishTokens = []string{"publish-token"}
	p := startBehindNginx(t, cfg)
	resp := p.get(t, "/api/v1/events?topic=idle")
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		resp.Body.Close()
		for range lines { // until the reader has ended
		}
	})

	// proxy_read_timeout is 4s (nginxReadTimeoutScaled): without
	// heartbeats nginx would cut the stream before this.
	heartbeats := 0
	idle := time.After(5 * time.Second)
	for waiting := true; waiting; {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("the stream ended after %d heartbeats, before 5s", heartbeats)
			}
			if strings.HasPrefix(line, ":") {
				heartbeats++
			}
		case <-idle:
			waiting = false
		}
	}
	if heartbeats < 3 {
		t.Errorf("%d heartbeats through nginx in 5s, want one a second", heartbeats)
	}

	req, _ := http.NewRequestWithContext(t.Context(), "POST", p.url+"/api/v1/topics/idle/events", strings.NewReader(`{"data": "after 5s"}`))
	req.Header.Set("Authorization", "Bearer publish-token")
	req.Header.Set("Content-Type", "application/json")
	pub, err := p.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pub.Body.Close()
	if pub.StatusCode != http.StatusCreated {
		t.Fatalf("publish through nginx: %s", pub.Status)
	}
	timeout := time.After(5 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("the stream ended before the event published after 5s")
			}
			if line == "data: after 5s" {
				return
			}
		case <-timeout:
			t.Fatal("the event published after 5s did not arrive")
		}
	}
}

func TestNginxReusesUpstreamConnections(t *testing.T) {
	p := startBehindNginx(t, config.Default())
	// A stream ended by the detached transport closes its connection.
	afterStream := int64(1)
	if testTransport == "detached" {
		afterStream = 2
	}
	for i, step := range []struct {
		path string
		want int64 // connections ssehub has accepted after the request
	}{
		{"/healthz", 1},
		{"/healthz", 1},
		// Streams have an upstream block, and so idle connections, of
		// their own (ssehub_streams).
		{"/stream?count=2&interval=0", 2},
		{"/stream?count=2&interval=0", 1 + afterStream},
		{"/healthz", 1 + afterStream},
	} {
		resp := p.get(t, step.path)
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := p.accepted.Load(); got != step.want {
			t.Errorf("request %d (%s): ssehub has accepted %d connections from nginx, want %d", i+1, step.path, got, step.want)
		}
	}
}

// TestNginxPassesPublishesUpToTheHubsCap: a publish body within
// hub.max_event_bytes (here 2 MiB; it may be up to 16 MiB) reaches ssehub
// through the recipe, and one past it gets ssehub's own 413, in JSON.
// With nginx's default client_max_body_size (1 MiB), nginx refused every
// body above 1 MiB itself, with an HTML page, whatever the cap.
func TestNginxPassesPublishesUpToTheHubsCap(t *testing.T) {
	const maxEventBytes = 2 << 20
	cfg := hubTestConfig()
	cfg.Hub.MaxEventBytes = maxEventBytes
	// The recipe's proxy_read_timeout, not the tests' 4 s: no stream
	// here waits on heartbeats, and a loaded machine (-race) took longer
	// than 4 s to answer the 2 MiB publish, which nginx answered 502.
	scaled := nginxReadTimeoutScaled(t, readmeNginxRecipe(t))
	p := startBehindNginxEdited(t, cfg, []nginxEdit{{scaled.new, scaled.old}})
	for _, c := range []struct {
		bodyBytes int
		want      int
	}{
		{maxEventBytes - 1024, http.StatusCreated},
		{maxEventBytes + 1024, http.StatusRequestEntityTooLarge},
	} {
		data := strings.Repeat("b", c.bodyBytes-len(`{"data":""}`))
		req := publishRequest(t, p.url+"/api/v1/topics/big/events", `{"data":"`+data+`"}`)
		resp, body := doRead(t, p.client, req)
		if resp.StatusCode != c.want {
			t.Errorf("a body of %d bytes through nginx: %s, want %d: %.200s", c.bodyBytes, resp.Status, c.want, body)
			continue
		}
		if c.want != http.StatusCreated {
			var answer struct{ Error string }
			if err := json.Unmarshal(body, &answer); err != nil || answer.Error == "" {
				t.Errorf("a body of %d bytes through nginx: %s %.200q, want ssehub's JSON error", c.bodyBytes, resp.Status, body)
			}
		}
	}
}

// TestNginxSetsTheClientsAddress: the recipe replaces the X-Forwarded-For
// a client sends with the address nginx sees. Appended to it instead
// ($proxy_add_x_forwarded_for), the client's value came first, and ssehub,
// which reads the list from the right past the addresses it trusts, logged
// the client's choice whenever the client's own address was trusted, as
// here (127.0.0.1: nginx's and the client's).
func TestNginxSetsTheClientsAddress(t *testing.T) {
	cfg := config.Default()
	cfg.Server.TrustedProxies = []string{"127.0.0.1"}
	var log lockedBuffer
	p := startBehindNginxEdited(t, cfg, nil, func(m *Main) {
		m.Logger = slog.New(slog.NewTextHandler(&log, nil))
	})
	req, err := http.NewRequestWithContext(t.Context(), "GET", p.url+"/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("X-Real-IP", "7.7.7.7")
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz through nginx: %s", resp.Status)
	}
	// ssehub writes the access line before its answer leaves: nginx has
	// passed it on, so the line is there.
	line := ""
	for l := range strings.Lines(log.String()) {
		if strings.Contains(l, "path=/healthz") {
			line = strings.TrimSpace(l)
		}
	}
	if !strings.HasSuffix(line, " remote=127.0.0.1") {
		t.Errorf("access line %q, want remote=127.0.0.1: the address nginx saw, not one the client sent", line)
	}
}

func TestNginxLogsNoAccessToken(t *testing.T) {
	cfg := config.Default()
	cfg.Auth.SubscribeTokens = []string{"subscribe-secret"}
	p := startBehindNginx(t, cfg)
	paths := []string{
		"/api/v1/topics?access_token=subscribe-secret",
		// What Go decodes as access_token too: any of its letters may
		// be percent-encoded, in either case of hex digit.
		"/api/v1/topics?x=1&access%5Ftoken=subscribe-secret",
		"/api/v1/topics?%61ccess_token=subscribe-secret",
		"/api/v1/topics?x=1&%61%63%63%65%73%73%5f%74%6F%6B%65%6E=subscribe-secret",
		"/healthz?probe=1",
	}
	for _, path := range paths {
		resp := p.get(t, path)
		resp.Body.Close()
	}
	// nginx writes a request's line once it has answered it.
	var log string
	for deadline := time.Now().Add(5 * time.Second); strings.Count(log, "\n") < len(paths); {
		b, _ := os.ReadFile(p.logFile)
		log = string(b)
		if time.Now().After(deadline) {
			t.Fatalf("access log %q: want %d lines", log, len(paths))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(log, "subscribe-secret") {
		t.Errorf("the access log records the token:\n%s", log)
	}
	if strings.Count(log, `"GET /api/v1/topics HTTP/1.1" 200`) != len(paths)-1 || !strings.Contains(log, `"GET /healthz?probe=1 HTTP/1.1" 200`) {
		t.Errorf("access log:\n%s\nwant the token requests without their query, others whole", log)
	}
}

// TestNginxHoldsManyStreams holds 1000 subscriptions through one nginx
// worker, run as installed (a master process, which applies
// worker_rlimit_nofile to its worker) with the README's main context
// lines, and delivers an event to each. With worker_connections at
// Debian's 768 (or the official image's 1024), nginx would refuse or cut
// the streams past about 380 (510): each holds two of its connections;
// and with a soft limit of 1024 files and no worker_rlimit_nofile, past
// about 500.
func TestNginxHoldsManyStreams(t *testing.T) {
	const streams = 1000
	cfg := config.Default()
	cfg.Stream.HeartbeatInterval = time.Second
	cfg.Auth.PublishTokens = []string{"tok"}
	// nginx may raise its limit only up to its hard limit where it lacks
	// the privilege (not root, or a container): this process's, which it
	// inherits. The recipe's 65536 is then edited down to it.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	files := min(65536, lim.Max)
	if files < 2*streams+64 {
		t.Skipf("a hard limit of %d open files is too low for nginx to hold %d streams", lim.Max, streams)
	}
	p := startBehindNginxEdited(t, cfg, []nginxEdit{
		asInstalled,
		{"worker_rlimit_nofile 65536;", fmt.Sprintf("worker_rlimit_nofile %d;", files)},
	})
	if log, _ := os.ReadFile(p.errLog); strings.Contains(string(log), "setrlimit(RLIMIT_NOFILE") {
		t.Fatalf("nginx could not apply worker_rlimit_nofile %d:\n%s", files, log)
	}

	type subscriber struct {
		conn   net.Conn
		events *stream.Parser
	}
	subs := make([]subscriber, 0, streams)
	t.Cleanup(func() {
		for _, s := range subs {
			s.conn.Close()
		}
	})
	addr := strings.TrimPrefix(p.url, "http://")
	for i := range streams {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("stream %d: %v", i+1, err)
		}
		subs = append(subs, subscriber{conn: conn})
		if _, err := io.WriteString(conn, "GET /api/v1/events?topic=many HTTP/1.1\r\nHost: nginx\r\n\r\n"); err != nil {
			t.Fatalf("stream %d: %v", i+1, err)
		}
	}
	for i := range subs {
		s := &subs[i]
		_ = s.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(s.conn), nil)
		if err != nil {
			log, _ := os.ReadFile(p.errLog)
			t.Fatalf("stream %d of %d through nginx: %v\nnginx's error log:\n%s", i+1, streams, err, lastLines(string(log), 5))
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d of %d through nginx: %s", i+1, streams, resp.Status)
		}
		s.events = stream.NewParser(resp.Body)
	}
	for deadline := time.Now().Add(10 * time.Second); metricValue(t, p.upstream, "ssehub_subscribers") != streams; {
		if time.Now().After(deadline) {
			t.Fatalf("ssehub counts %v subscribers after 10s, want %d", metricValue(t, p.upstream, "ssehub_subscribers"), streams)
		}
		time.Sleep(20 * time.Millisecond)
	}

	status, id := publishOverHTTP(t, p.url, "tok", "many", "to all")
	if status != http.StatusCreated {
		t.Fatalf("publish through nginx: %d %s", status, id)
	}
	for i, s := range subs {
		_ = s.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			ev, err := nextEvent(s.events)
			if err != nil {
				t.Fatalf("stream %d of %d: %v before the event", i+1, streams, err)
			}
			if ev.ID != "" {
				if ev.ID != id || ev.Data != "to all" {
					t.Fatalf("stream %d of %d: event %+v, want id %s, data \"to all\"", i+1, streams, ev, id)
				}
				break
			}
		}
	}
	if log, _ := os.ReadFile(p.errLog); strings.Contains(string(log), "worker_connections are not enough") {
		t.Errorf("nginx's error log says worker_connections are not enough:\n%s", lastLines(string(log), 5))
	}
}

// asInstalled runs nginx as installed: a master process and, here, one
// worker. nginx ignores user, with a warning, where the test is not root.
var asInstalled = nginxEdit{"master_process off;", "master_process on;\nworker_processes 1;\nuser root;"}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// subscribeBehindInstalledNginx runs ssehub (heartbeats every second,
// publish token "tok") behind nginx as installed, its
// worker_shutdown_timeout at 2s, and subscribes through it with c.
func subscribeBehindInstalledNginx(t *testing.T) (*nginxProxy, *smokeClient, <-chan stream.Event) {
	t.Helper()
	cfg := config.Default()
	cfg.Stream.HeartbeatInterval = time.Second
	cfg.Auth.PublishTokens = []string{"tok"}
	p := startBehindNginxEdited(t, cfg, []nginxEdit{
		asInstalled,
		{"worker_shutdown_timeout 30s;", "worker_shutdown_timeout 2s;"},
	})
	c := &smokeClient{t: t, nginx: p.url}
	return p, c, c.subscribe("")
}

// signalHoldsTheStream sends sig to nginx p, as installed with its
// worker_shutdown_timeout at 2s, and waits until events, c's stream through
// it, ends: within 10s, and not within a second of the signal (what), as
// it would if nginx cut it at once rather than at worker_shutdown_timeout.
func signalHoldsTheStream(t *testing.T, p *nginxProxy, c *smokeClient, events <-chan stream.Event, sig syscall.Signal, what string) {
	t.Helper()
	if err := syscall.Kill(p.pid, sig); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	c.receive(events, -1) // fails unless the stream ends within 10s
	if took := time.Since(sent); took < time.Second {
		log, _ := os.ReadFile(p.errLog)
		t.Fatalf("the stream ended %v after %s, want about worker_shutdown_timeout (2s) after it:\n%s", took, what, lastLines(string(log), 10))
	}
}

// TestNginxReloadEndsTheOldWorkersStreams reloads nginx, as installed (a
// master process and a worker), with a subscription open through it. The
// old worker holds the stream until worker_shutdown_timeout (2s here, the
// README's 30s) and then closes it; without that line it would hold it for
// as long as the client stays. The client resumes through the new worker
// with its Last-Event-ID and misses nothing published meanwhile.
func TestNginxReloadEndsTheOldWorkersStreams(t *testing.T) {
	p, c, events := subscribeBehindInstalledNginx(t)
	for deadline := time.Now().Add(10 * time.Second); metricValue(t, p.upstream, "ssehub_subscribers") != 1; {
		if time.Now().After(deadline) {
			t.Fatal("ssehub counts no subscriber after 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.publish(3)
	c.receive(events, 3)

	signalHoldsTheStream(t, p, c, events, syscall.SIGHUP, "the reload")
	// The publishes' keep-alive connections were the old worker's too.
	http.DefaultClient.CloseIdleConnections()
	c.publish(3) // while the client is away
	events = c.subscribe(c.received[len(c.received)-1])
	c.receive(events, len(c.published))
	if !slices.Equal(c.received, c.published) {
		t.Fatalf("received %q across the reload, want each of %q once, in order", c.received, c.published)
	}
}

// TestNginxAnswersAnEventStreamWhileSsehubIsDown: with nothing listening
// upstream, the recipe answers a GET that accepts text/event-stream with
// 200, only a retry: field and CORS headers for the page's origin, which
// has an EventSource try again; a CORS preflight gets nginx's consent; every
// other request gets a 502 with a JSON error, as ssehub's own, which the
// page's origin may read. (nginx's own 502 was an HTML page without CORS
// headers, and its 502 to a preflight stopped the publish unsent: either
// way a page on another origin saw its publish fail as a network error.)
func TestNginxAnswersAnEventStreamWhileSsehubIsDown(t *testing.T) {
	requireNginx(t)
	n := runNginx(t, refusingAddr(t)) // nothing listens there
	do := func(method, path, accept string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, n.url+path, strings.NewReader(`{"data": 1}`))
		if err != nil {
			t.Fatal(err)
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		req.Header.Set("Origin", "https://page.example")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}

	for _, path := range []string{"/api/v1/events?topic=a", "/stream"} {
		resp, body := do("GET", path, "text/event-stream")
		if resp.StatusCode != http.StatusOK || body != ": ssehub is unreachable\nretry: 5000\n\n" ||
			resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Cache-Control") != "no-cache" ||
			resp.Header.Get("Access-Control-Allow-Origin") != "https://page.example" {
			t.Errorf("GET %s accepting text/event-stream, ssehub down: %s %q %v; want 200, an event stream of the unreachable comment and retry: 5000, for the page's origin",
				path, resp.Status, body, resp.Header)
		}
	}
	for _, r := range []struct{ method, path, accept string }{
		{"GET", "/api/v1/events?topic=a", ""},
		{"GET", "/healthz", "application/json"},
		{"POST", "/api/v1/topics/a/events", "application/json"},
		{"POST", "/api/v1/topics/a/events", ""},
		{"POST", "/api/v1/topics/a/events", "application/json, text/event-stream"},
		{"POST", "/stream", "text/event-stream"},
	} {
		resp, body := do(r.method, r.path, r.accept)
		var answer struct{ Error string }
		if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Content-Type") != "application/json" ||
			json.Unmarshal([]byte(body), &answer) != nil || answer.Error == "" ||
			resp.Header.Get("Access-Control-Allow-Origin") != "https://page.example" {
			t.Errorf("%s %s (Accept %q), ssehub down: %s %q %v, want a 502 with a JSON error, for the page's origin",
				r.method, r.path, r.accept, resp.Status, body, resp.Header)
		}
	}

	// A page's publish asks first (a CORS preflight): nginx consents, for
	// this once, so that the publish is sent and gets the JSON 502.
	req, err := http.NewRequestWithContext(t.Context(), "OPTIONS", n.url+"/api/v1/topics/a/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", "https://page.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,idempotency-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := resp.Header; resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "https://page.example" ||
		h.Get("Access-Control-Allow-Methods") != "POST" || h.Get("Access-Control-Allow-Headers") != "authorization,content-type,idempotency-key" ||
		h.Get("Access-Control-Max-Age") != "0" {
		t.Errorf("a CORS preflight for a publish, ssehub down: %s %v, want 204 allowing the method and headers asked for, not to be cached", resp.Status, h)
	}
}

// TestNginxPassesTheLargestSubscription: a subscription within the hub's
// bounds (hub.max_topics_per_subscription topics of 255 bytes each) with
// a token as long as ssehub's bound on a request head leaves room for (a
// JWT of tens of KiB, many claims), in the query as an EventSource sends it
// or in Authorization as a program does, passes the recipe to ssehub, as
// it passes when sent to ssehub directly: ssehub takes a request head of up
// to 64 KiB (maxHeaderBytes), so nginx must take a request line or a header
// of that length. With nginx's default buffers (8 KiB), and with the 32 KiB
// the recipe had, nginx refused both itself: 414 and 400, with an HTML page.
func TestNginxPassesTheLargestSubscription(t *testing.T) {
	var topics []string
	for i := range config.Default().Hub.MaxTopicsPerSubscription {
		topics = append(topics, "topic="+fmt.Sprintf("t%02d.", i)+strings.Repeat("x", stream.MaxTopicLen-4))
	}
	topicQuery := strings.Join(topics, "&")
	// What is left of the head for the token once the topics, the
	// request's other headers and nginx's own (Host, X-Forwarded-For) are
	// in: 2 KiB is plenty for those.
	token := strings.Repeat("t", maxHeaderBytes-len(topicQuery)-len("GET /api/v1/events?&access_token= HTTP/1.1\r\n")-2<<10)
	cfg := config.Default()
	cfg.Auth.SubscribeTokens = []string{token}
	p := startBehindNginx(t, cfg)
	for _, c := range []struct {
		name          string
		query, header string
	}{
		{"token in the query", topicQuery + "&access_token=" + token, ""},
		{"token in Authorization", topicQuery, "Bearer " + token},
	} {
		for _, base := range []string{p.upstream, p.url} {
			req, err := http.NewRequestWithContext(t.Context(), "GET", base+"/api/v1/events?"+c.query, nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.header != "" {
				req.Header.Set("Authorization", c.header)
			}
			resp, err := p.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				via := "directly"
				if base == p.url {
					via = "through nginx"
				}
				t.Errorf("%s: a subscription %s (a query of %d bytes, a token of %d): %s, want 200", c.name, via, len(c.query), len(token), resp.Status)
			}
		}
	}
}

// TestNginxAnswersABodyPastItsCapInJSON: a publish past nginx's own cap
// (client_max_body_size, 16 MiB, the highest hub.max_event_bytes) never
// reaches ssehub; nginx answers its 413 as ssehub answers one past
// hub.max_event_bytes: in JSON, readable by the page's origin. nginx's
// own 413 was an HTML page without CORS headers, so a page on another
// origin saw a network error instead.
func TestNginxAnswersABodyPastItsCapInJSON(t *testing.T) {
	cfg := hubTestConfig()
	cfg.CORS.AllowedOrigins = []string{"https://page.example"}
	p := startBehindNginx(t, cfg)
	for _, bodyBytes := range []int{cfg.Hub.MaxEventBytes + 1024, 16<<20 + 1024} {
		data := strings.Repeat("b", bodyBytes-len(`{"data":""}`))
		req := publishRequest(t, p.url+"/api/v1/topics/big/events", `{"data":"`+data+`"}`)
		req.Header.Set("Origin", "https://page.example")
		resp, body := doRead(t, p.client, req)
		var answer struct{ Error string }
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
			json.Unmarshal(body, &answer) != nil || answer.Error == "" ||
			resp.Header.Get("Access-Control-Allow-Origin") != "https://page.example" {
			t.Errorf("a body of %d bytes through nginx: %s %.200q %v, want a 413 with a JSON error, for the page's origin",
				bodyBytes, resp.Status, body, resp.Header)
		}
	}
}

// TestNginxMetricsLocation runs the README's location for /metrics ("Before
// production") in the recipe's server block, allowing this host: it passes
// /metrics on with the address nginx sees in X-Forwarded-For, as the
// recipe's location / does. A location sets none of the proxy_set_header
// lines of another, so without its own the client's X-Forwarded-For went
// through as sent, and ssehub, trusting nginx, logged the client's choice.
func TestNginxMetricsLocation(t *testing.T) {
	readme := readRepoFile(t, "README.md")
	m := regexp.MustCompile("`(location = /metrics \\{[^`]*\\})`").FindStringSubmatch(readme)
	if m == nil {
		t.Fatal("README.md: no `location = /metrics { ... }`")
	}
	location := strings.Replace(m[1], "allow 10.0.0.0/8;", "allow 127.0.0.1;", 1)
	if location == m[1] {
		t.Fatalf("README.md's %s does not allow 10.0.0.0/8: update this test", m[1])
	}
	cfg := config.Default()
	cfg.Server.TrustedProxies = []string{"127.0.0.1"}
	var log lockedBuffer
	p := startBehindNginxEdited(t, cfg, []nginxEdit{{"    location / {", "    " + location + "\n\n    location / {"}}, func(m *Main) {
		m.Logger = slog.New(slog.NewTextHandler(&log, nil))
	})
	req, err := http.NewRequestWithContext(t.Context(), "GET", p.url+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "ssehub_subscribers ") {
		t.Fatalf("GET /metrics through nginx: %s %.200q, want ssehub's metrics", resp.Status, body)
	}
	line := ""
	for l := range strings.Lines(log.String()) {
		if strings.Contains(l, "path=/metrics") {
			line = strings.TrimSpace(l)
		}
	}
	if !strings.HasSuffix(line, " remote=127.0.0.1") {
		t.Errorf("access line %q, want remote=127.0.0.1: the address nginx saw, not one the client sent", line)
	}
}

// nginxGiveUpWithin is how long a test waits for nginx to give up on a
// hung ssehub: the recipe's proxy_read_timeout as the tests run it (4s,
// nginxReadTimeoutScaled), and room to spare.
const nginxGiveUpWithin = 8 * time.Second

// startHungUpstream listens on a loopback port and accepts connections,
// but never reads from them or answers, as a hung ssehub would, until the
// test ends. It returns its host:port.
func startHungUpstream(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return l.Addr().String()
}

// TestNginxGivesUpOnAHungSsehub: an ssehub that takes connections and
// never answers (a hung process, not a stopped one) is given up after the
// recipe's proxy_read_timeout, four heartbeats (60s of the default 15s, 4s
// here): a subscription then gets the stand-in, whose retry: has an
// EventSource try again, and a publish nginx's JSON error. With the
// recipe's former 1h, both waited an hour, and an EventSource showed
// nothing all that time.
func TestNginxGivesUpOnAHungSsehub(t *testing.T) {
	t.Parallel() // its own server; it waits on timers, not the CPU
	requireNginx(t)
	n := runNginx(t, startHungUpstream(t))
	for _, r := range []struct {
		method, path, accept string
		status               int
		body                 string
	}{
		{"GET", "/api/v1/events?topic=a", "text/event-stream", http.StatusOK, ": ssehub is unreachable\nretry: 5000\n\n"},
		{"POST", "/api/v1/topics/a/events", "", http.StatusBadGateway, `{"error": "ssehub is unreachable: try again in a moment"}` + "\n"},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), nginxGiveUpWithin)
		req, err := http.NewRequestWithContext(ctx, r.method, n.url+r.path, strings.NewReader(`{"data": 1}`))
		if err != nil {
			t.Fatal(err)
		}
		if r.accept != "" {
			req.Header.Set("Accept", r.accept)
		}
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("%s %s to a hung ssehub through nginx: %v after %v, want nginx to give up within %v", r.method, r.path, err, time.Since(start).Round(time.Millisecond), nginxGiveUpWithin)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != r.status || string(body) != r.body {
			t.Errorf("%s %s to a hung ssehub through nginx: %s %q, want %d %q", r.method, r.path, resp.Status, body, r.status, r.body)
		}
	}
}

// TestNginxPassesASubscriptionOnFromAHungReplica: of two replicas, one
// hung, a subscription that nginx sends to the hung one reaches the other
// once nginx gives up on the first (proxy_read_timeout; nginx passes a GET
// on to the next server after a timeout).
func TestNginxPassesASubscriptionOnFromAHungReplica(t *testing.T) {
	t.Parallel() // its own server; it waits on timers, not the CPU
	requireNginx(t)
	cfg := config.Default()
	cfg.Stream.HeartbeatInterval = time.Second
	upstream, _ := startMain(t, cfg)
	// nginx sends its first request to the first server.
	n := runNginx(t, startHungUpstream(t), strings.TrimPrefix(upstream, "http://"))
	resp := subscribeWithin(t, n.url, nginxGiveUpWithin, "a subscription through nginx, one replica hung")
	ev, err := stream.NewParser(resp.Body).Next()
	if err != nil || ev.Type != "position" {
		t.Fatalf("a subscription through nginx, one replica hung: %s, first event %+v (%v), want ssehub's position", resp.Status, ev, err)
	}
}

// startFullReplicas runs n ssehub replicas of one NATS JetStream, each
// taking one stream at most (stream.max_streams), and fills the first
// full of them with a subscription to topic a, held until the test ends.
// It returns the replicas' host:ports and the streams held.
func startFullReplicas(t *testing.T, n, full int) ([]string, []*stream.Parser) {
	t.Helper()
	ns := startNATSServer(t)
	cfg := hubTestConfig()
	cfg.Hub.Broker = "nats"
	cfg.NATS.URL = []string{ns.ClientURL()}
	cfg.Stream.HeartbeatInterval = time.Second
	cfg.Stream.MaxStreams = 1
	var addrs []string
	var held []*stream.Parser
	for i := range n {
		url, _ := startMain(t, cfg)
		addrs = append(addrs, strings.TrimPrefix(url, "http://"))
		if i >= full {
			continue
		}
		resp := subscribeWithin(t, url, 5*time.Second, "a subscription to a replica")
		p := stream.NewParser(resp.Body)
		if ev, err := p.Next(); resp.StatusCode != http.StatusOK || err != nil || ev.Type != "position" {
			t.Fatalf("a subscription to replica %d: %s, first event %+v (%v), want its position", i+1, resp.Status, ev, err)
		}
		held = append(held, p)
	}
	return addrs, held
}

// TestNginxPassesASubscriptionOnFromAFullReplica: of two replicas, one
// full (stream.max_streams; its NATS away or shutting down answer the same
// 503), a subscription that nginx sends to it reaches the other, which has
// room: the recipe passes a subscription on after a 503. It passed
// ssehub's 503 to the client instead, and an EventSource stops for good
// on it. Once both are full, nginx has set both aside for subscriptions
// (max_fails=1, fail_timeout=10s), and an event stream gets the stand-in,
// whose retry: has an EventSource try again.
func TestNginxPassesASubscriptionOnFromAFullReplica(t *testing.T) {
	requireNginx(t)
	addrs, _ := startFullReplicas(t, 2, 1)
	// nginx sends its first request to the first server.
	n := runNginx(t, addrs...)
	resp := subscribeWithin(t, n.url, 5*time.Second, "a subscription through nginx, one replica full")
	ev, err := stream.NewParser(resp.Body).Next()
	if resp.StatusCode != http.StatusOK || err != nil || ev.Type != "position" {
		t.Fatalf("a subscription through nginx, one replica full: %s, first event %+v (%v), want the other replica's position", resp.Status, ev, err)
	}

	// That subscription fills the other replica too.
	resp = subscribeWithin(t, n.url, 5*time.Second, "a subscription through nginx, every replica full")
	body := readBody(t, resp)
	if want := ": ssehub is unreachable\nretry: 5000\n\n"; resp.StatusCode != http.StatusOK || string(body) != want {
		t.Errorf("a subscription through nginx, every replica full: %s %q, want nginx's stand-in: 200 %q", resp.Status, body, want)
	}
}

// TestNginxPassesATickerStreamOnFromAFullReplica: the demo's ticker
// (GET /stream, on by default, so in the compose cluster too) is a stream
// of stream.max_streams as a subscription is, and an EventSource stops on
// its 503 as well: of two replicas, one full, nginx passes it on to the
// other. It passed the full one's 503 to the client.
func TestNginxPassesATickerStreamOnFromAFullReplica(t *testing.T) {
	requireNginx(t)
	addrs, _ := startFullReplicas(t, 2, 1)
	// nginx sends its first request to the first server.
	n := runNginx(t, addrs...)
	resp, err := http.Get(n.url + "/stream?count=1&interval=0")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "data: Streamed line 0\n") {
		t.Errorf("the ticker through nginx, one replica full: %s %q, want the other replica's stream", resp.Status, body)
	}
}

// TestNginxPassesTheLast503OfASubscription: with every replica full and
// none set aside yet, nginx tries each, and the client gets the last one's
// 503, ssehub's JSON with its Retry-After, as the README says. With one
// upstream server, as in the README's recipe, nginx never sets it aside:
// each subscription gets ssehub's 503.
func TestNginxPassesTheLast503OfASubscription(t *testing.T) {
	requireNginx(t)
	addrs, _ := startFullReplicas(t, 2, 2)
	for _, c := range []struct {
		what          string
		upstreams     []string
		subscriptions int
	}{
		{"every replica full, none set aside", addrs, 1},
		{"its one upstream server full", addrs[:1], 3},
	} {
		n := runNginx(t, c.upstreams...)
		for i := range c.subscriptions {
			what := fmt.Sprintf("subscription %d through nginx, %s", i+1, c.what)
			resp := subscribeWithin(t, n.url, 5*time.Second, what)
			body := readBody(t, resp)
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"error"`) {
				t.Errorf("%s: %s %v %q, want ssehub's JSON 503 with Retry-After", what, resp.Status, resp.Header, body)
			}
		}
	}
}

// TestNginxPassesNoPublishOnAfterA503: of two replicas, the first with its
// NATS out of reach, a publish it answers 503 comes to the client with its
// Retry-After, and is not passed on to the other, as the README says:
// proxy_next_upstream's http_503 is the event streams' location's only,
// and nginx passes a POST it has sent to no second server.
func TestNginxPassesNoPublishOnAfterA503(t *testing.T) {
	requireNginx(t)
	ns := startNATSServer(t)
	cfg := hubTestConfig()
	cfg.Hub.Broker = "nats"
	cfg.NATS.URL = []string{ns.ClientURL()}
	away, _ := startMain(t, cfg)
	accepted := new(atomic.Int64)
	other, _ := startMain(t, hubTestConfig(), countAccepted(accepted))
	ns.Shutdown()
	// Once the first replica knows, it answers a publish 503 at once.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(away + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz of a replica whose NATS stopped: %s after 10s, want 503", resp.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// nginx sends its first request to the first server.
	n := runNginx(t, strings.TrimPrefix(away, "http://"), strings.TrimPrefix(other, "http://"))
	resp, body := doRead(t, http.DefaultClient, publishRequest(t, n.url+"/api/v1/topics/orders/events", `{"data": "order 42"}`))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || accepted.Load() != 0 {
		t.Errorf("a publish through nginx, the first replica's NATS away: %s %q %v, the other replica accepted %d connections; want the first's 503 with Retry-After, and none",
			resp.Status, body, resp.Header, accepted.Load())
	}
}

// TestNginxStoresAPublishWhileEveryReplicaIsFull: the replicas nginx sets
// aside after their 503s are set aside for subscriptions only. With both
// replicas full of streams, and both set aside for subscriptions, a
// publish through nginx is stored, and reaches the streams held. With
// proxy_next_upstream http_503 on the one upstream of every request, the
// publish found no replica left and got nginx's JSON 502.
func TestNginxStoresAPublishWhileEveryReplicaIsFull(t *testing.T) {
	requireNginx(t)
	addrs, held := startFullReplicas(t, 2, 1)
	n := runNginx(t, addrs...)
	// The first subscription fills the second replica; the second finds
	// both full, and has nginx set both aside for subscriptions.
	for i, want := range []int{http.StatusOK, http.StatusOK} {
		resp := subscribeWithin(t, n.url, 5*time.Second, "a subscription through nginx")
		if resp.StatusCode != want {
			t.Fatalf("subscription %d through nginx: %s, want %d", i+1, resp.Status, want)
		}
		if i == 0 {
			p := stream.NewParser(resp.Body)
			if ev, err := p.Next(); err != nil || ev.Type != "position" {
				t.Fatalf("subscription 1 through nginx: first event %+v (%v), want the second replica's position", ev, err)
			}
			held = append(held, p)
		}
	}
	for i := range 2 {
		resp, body := doRead(t, http.DefaultClient, publishRequest(t, n.url+"/api/v1/topics/a/events", fmt.Sprintf(`{"data": "order %d"}`, i)))
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("publish %d through nginx, every replica full of streams: %s %q, want 201", i+1, resp.Status, body)
		}
	}
	for i, p := range held {
		for j := range 2 {
			ev, err := p.Next()
			for err == nil && ev.Type == "" && ev.Data == "" {
				ev, err = p.Next() // a heartbeat
			}
			if want := fmt.Sprintf("order %d", j); err != nil || ev.Data != want {
				t.Fatalf("stream %d held: %+v (%v), want the event %q", i+1, ev, err, want)
			}
		}
	}
}

// TestNginxHTTP2StreamsAsSsehubs: with the README's lines for HTTP/2 to
// browsers, a page's HTTP/2 streams on its connection to nginx are capped
// by nginx's http2_max_concurrent_streams, not by ssehub's cap, which the
// README quotes (250, Go's default); nginx's own default is 128, and a
// page's 129th EventSource waited. The lines set nginx's to ssehub's: both
// announce the same SETTINGS_MAX_CONCURRENT_STREAMS.
func TestNginxHTTP2StreamsAsSsehubs(t *testing.T) {
	requireNginx(t)
	pki := testpki.New(t)
	ssehub, _ := startMain(t, tlsTestConfig(pki))
	want := http2MaxConcurrentStreams(t, strings.TrimPrefix(ssehub, "https://"), pki)
	n := runNginxEdited(t, []nginxEdit{
		{"    large_client_header_buffers", readmeNginxTLSLines(t, "NGINX_TLS_PORT", pki) + "    large_client_header_buffers"},
	}, refusingAddr(t)) // no upstream: the settings come first
	if got := http2MaxConcurrentStreams(t, n.tlsAddr, pki); got != want {
		t.Errorf("nginx with the README's TLS lines announces %d concurrent streams per connection, ssehub %d: want the same", got, want)
	}
}

// readmeNginxTLSLines returns the README's lines for HTTP/2 to browsers,
// indented for the recipe's server block, for the installed nginx: on
// port, with pki's certificate, and before nginx 1.25.1 as their comments
// say (http2 on the listen line).
func readmeNginxTLSLines(t *testing.T, port string, pki testpki.PKI) string {
	t.Helper()
	_, block, ok := strings.Cut(readRepoFile(t, "README.md"), "In the `server` block, replace `listen 80;` with:\n\n```\n")
	if !ok {
		t.Fatal("README.md: no block of lines for HTTP/2 to browsers after \"In the `server` block, replace `listen 80;` with:\"")
	}
	block, _, _ = strings.Cut(block, "```")
	out, err := exec.Command(nginxBinary, "-v").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -v: %v: %s", err, out)
	}
	var major, minor, patch int
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "nginx version: nginx/%d.%d.%d", &major, &minor, &patch); err != nil {
		t.Fatalf("nginx -v: %q: %v", out, err)
	}
	before1251 := major == 1 && (minor < 25 || minor == 25 && patch < 1)
	lines := ""
	for line := range strings.Lines(block) {
		directive, _, _ := strings.Cut(line, "#")
		directive = strings.TrimSpace(directive)
		switch {
		case directive == "listen 443 ssl;" && before1251:
			directive = "listen 127.0.0.1:" + port + " ssl http2;"
		case directive == "listen 443 ssl;":
			directive = "listen 127.0.0.1:" + port + " ssl;"
		case directive == "http2 on;" && before1251:
			continue
		case strings.HasPrefix(directive, "ssl_certificate "):
			directive = "ssl_certificate " + pki.CertFile + ";"
		case strings.HasPrefix(directive, "ssl_certificate_key "):
			directive = "ssl_certificate_key " + pki.KeyFile + ";"
		}
		lines += "    " + directive + "\n"
	}
	return lines
}

// http2MaxConcurrentStreams connects to addr over TLS with HTTP/2, trusting
// pki's CA, and returns the SETTINGS_MAX_CONCURRENT_STREAMS of the server's
// first SETTINGS frame.
func http2MaxConcurrentStreams(t *testing.T, addr string, pki testpki.PKI) uint32 {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pki.Roots, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatalf("%s: %v", addr, err)
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("%s: ALPN chose %q, want h2", addr, p)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	// The client's preface: its magic, then an empty SETTINGS frame.
	if _, err := io.WriteString(conn, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	for {
		var header [9]byte // length (3 bytes), type, flags, stream id (4)
		if _, err := io.ReadFull(r, header[:]); err != nil {
			t.Fatalf("%s: reading its frames: %v", addr, err)
		}
		payload := make([]byte, int(header[0])<<16|int(header[1])<<8|int(header[2]))
		if _, err := io.ReadFull(r, payload); err != nil {
			t.Fatalf("%s: reading its frames: %v", addr, err)
		}
		const typeSettings, flagAck, settingMaxConcurrentStreams = 4, 1, 3
		if header[3] != typeSettings || header[4]&flagAck != 0 {
			continue
		}
		for s := payload; len(s) >= 6; s = s[6:] {
			if binary.BigEndian.Uint16(s) == settingMaxConcurrentStreams {
				return binary.BigEndian.Uint32(s[2:])
			}
		}
		t.Fatalf("%s: its SETTINGS set no SETTINGS_MAX_CONCURRENT_STREAMS (no limit)", addr)
	}
}

// startDroppingUpstream listens on a loopback port until the test ends and
// reads one request on each connection it accepts, its body included, then
// closes the connection without answering, as an ssehub killed after
// taking a publish would. It returns its host:port and the count of the
// requests it took.
func startDroppingUpstream(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	took := new(atomic.Int64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if req, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
				_, _ = io.Copy(io.Discard, req.Body)
				took.Add(1)
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return l.Addr().String(), took
}

// TestNginxPassesNoPublishOnToAnotherReplica: of two replicas, a publish
// that the first took and never answered (it closed the connection, as a
// replica killed or stopping would) is answered with nginx's JSON 502, and
// is not passed on to the other: nginx sends a POST to no second server
// once it has sent it to one, since the first may have stored it. The
// README says so, and to retry such a publish with its Idempotency-Key: the
// retry reaches the other replica.
func TestNginxPassesNoPublishOnToAnotherReplica(t *testing.T) {
	requireNginx(t)
	dropping, took := startDroppingUpstream(t)
	accepted := new(atomic.Int64)
	upstream, _ := startMain(t, hubTestConfig(), countAccepted(accepted))
	// nginx sends its first request to the first server.
	n := runNginx(t, dropping, strings.TrimPrefix(upstream, "http://"))
	publish := func() (int, string) {
		t.Helper()
		req := publishRequest(t, n.url+"/api/v1/topics/orders/events", `{"data": "order 42"}`)
		req.Header.Set("Idempotency-Key", "order-42")
		resp, body := doRead(t, http.DefaultClient, req)
		return resp.StatusCode, string(body)
	}
	if status, body := publish(); status != http.StatusBadGateway || !strings.Contains(body, `"error"`) {
		t.Fatalf("a publish through nginx whose replica closed without answering: %d %q, want nginx's JSON 502", status, body)
	}
	if took.Load() != 1 || accepted.Load() != 0 {
		t.Fatalf("the replica that closed took %d requests, the other accepted %d connections; want the publish taken by the first only", took.Load(), accepted.Load())
	}
	if status, body := publish(); status != http.StatusCreated {
		t.Fatalf("the publish's retry through nginx: %d %q, want 201 from the other replica", status, body)
	}
}

// startUnansweringUpstream listens on a loopback port whose queue of
// connections to accept is full, until the test ends: the kernel drops
// every further SYN unanswered, as for a host that went away without a
// word (powered off, cut off by the network). It returns its host:port.
func startUnansweringUpstream(t *testing.T) string {
	t.Helper()
	fd, addr := boundSocket(t)
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	// Nothing accepts: connect until the queue is full, and a connect
	// gets no answer.
	for i := 0; ; i++ {
		conn, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			if netErr, ok := errors.AsType[net.Error](err); !ok || !netErr.Timeout() {
				t.Fatal(err)
			}
			return addr
		}
		t.Cleanup(func() { conn.Close() })
		if i == 16 {
			t.Fatalf("%s took 16 connections without accepting one: its queue is not full", addr)
		}
	}
}

// TestNginxGivesUpOnAnUnansweredConnect: an ssehub whose host went away
// without a word never answers nginx's connect; nginx gives up after the
// recipe's proxy_connect_timeout (5s), and a subscription gets the
// stand-in (with several upstream servers, nginx tries the next one
// first). At nginx's default, 60s, every EventSource sent there waited a
// minute, showing nothing.
func TestNginxGivesUpOnAnUnansweredConnect(t *testing.T) {
	t.Parallel() // its own server; it waits on timers, not the CPU
	requireNginx(t)
	n := runNginx(t, startUnansweringUpstream(t))
	resp := subscribeWithin(t, n.url, 8*time.Second, "a subscription through nginx to an ssehub that answers no connect")
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK || string(body) != ": ssehub is unreachable\nretry: 5000\n\n" {
		t.Errorf("a subscription through nginx to an ssehub that answers no connect: %s %q, want the stand-in", resp.Status, body)
	}
}

// subscribeWithin subscribes to topic a through nginx at url, within d
// for the answer and its body; what names the case in the failure.
func subscribeWithin(t *testing.T, url string, d time.Duration, what string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", url+"/api/v1/events?topic=a", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v after %v, want an answer within %v", what, err, time.Since(start).Round(time.Millisecond), d)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// doRead sends req with client and returns its answer and its body, read
// to the end and closed.
func doRead(t *testing.T, client *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp, readBody(t, resp)
}

// readBody reads resp's body to its end.
func readBody(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// countAccepted is a hook for startMain that counts in n the connections
// the server accepts.
func countAccepted(n *atomic.Int64) func(*Main) {
	return func(m *Main) {
		m.connState = func(_ net.Conn, state http.ConnState) {
			if state == http.StateNew {
				n.Add(1)
			}
		}
	}
}

// publishRequest is a publish of body to url, a topic's events, with the
// hub's test token.
func publishRequest(t *testing.T, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+hubTestToken)
	return req
}
