package natsserver

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

// waitLimit bounds the tests' waits for the server: a client's
// connection (not nats.go's 2 s, nats.DefaultTimeout) and a JetStream
// request (not jetstream's 5 s), which the in-process server may take
// longer than on a loaded machine.
const waitLimit = 10 * time.Second

// TestMain checks that no goroutine of a server or of a client outlives
// the tests: stop waits for the server's, Close for the client's.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// start starts a server on dir, stopped when the test ends.
func start(t *testing.T, dir string, log *slog.Logger) (url string, stop func()) {
	t.Helper()
	url, stop, err := Start(Options{StoreDir: dir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return url, stop
}

// connectNATS connects a NATS client to url with opts, or fails the test;
// the connection has waitLimit to be made, unless opts set another.
func connectNATS(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{nats.Timeout(waitLimit)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

// connect opens a JetStream client on url, closed when the test ends; its
// requests without a deadline of their own have waitLimit.
func connect(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc := connectNATS(t, url)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(waitLimit))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestRestartKeepsStream is what nats.embedded is for: a stream written
// before a stop is there, with its messages, sequences and creation time,
// after a start on the same directory.
func TestRestartKeepsStream(t *testing.T) {
	dir := t.TempDir()
	url, stop := start(t, dir, nil)
	if !regexp.MustCompile(`^nats://[0-9a-f]{64}@127\.0\.0\.1:[1-9][0-9]*$`).MatchString(url) {
		t.Errorf("client URL %q, want nats://TOKEN@127.0.0.1:PORT", url)
	}
	js := connect(t, url)
	s, err := js.CreateStream(t.Context(), jetstream.StreamConfig{
		Name: "SSEHUB", Subjects: []string{"ssehub.>"}, Storage: jetstream.FileStorage,
	})
	if err != nil {
		t.Fatal(err)
	}
	created := s.CachedInfo().Created
	for i := range 3 {
		ack, err := js.Publish(t.Context(), "ssehub.orders.eu", fmt.Appendf(nil, "event %d", i))
		if err != nil {
			t.Fatal(err)
		}
		if ack.Sequence != uint64(i+1) {
			t.Errorf("publish %d: sequence %d", i, ack.Sequence)
		}
	}
	stop()

	url, _ = start(t, dir, nil)
	js = connect(t, url)
	s, err = js.Stream(t.Context(), "SSEHUB")
	if err != nil {
		t.Fatalf("after a restart on the same directory: %v", err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 3 || info.State.FirstSeq != 1 || info.State.LastSeq != 3 {
		t.Errorf("after restart: %d messages, sequences %d-%d; want 3, 1-3", info.State.Msgs, info.State.FirstSeq, info.State.LastSeq)
	}
	if !info.Created.Equal(created) {
		t.Errorf("creation time %v after restart, was %v: ids offset by it would change", info.Created, created)
	}
	msg, err := s.GetMsg(t.Context(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if string(msg.Data) != "event 1" || msg.Subject != "ssehub.orders.eu" {
		t.Errorf("message 2 is %q on %q", msg.Data, msg.Subject)
	}
	// The sequence goes on where it stopped.
	ack, err := js.Publish(t.Context(), "ssehub.orders.eu", []byte("event 3"))
	if err != nil || ack.Sequence != 4 {
		t.Errorf("publish after restart: %+v, %v; want sequence 4", ack, err)
	}
}

// TestClientsNeedTheToken: the server listens on the loopback address,
// which every process of the machine (of a pod, of a container on the
// host's network) reaches. A client without the token start gave ssehub
// is refused: it could read every event, whatever ssehub's subscribe
// tokens, and store events, whatever its publish tokens.
func TestClientsNeedTheToken(t *testing.T) {
	url, _ := start(t, t.TempDir(), nil)
	hostPort := strings.TrimPrefix(url, "nats://")
	if _, after, ok := strings.Cut(hostPort, "@"); ok {
		hostPort = after
	}
	for _, other := range []string{"nats://" + hostPort, "nats://wrong@" + hostPort} {
		// waitLimit: a refusal that came after nats.go's 2 s would be
		// its "nats: timeout", not the refusal.
		nc, err := nats.Connect(other, nats.NoReconnect(), nats.Timeout(waitLimit))
		if err == nil {
			nc.Close()
			t.Errorf("a client connected to %s", other)
		} else if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("connect to %s: %v, want %v", other, err, nats.ErrAuthorization)
		}
	}
	connect(t, url) // the URL start returned still connects
}

// TestStop checks that stop closes clients' connections, frees the port,
// and may be called again.
func TestStop(t *testing.T) {
	url, stop := start(t, t.TempDir(), nil)
	nc := connectNATS(t, url, nats.NoReconnect())
	defer nc.Close()
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	stop()
	stop()
	select {
	case <-closed:
	case <-time.After(waitLimit):
		t.Fatalf("the client's connection is still open %v after stop", waitLimit)
	}
	if nc2, err := nats.Connect(url); err == nil {
		nc2.Close()
		t.Error("a client connected after stop")
	}
}

func TestStartErrors(t *testing.T) {
	if _, _, err := Start(Options{}); err == nil || !strings.Contains(err.Error(), "no store directory") {
		t.Errorf("no StoreDir: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Start(Options{StoreDir: file}); err == nil || !strings.Contains(err.Error(), "store directory") {
		t.Errorf("StoreDir a file: %v", err)
	}

	// JetStream cannot make its own directory: the server's fatal error
	// comes back from Start, and the process goes on.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "jetstream"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	_, _, err := Start(Options{StoreDir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err == nil || !strings.Contains(err.Error(), "Can't start JetStream") {
		t.Errorf("jetstream a file: %v, want the server's fatal error", err)
	}
	if !strings.Contains(logs.String(), "level=ERROR msg=\"Can't start JetStream") {
		t.Errorf("the fatal error was not logged as an error:\n%s", logs.String())
	}
}

// TestStoreInUseRefused: two servers on one store (two ssehub processes
// with nats.embedded on one volume, or a new one started before the old
// one stopped) each acknowledged the same sequences with other events,
// and a restart kept one of them: acknowledged events lost. The second
// Start fails, saying why, until the first stops.
func TestStoreInUseRefused(t *testing.T) {
	dir := t.TempDir()
	_, stop := start(t, dir, nil)
	if url, stop2, err := Start(Options{StoreDir: dir}); err == nil || !strings.Contains(err.Error(), "in use") {
		if stop2 != nil {
			stop2()
		}
		t.Fatalf("a second server on the store of a running one: %q, %v; want an error saying it is in use", url, err)
	}
	stop()
	start(t, dir, nil)
}

// TestBuildsWhereTheSystemHasNoFlock: Solaris is a unix whose syscall
// package has no Flock, and nats-server builds there; the lock's file
// named it all the same, and the package (so ssehub) did not build.
func TestBuildsWhereTheSystemHasNoFlock(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	cmd := exec.Command(goTool, "build", ".")
	cmd.Env = append(os.Environ(), "GOOS=solaris", "GOARCH=amd64", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=solaris go build: %v\n%s", err, out)
	}
}

// TestLogs checks that the server logs through the given logger: its
// banner at debug level only, so an info log stays quiet.
func TestLogs(t *testing.T) {
	for _, tt := range []struct {
		level slog.Level
		want  bool
	}{{slog.LevelInfo, false}, {slog.LevelDebug, true}} {
		var logs bytes.Buffer
		_, stop := start(t, t.TempDir(), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: tt.level})))
		stop()
		got := strings.Contains(logs.String(), `msg="Starting nats-server" component=nats-server`)
		if got != tt.want {
			t.Errorf("at level %v: start-up line logged %v, want %v:\n%s", tt.level, got, tt.want, logs.String())
		}
		if tt.level == slog.LevelInfo && logs.Len() > 0 {
			t.Errorf("at level info, the server logged:\n%s", logs.String())
		}
	}
}
