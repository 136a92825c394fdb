package main

import (
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
	"github.com/ssehub/ssehub/internal/testpass"
)

// TestClusterSmokeThroughNginx runs the cluster of the README's "Running
// several instances" as binaries: one NATS server process with JetStream,
// two ssehub processes on it, and the README's nginx recipe in front of
// both. A client reads a hub subscription through nginx; the ssehub
// serving it is killed with SIGKILL mid-stream; the client reconnects
// through nginx with its Last-Event-ID, as EventSource does, lands on the
// survivor, and gets every published event exactly once, in order.
func TestClusterSmokeThroughNginx(t *testing.T) {
	requireNginx(t)
	bin := t.TempDir()
	natsBin, ssehubBin := filepath.Join(bin, "nats-server"), filepath.Join(bin, "ssehub")
	goBuild(t, natsBin, "github.com/nats-io/nats-server/v2")
	goBuild(t, ssehubBin, "./cmd/ssehub")

	// Each process listens on a port of the kernel's choosing (-p -1, port
	// 0) and logs it: a port found free beforehand could be taken by
	// another process before it binds it.
	nats := startProcess(t, nil, natsBin, "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", t.TempDir())
	natsAddr := waitLogged(t, nats, regexp.MustCompile(`Listening for client connections on (127\.0\.0\.1:\d+)`))
	waitLogged(t, nats, regexp.MustCompile(`Server is ready`))
	var hubs [2]*process
	var addrs []string
	for i := range hubs {
		hubs[i] = startProcess(t, []string{
			"SSEHUB_HUB_BROKER=nats",
			"SSEHUB_NATS_URL=nats://" + natsAddr,
			"SSEHUB_SERVER_ADDR=127.0.0.1:0",
			"SSEHUB_AUTH_PUBLISH_TOKENS=tok",
			"SSEHUB_STREAM_HEARTBEAT_INTERVAL=1s",
			"SSEHUB_STREAM_TRANSPORT=" + testTransport,
			"SSEHUB_DEMO_ENABLED=false",
		}, ssehubBin)
		addr := waitLogged(t, hubs[i], regexp.MustCompile(`msg=listening addr=(\S+)`))
		hubs[i].url = "http://" + addr
		waitReady(t, hubs[i])
		addrs = append(addrs, addr)
	}
	nginx := runNginx(t, addrs...).url

	c := &smokeClient{t: t, nginx: nginx}
	events := c.subscribe("")
	victim := waitSubscribed(t, hubs[:]...)
	c.publish(10)
	c.receive(events, 5)
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.exited
	c.receive(events, -1) // what was on its way, until the stream breaks
	c.publish(10)         // while the client is away: through nginx to the survivor

	events = c.subscribe(c.received[len(c.received)-1])
	survivor := hubs[0]
	if victim == survivor {
		survivor = hubs[1]
	}
	waitSubscribed(t, survivor)
	c.receive(events, len(c.published))
	if !slices.Equal(c.received, c.published) {
		t.Fatalf("received %q across the break, want each of %q once, in order", c.received, c.published)
	}
}

// smokeClient publishes through nginx and reads subscriptions through
// it, keeping the ids published and received.
type smokeClient struct {
	t                   *testing.T
	nginx               string
	published, received []string
}

// publish publishes n events to the topic smoke, one after another.
func (c *smokeClient) publish(n int) {
	c.t.Helper()
	for range n {
		status, id := publishOverHTTP(c.t, c.nginx, "tok", "smoke", "event "+strconv.Itoa(len(c.published)))
		if status != http.StatusCreated {
			c.t.Fatalf("publish %d through nginx: %d %s", len(c.published)+1, status, id)
		}
		c.published = append(c.published, id)
	}
}

// subscribe opens a subscription to smoke through nginx, resuming after
// lastID unless it is empty, and returns its events; the channel closes
// when the stream ends.
func (c *smokeClient) subscribe(lastID string) <-chan stream.Event {
	c.t.Helper()
	req, err := http.NewRequestWithContext(c.t.Context(), "GET", c.nginx+"/api/v1/events?topic=smoke", nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		c.t.Fatalf("subscribe through nginx: %s", resp.Status)
	}
	events := make(chan stream.Event, 100)
	go func() {
		defer close(events)
		p := stream.NewParser(resp.Body)
		for {
			ev, err := nextEvent(p)
			if err != nil {
				return
			}
			if ev.ID != "" || ev.Type != "" {
				events <- ev
			}
		}
	}()
	c.t.Cleanup(func() {
		resp.Body.Close()
		for range events { // until the reader has ended
		}
	})
	return events
}

