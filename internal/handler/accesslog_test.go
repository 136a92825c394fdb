package handler

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// logBuffer collects log lines written from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestOneAccessLineAndAStreamEndLinePerStream(t *testing.T) {
	var logs logBuffer
	opts := testOptions()
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	ts := newTestServer(t, opts)
	readAll(t, ts.do(t, "GET", "/stream?count=2&access_token=secret", nil, nil).Body)
	ts.waitReturned(t, "/stream")
	ts.do(t, "GET", "/missing", nil, nil)
	ts.waitReturned(t, "/missing")

	var access, ends []string
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		switch {
		case strings.Contains(line, "msg=request "):
			access = append(access, line)
		case strings.Contains(line, `msg="stream ended"`):
			ends = append(ends, line)
		}
	}
	if len(access) != 2 || !strings.Contains(access[0], "path=/stream status=200") || !strings.Contains(access[1], "path=/missing status=404") {
		t.Errorf("access lines %q, want one per request with path and status", access)
	}
	for _, line := range access {
		if !strings.Contains(line, "remote=127.0.0.1") {
			t.Errorf("access line %q lacks the client's address", line)
		}
	}
	if len(ends) != 1 || !strings.Contains(ends[0], "events=3") || !strings.Contains(ends[0], "duration=") || !strings.Contains(ends[0], "reason=completed") {
		t.Errorf("stream end lines %q, want one with events=3, duration and reason", ends)
	}
	if strings.Contains(logs.String(), "secret") {
		t.Error("a query token reached the logs")
	}
}
