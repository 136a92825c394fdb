package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"runtime"
	"testing"
	"time"
)

func TestStreamsWithin(t *testing.T) {
	for _, c := range []struct {
		maxStreams int
		limit      uint64
		want       int
	}{
		{20000, 0, 20000}, // unknown: as configured
		{20000, 1 << 20, 20000},
		{20000, 20128, 20000},
		{20000, 20127, 19999},
		{20000, 1024, 896}, // a common soft limit
		{20000, 256, 128},
		{20000, 100, 50}, // under 256 files, half are kept
		{100, 1024, 100},
	} {
		if got := streamsWithin(c.maxStreams, c.limit); got != c.want {
			t.Errorf("streamsWithin(%d, %d) = %d, want %d", c.maxStreams, c.limit, got, c.want)
		}
	}
}

// TestStreamsPastTheOpenFilesLimitAre503 runs the binary with room for 256
// open files and asks for 300 streams, keeping every connection. The
// first 128 stream, the rest are refused with 503, Retry-After and their
// connection closed, and /healthz still answers: with stream.max_streams
// (20000) as it was, the process would run out of descriptors near 250
// streams and accept no connection at all, and so it would if the 503s
// kept their connections alive.
func TestStreamsPastTheOpenFilesLimitAre503(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sets the limit with the shell's ulimit -n")
	}
	const limit, streams, allowed = 256, 300, 128
	bin := filepath.Join(t.TempDir(), "ssehub")
	goBuild(t, bin, "./cmd/ssehub")
	p := startProcess(t, []string{
		"SSEHUB_SERVER_ADDR=127.0.0.1:0",
		"SSEHUB_STREAM_TRANSPORT=" + testTransport,
		"SSEHUB_STREAM_HEARTBEAT_INTERVAL=1s",
	}, "sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0"`, limit), bin)
	addr := waitLogged(t, p, regexp.MustCompile(`msg=listening addr=(\S+)`))
	waitLogged(t, p, regexp.MustCompile(`msg="stream.max_streams lowered to what the process may open.*max_streams=20000 open_files_limit=256 reserved=128 streams=128`))

	conns := make([]net.Conn, 0, streams)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range streams {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, "GET /api/v1/events?topic=demo.files HTTP/1.1\r\nHost: ssehub\r\n\r\n"); err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
	}
	statuses := map[int]int{}
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("request %d of %d: no answer: %v (answers so far by status: %v)", i+1, streams, err, statuses)
		}
		statuses[resp.StatusCode]++
		// The test keeps every connection: a 503 closes its own, or it
		// would hold a descriptor until the idle timeout.
		if resp.StatusCode == http.StatusServiceUnavailable && (resp.Header.Get("Retry-After") == "" || !resp.Close) {
			t.Errorf("request %d: 503 with Retry-After %q, Connection: close %v; want both", i+1, resp.Header.Get("Retry-After"), resp.Close)
		}
	}
	if statuses[http.StatusOK] != allowed || statuses[http.StatusServiceUnavailable] != streams-allowed {
		t.Errorf("answers by status %v, want %d streams and %d 503s", statuses, allowed, streams-allowed)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("/healthz with %d streams open: %v", allowed, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz with %d streams open: %s", allowed, resp.Status)
	}
}