// receive reads events until c has received n in all, or with n < 0 until
// the stream ends. Every event must be a published one.
func (c *smokeClient) receive(events <-chan stream.Event, n int) {
	c.t.Helper()
	timeout := time.After(10 * time.Second)
	for n < 0 || len(c.received) < n {
		select {
		case ev, ok := <-events:
			if !ok && n < 0 {
				return
			}
			if !ok {
				c.t.Fatalf("the stream ended after %d events, want %d; published %q, received %q", len(c.received), n, c.published, c.received)
			}
			if ev.Type != "" {
				c.t.Fatalf("event %+v, want only published events", ev)
			}
			c.received = append(c.received, ev.ID)
		case <-timeout:
			c.t.Fatalf("%d events after 10s, want %d (-1: the stream's end); published %q, received %q", len(c.received), n, c.published, c.received)
		}
	}
}

// process is a child process of the test, killed when the test ends.
type process struct {
	cmd    *exec.Cmd
	out    lockedBuffer
	exited chan struct{} // closed once the process has exited
	url    string        // an ssehub's base URL
}

// startProcess starts name with args and env (and PATH), in a directory
// of its own.
func startProcess(t *testing.T, env []string, name string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(name, args...), exited: make(chan struct{})}
	p.cmd.Dir = t.TempDir()
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.exited)
		_ = p.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("%s's output:\n%s", filepath.Base(name), p.output())
		}
	})
	return p
}

func (p *process) output() string { return p.out.tail(8 << 10) }

// waitLogged waits until p's output has a line matching re, and returns
// the match's first group (or "" if re has none). It fails the test if p
// exits first, or after 15s.
func waitLogged(t *testing.T, p *process, re *regexp.Regexp) string {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; {
		if m := re.FindStringSubmatch(p.out.String()); m != nil {
			if len(m) > 1 {
				return m[1]
			}
			return ""
		}
		select {
		case <-p.exited:
			// Its last output may have come after the look above.
			if re.MatchString(p.out.String()) {
				continue
			}
			t.Fatalf("%s exited (%s) without logging a line matching %s:\n%s", filepath.Base(p.cmd.Path), p.cmd.ProcessState, re, p.output())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s logged no line matching %s after 15s:\n%s", filepath.Base(p.cmd.Path), re, p.output())
		}
	}
}

// waitReady waits until an ssehub process answers /readyz.
func waitReady(t *testing.T, p *process) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; {
		resp, err := http.Get(p.url + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("ssehub exited before ready (%s):\n%s", p.cmd.ProcessState, p.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/readyz: %v %v after 15s:\n%s", p.url, resp, err, p.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitSubscribed waits until one of the ssehub processes counts one
// subscriber, and returns it.
func waitSubscribed(t *testing.T, hubs ...*process) *process {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		for _, h := range hubs {
			if metricValue(t, h.url, "ssehub_subscribers") == 1 {
				return h
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no ssehub counts the subscriber after 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// goBuild builds pkg, from the repository, into out, with the
// Dockerfile's CGO_ENABLED=0 and flags (buildLikeDockerfile): every binary
// the tests build then shares one set of compiled packages. Built with
// go's defaults as well, a cold build cache (a fresh CI runner) compiled
// the whole dependency tree, the NATS server's included, a second time:
// the package's tests took about 9 minutes on 2 cores instead of under 5,
// near go test's 10-minute default timeout.
//
// Each package is built once for the test process (built) and copied to
// out: go build links anew each time, some 4 s for ssehub on an idle
// machine of 2 cores and over 10 s on a loaded one, and a dozen tests in
// each of the two passes build it.
func goBuild(t *testing.T, out, pkg string) {
	t.Helper()
	built.mu.Lock()
	defer built.mu.Unlock()
	bin, ok := built.bins[pkg]
	if !ok {
		if built.dir == "" {
			dir, err := testpass.MkdirOwned(buildsPrefix)
			if err != nil {
				t.Fatal(err)
			}
			built.dir, built.bins = dir, map[string]string{}
		}
		bin = filepath.Join(built.dir, strconv.Itoa(len(built.bins)))
		cmd := exec.Command("sh", "-c", "CGO_ENABLED=0 go build "+dockerBuild(t)+` -o "$OUT" "$PKG"`)
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "OUT="+bin, "PKG="+pkg)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
		built.bins[pkg] = bin
	}
	if err := copyFile(bin, out); err != nil {
		t.Fatal(err)
	}
}

// built holds the binaries goBuild built, by package, in dir, which
// TestMain removes; a process killed before (at go test's -timeout, say)
// leaves it to the next run's removeStaleBuilds.
var built struct {
	mu   sync.Mutex
	dir  string
	bins map[string]string
}

// copyFile copies the executable from to to, in place of any file there,
// making to's folder as go build -o does.
func copyFile(from, to string) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	if err := os.Remove(to); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}
