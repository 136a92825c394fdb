package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/stream"
	"github.com/ssehub/ssehub/internal/testpass"
	"go.uber.org/goleak"
)

// testTransport is stream.transport in this pass of the tests: every test
// that starts Main runs with each transport.
var testTransport string

// TestMain runs every test twice, once per transport (gin, then detached),
// and checks after each pass that no goroutine outlived its tests. The
// two passes share go test's -timeout (testpass), and the folder of
// the binaries the tests build is one of this process's, which the next
// run removes if this one was killed before it could (removeStaleBuilds).
func TestMain(m *testing.M) {
	// Started with SIGHUP ignored (under nohup, as a CI runner may be),
	// or SIGINT (a script's background job), the binaries the tests start
	// inherited the ignore, and the tests of that signal waited for a
	// shutdown that never came. Asking to be notified of it undoes the
	// ignore (os/signal), for this process and, as exec resets a caught
	// signal to its default, for the binaries it starts.
	for _, sig := range []os.Signal{syscall.SIGHUP, os.Interrupt} {
		if signal.Ignored(sig) {
			signal.Notify(make(chan os.Signal, 1), sig)
		}
	}
	// The tests that call t.Parallel wait on timers (heartbeats, write,
	// read and shutdown timeouts), not on the CPU: -parallel's default,
	// GOMAXPROCS, ran two at a time on a runner of two cores. Given on
	// the command line, -parallel is kept.
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		if err := flag.Set("test.parallel", "8"); err != nil {
			panic(err)
		}
	}
	removeStaleBuilds(os.TempDir())
	removeStaleDockerds(os.TempDir())
	timeout := testpass.Start()
	code := 0
	for _, transport := range []string{"gin", "detached"} {
		testTransport = transport
		if err := timeout.Next(); err != nil {
			fmt.Fprintf(os.Stderr, "transport %s: not run: %v\n", transport, err)
			code = 1
			break
		}
		fmt.Printf("=== transport %s\n", transport)
		if c := m.Run(); c != 0 {
			code = c
		}
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "transport %s: goroutines left: %v\n", transport, err)
			code = 1
		}
	}
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// startMain runs Main.Run on a free loopback port until the test ends and
// returns its base URL, https:// when cfg sets server.tls. The test fails if Run returns an error. Each hook
// may set Main's test fields before it runs.
func startMain(t *testing.T, cfg config.Config, hooks ...func(*Main)) (url string, stop func()) {
	t.Helper()
	return startMainLogging(t, cfg, slog.New(slog.DiscardHandler), hooks...)
}

// startMainLogging is startMain with Main's logger.
func startMainLogging(t *testing.T, cfg config.Config, logger *slog.Logger, hooks ...func(*Main)) (url string, stop func()) {
	t.Helper()
	url, stopRun := startMainReturning(t, cfg, logger, hooks...)
	stop = func() {
		if err := stopRun(); err != nil {
			t.Errorf("Run returned %v, want a clean shutdown", err)
		}
	}
	t.Cleanup(stop)
	return url, stop
}

