package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/stream"
)

// nginxBinary is where Debian's nginx package puts nginx; make test
// installs it.
const nginxBinary = "/usr/sbin/nginx"

// nginxProxy is the README's nginx recipe running in front of a Main.
type nginxProxy struct {
	url      string        // nginx's base URL
	accepted *atomic.Int64 // connections ssehub has accepted
	logFile  string        // the recipe's access log
	client   *http.Client
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
// README's recipe.
func startBehindNginxEdited(t *testing.T, cfg config.Config, edits []nginxEdit) *nginxProxy {
	t.Helper()
	requireNginx(t)
	p := &nginxProxy{accepted: new(atomic.Int64)}
	upstream, _ := startMain(t, cfg, func(m *Main) {
		m.connState = func(_ net.Conn, state http.ConnState) {
			if state == http.StateNew {
				p.accepted.Add(1)
			}
		}
	})
	p.url, p.logFile = runNginxEdited(t, edits, strings.TrimPrefix(upstream, "http://"))
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

// runNginx runs nginx with the README's recipe, upstreams (host:port) as
// its upstream servers, on a free loopback port until the test ends; it
// returns nginx's base URL and the recipe's access log. The caller has
// called requireNginx.
func runNginx(t *testing.T, upstreams ...string) (url, logFile string) {
	t.Helper()
	return runNginxEdited(t, nil, upstreams...)
}

// runNginxEdited is runNginx with edits made to the README's recipe.
//
// nginx cannot listen on port 0, so the test picks a port that was free a
// moment ago; another process (a test of another package, run at the same
// time) may take it before nginx binds it. nginx then fails to start with
// "Address already in use" and runNginxEdited tries again on another port.
// It waits until the socket listening on the port is nginx's own, not until
// the port merely accepts connections: those could be another process's.
func runNginxEdited(t *testing.T, edits []nginxEdit, upstreams ...string) (url, logFile string) {
	t.Helper()
	recipe := readmeNginxRecipe(t)
	servers := ""
	for _, u := range upstreams {
		servers += "server " + u + ";\n    "
	}
	for _, r := range append([]nginxEdit{
		{"server 127.0.0.1:8111;\n    ", servers},
		{"proxy_read_timeout 1h;", "proxy_read_timeout 3s;"}, // the heartbeat (1s here) must keep streams open
	}, edits...) {
		recipe = editRecipe(t, recipe, r)
	}
	const attempts = 5
	for attempt := 1; ; attempt++ {
		url, logFile, err := startNginx(t, recipe)
		if err == nil {
			return url, logFile
		}
		if !errors.Is(err, errPortTaken) || attempt == attempts {
			t.Fatal(err)
		}
		t.Logf("trying another port after attempt %d: %v", attempt, err)
	}
}

// editRecipe makes one edit to recipe, failing the test unless recipe
// holds the old text exactly once.
func editRecipe(t *testing.T, recipe string, r nginxEdit) string {
	t.Helper()
	if n := strings.Count(recipe, r.old); n != 1 {
		t.Fatalf("the README's nginx recipe holds %q %d times, want once: update this test with the recipe", r.old, n)
	}
	return strings.Replace(recipe, r.old, r.new, 1)
}

// startNginx runs nginx with recipe, listening on a free loopback port,
// until the test ends, and returns its base URL and the recipe's access
// log once nginx listens. Its error wraps errPortTaken when nginx could
// not bind the port because another process had it.
func startNginx(t *testing.T, recipe string) (url, logFile string, err error) {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	recipe = editRecipe(t, recipe, nginxEdit{"listen 80;", "listen 127.0.0.1:" + port + ";"})
	recipe = editRecipe(t, recipe, nginxEdit{"/var/log/nginx/", dir + "/"})

	// One process (master_process off): it runs as this user, and one
	// worker means one upstream keep-alive cache.
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;

%[2]s
}
`, dir, recipe)
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
		_ = cmd.Process.Signal(syscall.SIGTERM) // fast shutdown: open streams are cut
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Error("nginx did not stop within 10s of SIGTERM")
		}
	})
	errorLog := func() string {
		log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
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
			return "http://" + addr, filepath.Join(dir, "ssehub.access.log"), nil
		}
		// nginx retries a bind that fails for a few seconds before it
		// gives up; there is no need to wait for that.
		if log := errorLog(); strings.Contains(log, "Address already in use") {
			_ = cmd.Process.Kill()
			<-exited
			return "", "", fmt.Errorf("nginx on %s: %w:\n%s", addr, errPortTaken, log)
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

// readmeNginxRecipe returns the README's one ```nginx block.
func readmeNginxRecipe(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(string(readme), "```nginx\n")
	if len(parts) != 2 {
		t.Fatalf("README.md has %d ```nginx blocks, want 1", len(parts)-1)
	}
	recipe, _, ok := strings.Cut(parts[1], "\n```")
	if !ok {
		t.Fatal("README.md: the ```nginx block does not end")
	}
	return recipe
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
	cfg.Stream.HeartbeatInterval = time.Second // below the test's proxy_read_timeout (3s)
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
			ev, err := parser.Next()
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

	// proxy_read_timeout is 3s: without heartbeats nginx would cut the
	// stream before this.
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
		{"/stream?count=2&interval=0", 1},
		{"/healthz", afterStream},
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

func TestNginxLogsNoAccessToken(t *testing.T) {
	cfg := config.Default()
	cfg.Auth.SubscribeTokens = []string{"subscribe-secret"}
	p := startBehindNginx(t, cfg)
	paths := []string{
		"/api/v1/topics?access_token=subscribe-secret",
		"/api/v1/topics?x=1&access%5Ftoken=subscribe-secret", // what Go decodes as access_token
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
	if strings.Count(log, `"GET /api/v1/topics HTTP/1.1" 200`) != 2 || !strings.Contains(log, `"GET /healthz?probe=1 HTTP/1.1" 200`) {
		t.Errorf("access log:\n%s\nwant the token requests without their query, others whole", log)
	}
}
