package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/internal/handler"
)

// runJSON runs ssebench with args plus -json and -quiet and decodes the
// report.
func runJSON(t *testing.T, args ...string) (Report, int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append(args, "-json", "-quiet", "-timeout", "60s")
	code := run(t.Context(), args, &stdout, &stderr)
	var rep Report
	if code != 2 {
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatalf("exit %d, stdout is not a JSON report: %v\n%s\nstderr: %s", code, err, stdout.Bytes(), stderr.Bytes())
		}
	}
	return rep, code, stderr.String()
}

func newDemoServer(t *testing.T) *httptest.Server {
	t.Helper()
	h := handler.New(handler.Options{Demo: handler.DemoOptions{Enabled: true, TickerCount: 3}})
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		h.Close()
		srv.Close()
	})
	return srv
}

func TestTickerScenario(t *testing.T) {
	srv := newDemoServer(t)
	rep, code, stderr := runJSON(t, "-url", srv.URL, "-scenario", "ticker", "-n", "20", "-count", "3", "-interval", "0s")
	if code != 0 {
		t.Fatalf("exit %d, want 0; aborted %q; stderr: %s", code, rep.Aborted, stderr)
	}
	c, d := rep.Connect, rep.Delivery
	if c == nil || d == nil {
		t.Fatalf("report without connect or delivery: %+v", rep)
	}
	if c.Attempted != 20 || c.Connected != 20 || c.Failed != 0 || c.Time.Count != 20 {
		t.Errorf("connect = %+v, want 20 of 20 connected, none failed", *c)
	}
	if d.Expected != 60 || d.Delivered != 60 || d.Missing != 0 || d.Dropped != 0 {
		t.Errorf("delivery = %+v, want 60 of 60 delivered, none dropped", *d)
	}
	if rep.Server.Source != "/metrics" || rep.Server.RSSPeak <= 0 || rep.Server.GoroutinesIdle <= 0 {
		t.Errorf("server = %+v, want RSS and goroutines read from /metrics", rep.Server)
	}
}

func TestTickerScenarioQueryCount(t *testing.T) {
	srv := newDemoServer(t)
	// The query's count overrides the server's 3.
	rep, code, stderr := runJSON(t, "-url", srv.URL, "-n", "4", "-count", "5", "-interval", "1ms")
	if code != 0 || rep.Delivery == nil || rep.Delivery.Delivered != 20 || rep.Delivery.Expected != 20 {
		t.Fatalf("exit %d, delivery %+v, want 20 of 20; stderr: %s", code, rep.Delivery, stderr)
	}
}

func TestTickerScenarioReportsRefusedConnections(t *testing.T) {
	srv := newDemoServer(t)
	// count above the server's bound: every request gets a 400.
	rep, code, _ := runJSON(t, "-url", srv.URL, "-n", "5", "-count", "20000", "-interval", "0s")
	if code != 1 {
		t.Errorf("exit %d, want 1 when no stream opens", code)
	}
	if rep.Connect == nil || rep.Connect.Failed != 5 || rep.Connect.Connected != 0 {
		t.Fatalf("connect = %+v, want 5 failed", rep.Connect)
	}
	if len(rep.Connect.Errors) != 1 || !strings.Contains(rep.Connect.Errors[0].Error, "status 400") {
		t.Errorf("connect errors = %+v, want one kind naming status 400", rep.Connect.Errors)
	}
}

func TestTickerScenarioCountsStreamsCutShort(t *testing.T) {
	// A server that ends the stream after one event, without the close
	// event: every stream counts as dropped.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "id: 0\ndata: Streamed line 0\n\n")
	}))
	defer srv.Close()
	rep, code, _ := runJSON(t, "-url", srv.URL, "-n", "3", "-count", "2", "-interval", "0s", "-no-metrics")
	if code != exitFailed || rep.Aborted != "" || rep.Failed == "" {
		t.Errorf("exit %d, aborted %q, failed %q; want %d: the run itself completed, but lost events", code, rep.Aborted, rep.Failed, exitFailed)
	}
	d := rep.Delivery
	if d == nil || d.Delivered != 3 || d.Expected != 6 || d.Missing != 3 || d.Dropped != 3 {
		t.Fatalf("delivery = %+v, want 3 of 6 delivered and 3 streams dropped", d)
	}
	if len(d.DropErrors) != 1 || !strings.Contains(d.DropErrors[0].Error, errServerClosed.Error()) {
		t.Errorf("drop errors = %+v, want %q", d.DropErrors, errServerClosed)
	}
}

func TestRunRefusesRemoteURL(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"-url", "http://192.0.2.1:8111"}, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "-allow-remote") {
		t.Errorf("exit %d, stderr %q; want 2 and a hint at -allow-remote", code, stderr.String())
	}
}

// A -pid with no process behind it (a typo, a server that already
// exited) is refused before the run, rather than giving a run without
// the server's RSS and CPU.
func TestRunRefusesAPIDWithoutAProcess(t *testing.T) {
	srv := newDemoServer(t)
	gone := exec.Command("sleep", "60")
	if err := gone.Start(); err != nil {
		t.Fatal(err)
	}
	_ = gone.Process.Kill()
	_ = gone.Wait()
	_, code, stderr := runJSON(t, "-url", srv.URL, "-n", "2", "-count", "3", "-interval", "0s",
		"-pid", strconv.Itoa(gone.Process.Pid))
	if code != 2 || !strings.Contains(stderr, "-pid") {
		t.Errorf("exit %d, stderr %q; want 2 and why -pid is refused", code, stderr)
	}
}