// startMainReturning is startMainLogging with stop returning Run's error
// (the first call; later ones return nil) for the test to judge.
func startMainReturning(t *testing.T, cfg config.Config, logger *slog.Logger, hooks ...func(*Main)) (url string, stop func() error) {
	t.Helper()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Stream.Transport = testTransport
	ready := make(chan net.Addr, 1)
	m := &Main{Config: cfg, Logger: logger, ready: ready}
	for _, hook := range hooks {
		hook(m)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	select {
	case addr := <-ready:
		url = "http://" + addr.String()
		if cfg.Server.TLS.Enabled() {
			url = "https://" + addr.String()
		}
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	return url, stop
}

func TestRunServesAndShutsDownWithOpenStreams(t *testing.T) {
	cfg := config.Default()
	// Without ending open streams, Shutdown would wait this long and Run
	// would return its deadline error.
	cfg.Server.ShutdownTimeout = 3 * time.Second
	url, stop := startMain(t, cfg)

	resp, err := http.Get(url + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %v %v", resp, err)
	}
	resp.Body.Close()

	streamResp, err := http.Get(url + "/stream?count=5&interval=1m")
	if err != nil {
		t.Fatal(err)
	}
	defer streamResp.Body.Close()
	p := stream.NewParser(streamResp.Body)
	if _, err := nextEvent(p); err != nil {
		t.Fatal(err)
	}
	stop()
	if _, err := nextEvent(p); !errors.Is(err, io.EOF) {
		t.Errorf("stream after shutdown: %v, want its end", err)
	}
}

// When Serve fails outside a shutdown (the listener breaks), Run returns
// the error and nothing it started outlives it: open streams end, and
// TestMain finds no goroutine left.
func TestRunEndsItsStreamsWhenServeFails(t *testing.T) {
	cfg := config.Default()
	cfg.Server.Addr = "127.0.0.1:0"
	cfg.Stream.Transport = testTransport
	ready := make(chan net.Addr, 1)
	listener := make(chan net.Listener, 1)
	m := &Main{
		Config: cfg, Logger: slog.New(slog.DiscardHandler), ready: ready,
		listening: func(ln net.Listener) { listener <- ln },
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(context.Background()) }()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}

	resp, err := http.Get("http://" + addr.String() + "/stream?count=5&interval=1m")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := stream.NewParser(resp.Body)
	if _, err := nextEvent(p); err != nil {
		t.Fatal(err)
	}
	(<-listener).Close()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "serve:") {
			t.Errorf("Run returned %v, want the serve error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its listener failed")
	}
	ended := make(chan error, 1)
	go func() {
		_, err := nextEvent(p)
		ended <- err
	}()
	select {
	case err := <-ended:
		if err == nil {
			t.Errorf("stream went on after Run returned")
		}
	case <-time.After(10 * time.Second):
		resp.Body.Close() // ends the reader
		t.Errorf("stream still open 10 s after Run returned")
	}
}

func TestRunServesTheEmbeddedDemoPage(t *testing.T) {
	url, _ := startMain(t, config.Default())
	for _, path := range []string{"/", "/app.js", "/sse-client.js", "/style.css", "/vendor/vue.global.prod.js"} {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}
}

func TestRunAppliesCORSFromYAML(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ssehub.yaml")
	yaml := "cors:\n  allowed_origins: [\"https://*.example.com\"]\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load([]string{"--config", file}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	url, _ := startMain(t, cfg)
	for origin, allowed := range map[string]bool{
		"https://app.example.com":   true,
		"https://example.com":       false,
		"https://a.b.example.com":   false,
		"http://app.example.com":    false,
		"https://app.example.com.x": false,
	} {
		req, _ := http.NewRequest("GET", url+"/healthz", nil)
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := resp.Header.Get("Access-Control-Allow-Origin")
		if allowed && got != origin || !allowed && got != "" {
			t.Errorf("origin %s: Access-Control-Allow-Origin %q, allowed=%v", origin, got, allowed)
		}
	}
}

// With the default CORS headers, a page of an allowed origin may send an
// Idempotency-Key (its preflight allows it) and read the
// Idempotent-Replayed header of the answer to a retry.
func TestRunLetsPagesRetryPublishesAcrossOrigins(t *testing.T) {
	const origin, token = "https://app.example.com", "s3cret"
	cfg := config.Default()
	cfg.CORS.AllowedOrigins = []string{origin}
	cfg.Auth.PublishTokens = []string{token}
	url, _ := startMain(t, cfg)
	events := url + "/api/v1/topics/orders/events"

	req, _ := http.NewRequest("OPTIONS", events, nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,idempotency-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if allowed := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")); resp.StatusCode != http.StatusNoContent || !strings.Contains(allowed, "idempotency-key") {
		t.Fatalf("preflight: %d, Access-Control-Allow-Headers %q; want Idempotency-Key allowed", resp.StatusCode, allowed)
	}

	for i, replayed := range []string{"", "true"} {
		req, _ := http.NewRequest("POST", events, strings.NewReader(`{"data": 1}`))
		req.Header.Set("Origin", origin)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "order-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated || resp.Header.Get("Idempotent-Replayed") != replayed {
			t.Fatalf("publish %d: %d, Idempotent-Replayed %q; want 201, %q", i+1, resp.StatusCode, resp.Header.Get("Idempotent-Replayed"), replayed)
		}
		if got := resp.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(got, "Idempotent-Replayed") {
			t.Errorf("publish %d: Access-Control-Expose-Headers %q, want Idempotent-Replayed", i+1, got)
		}
	}
}

// TestRunLogsWhoMayPublish: the start-up log says in one line that the
// demo hub is open while the demo is on, and the warning about publishing
// being off does not contradict it. It warns too when anyone may subscribe
// to every topic: it said nothing of it, and the demo line named demo.>
// alone.
func TestRunLogsWhoMayPublish(t *testing.T) {
	const (
		open    = `msg="demo hub open: anyone may publish and subscribe to demo.> without a token (demo.enabled: false turns it off)"`
		subOpen = `level=WARN msg="subscribing is open: anyone may subscribe to every topic and list them`
	)
	tests := []struct {
		name          string
		demo          bool
		tokens        []string
		subTokens     []string
		want, wantNot []string
	}{
		{
			"demo on, no tokens", true, nil, nil,
			[]string{open, `level=WARN msg="publishing is off outside demo.>: set auth.publish_tokens (SSEHUB_AUTH_PUBLISH_TOKENS) or an auth.jwt key to publish`, subOpen},
			[]string{`msg="publishing is off:`},
		},
		{"demo on, tokens", true, []string{"t"}, []string{"s"}, []string{open}, []string{"publishing is off", "subscribing is open"}},
		{
			"demo off, no tokens", false, nil, nil,
			[]string{`level=WARN msg="publishing is off: set auth.publish_tokens (SSEHUB_AUTH_PUBLISH_TOKENS) or an auth.jwt key to publish`, subOpen},
			[]string{"demo hub open", "outside demo.>"},
		},
		{"demo off, publish tokens", false, []string{"t"}, nil, []string{subOpen}, []string{"demo hub open", "publishing is off"}},
		{"demo off, tokens", false, []string{"t"}, []string{"s"}, nil, []string{"demo hub open", "publishing is off", "subscribing is open"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Demo.Enabled = tt.demo
			cfg.Auth.PublishTokens = tt.tokens
			cfg.Auth.SubscribeTokens = tt.subTokens
			var out lockedBuffer
			startMainLogging(t, cfg, slog.New(slog.NewTextHandler(&out, nil)))
			log := out.tail(1 << 20)
			for _, w := range tt.want {
				if strings.Count(log, w) != 1 {
					t.Errorf("the log does not say once %s:\n%s", w, log)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(log, w) {
					t.Errorf("the log says %s:\n%s", w, log)
				}
			}
		})
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad duration", nil, map[string]string{"SSEHUB_STREAM_RETRY": "3x"}, `stream.retry`},
		{"credentials with any origin", nil, map[string]string{"SSEHUB_CORS_ALLOWED_ORIGINS": "*", "SSEHUB_CORS_ALLOW_CREDENTIALS": "true"}, "cors.allow"},
		{"malformed origin", nil, map[string]string{"SSEHUB_CORS_ALLOWED_ORIGINS": "http://a.test/path"}, `"http://a.test/path"`},
		{"missing file", []string{"--config", "does-not-exist.yaml"}, nil, "does-not-exist.yaml"},
		// A script's --config "$CFG" with CFG unset. Were it taken for no
		// file, the bad log level would fail the start instead of serving.
		{"empty config path", []string{"--config", "", "--log-level", "loud"}, nil, `ssehub: bad command line: --config ""`},
		{"bad address", []string{"--addr", "127.0.0.1:http-alt"}, nil, "server.addr"},
		{"unknown flag", []string{"--adress", ":1"}, nil, "adress"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tt.args, func(k string) string { return tt.env[k] }, &stdout, &stderr)
			if code == 0 {
				t.Fatal("exit 0, want a failure")
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q does not name %s", stderr.String(), tt.want)
			}
		})
	}
}

func TestRunReportsAnAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"--config", os.DevNull, "--addr", ln.Addr().String()}, func(string) string { return "" }, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "server.addr") || !strings.Contains(stderr.String(), ln.Addr().String()) {
		t.Errorf("exit %d, stderr %q: want a failure naming server.addr and the address", code, stderr.String())
	}
}

// TestRunStoppedWhileListeningExitsZero: a stop signal while ssehub looks
// up server.addr's host name (a slow DNS server at boot) is a stop asked
// for, exit 0 as at any other point of the start: the lookup it cut was
// reported as server.addr's failure ("lookup localhost: operation was
// canceled"), exit 1. The context is done before Run begins: the lookup
// is cut at once.
func TestRunStoppedWhileListeningExitsZero(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"--config", os.DevNull, "--addr", "localhost:0"}, func(string) string { return "" }, &stdout, &stderr)
	if code != 0 {
		t.Errorf("exit %d, stderr %q: want a clean stop, exit 0", code, stderr.String())
	}
}

// TestRunStoppedWhileListeningStillReportsTheAddressInUse: a stop signal
// that comes as listening fails for its own reason (the port taken) does
// not hide the failure: it exited 0, and a supervisor or a deploy took
// the start for a clean stop. The context is done before Run begins, and
// the address, an IP, needs no lookup that the stop could cut.
func TestRunStoppedWhileListeningStillReportsTheAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"--config", os.DevNull, "--addr", ln.Addr().String()}, func(string) string { return "" }, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "server.addr") || !strings.Contains(stderr.String(), ln.Addr().String()) {
		t.Errorf("exit %d, stderr %q: want a failure naming server.addr and the address", code, stderr.String())
	}
}

// With log.format json, a failure once the config is read is a JSON log
// line (the one a log pipeline reads), not a plain one.
func TestRunReportsAFailureInTheLogsFormat(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, format := range []string{"json", "JSON"} { // the format is read case-insensitively
		var stdout, stderr bytes.Buffer
		env := map[string]string{"SSEHUB_LOG_FORMAT": format}
		code := run(t.Context(), []string{"--config", os.DevNull, "--addr", ln.Addr().String()}, func(k string) string { return env[k] }, &stdout, &stderr)
		var line struct{ Level, Msg, Err string }
		if err := json.Unmarshal(bytes.TrimSpace(stderr.Bytes()), &line); code == 0 || err != nil || line.Level != "ERROR" || !strings.Contains(line.Err, "server.addr") {
			t.Errorf("log.format %s: exit %d, stderr %q (%v): want one JSON error line naming server.addr", format, code, stderr.String(), err)
		}
	}
}

// Config problems are reported one per line, each saying it is ssehub's.
func TestRunReportsEachConfigProblemOnItsLine(t *testing.T) {
	var stdout, stderr bytes.Buffer
	env := map[string]string{"SSEHUB_LOG_LEVEL": "loud", "SSEHUB_LOG_FORMAT": "xml"}
	if code := run(t.Context(), []string{"--config", os.DevNull}, func(k string) string { return env[k] }, &stdout, &stderr); code == 0 {
		t.Fatal("exit 0, want a failure")
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("stderr %q: want a line for each of the two problems", stderr.String())
	}
	for _, line := range lines {
		if !strings.HasPrefix(line, "ssehub: log.") {
			t.Errorf("line %q: want it to start with ssehub: and name its key", line)
		}
	}
}

func TestRunHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"--help"}, func(string) string { return "" }, &stdout, &stderr); code != 0 {
		t.Fatalf("--help: exit %d, stderr %q", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "--config") {
		t.Errorf("usage %q lacks --config", stdout.String())
	}
}

func TestHealthcheckCommand(t *testing.T) {
	url, stop := startMain(t, config.Default())
	addr := strings.TrimPrefix(url, "http://")
	env := func(k string) string {
		if k == "SSEHUB_SERVER_ADDR" {
			return addr
		}
		return ""
	}
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"healthcheck"}, env, &stdout, &stderr); code != 0 {
		t.Fatalf("healthcheck of a running server: exit %d, %s", code, stderr.String())
	}
	stop()
	stderr.Reset()
	if code := run(t.Context(), []string{"healthcheck"}, env, &stdout, &stderr); code == 0 {
		t.Fatal("healthcheck of a stopped server: exit 0")
	}
}

// With server.addr's port 0 the server listens on a port it picks at start,
// which the check cannot know: it says so, naming the key, rather than
// dialling port 0 and reporting a refused connection.
func TestHealthcheckRefusesPortZero(t *testing.T) {
	for _, addr := range []string{":0", "127.0.0.1:0", "[::]:00"} {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), []string{"healthcheck", "--config", os.DevNull, "--addr", addr}, func(string) string { return "" }, &stdout, &stderr)
		if code == 0 || !strings.Contains(stderr.String(), "server.addr") || !strings.Contains(stderr.String(), "port 0") || strings.Contains(stderr.String(), "dial") {
			t.Errorf("--addr %s: exit %d, stderr %q: want a failure naming server.addr and its port 0, not a dial error", addr, code, stderr.String())
		}
	}
}

func TestLoopbackAddr(t *testing.T) {
	for in, want := range map[string]string{
		":8111":          "127.0.0.1:8111",
		"0.0.0.0:80":     "127.0.0.1:80",
		"[::]:8111":      "127.0.0.1:8111",
		"10.1.2.3:8111":  "10.1.2.3:8111",
		"localhost:9000": "localhost:9000",
	} {
		if got := loopbackAddr(in); got != want {
			t.Errorf("loopbackAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewLoggerFollowsLevelAndFormat(t *testing.T) {
	tests := []struct {
		level, format string
		wantJSON      bool
		wantInfo      bool
	}{
		{"info", "text", false, true},
		{"warn", "json", true, false},
		{"INFO", "JSON", true, true}, // validation takes any case
		{"Debug", "Text", false, true},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		log := newLogger(config.LogConfig{Level: tt.level, Format: tt.format}, &out)
		log.Info("info line")
		log.Warn("warn line")
		got := out.String()
		if isJSON := strings.HasPrefix(got, "{"); isJSON != tt.wantJSON {
			t.Errorf("level %q format %q: %q, want JSON %v", tt.level, tt.format, got, tt.wantJSON)
		}
		if hasInfo := strings.Contains(got, "info line"); hasInfo != tt.wantInfo || !strings.Contains(got, "warn line") {
			t.Errorf("level %q: %q, want the info line %v and the warn line", tt.level, got, tt.wantInfo)
		}
	}
}

func TestListenSetsNoKeepAliveProbes(t *testing.T) {
	ln, err := listen(t.Context(), "127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw, err := conn.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var keepAlive int
	var optErr error
	if err := raw.Control(func(fd uintptr) {
		keepAlive, optErr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
	}); err != nil {
		t.Fatal(err)
	}
	if optErr != nil {
		t.Fatal(optErr)
	}
	if keepAlive != 0 {
		t.Errorf("SO_KEEPALIVE = %d on an accepted connection, want 0", keepAlive)
	}
}

// nextEvent is p.Next without the position event a live-only hub
// subscription starts with.
func nextEvent(p *stream.Parser) (stream.Event, error) {
	for {
		ev, err := p.Next()
		if err != nil || ev.Type != "position" {
			return ev, err
		}
	}
}
