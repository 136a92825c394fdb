package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// runLogged runs the binary's run with env on a free loopback port until
// the test ends. It returns the base URL and the log lines as they come.
func runLogged(t *testing.T, env map[string]string) (url string, lines <-chan string) {
	t.Helper()
	env["SSEHUB_SERVER_ADDR"] = "127.0.0.1:0"
	env["SSEHUB_STREAM_TRANSPORT"] = testTransport
	pr, pw := io.Pipe()
	out := make(chan string, 1000) // the tests here log a few lines
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			out <- sc.Text()
		}
		close(out)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--config", os.DevNull}, func(k string) string { return env[k] }, io.Discard, pw)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("run exited %d, want 0", code)
		}
		for range out { // until the reader has seen the pipe close
		}
	})
	line := waitLine(t, out, `msg=listening`)
	_, addr, _ := strings.Cut(line, "addr=")
	addr, _, _ = strings.Cut(addr, " ")
	return "http://" + addr, out
}

// waitLine returns the next log line that holds want.
func waitLine(t *testing.T, lines <-chan string, want string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("the log ended without a line holding %q", want)
			}
			if strings.Contains(line, want) {
				return line
			}
		case <-timeout:
			t.Fatalf("no log line holding %q", want)
		}
	}
}

func TestForwardedForCountsOnlyFromATrustedProxy(t *testing.T) {
	for trusted, want := range map[string]string{
		"":          "remote=127.0.0.1", // the default: forwarding headers ignored
		"127.0.0.1": "remote=6.6.6.6",
	} {
		t.Run("trusted="+trusted, func(t *testing.T) {
			url, lines := runLogged(t, map[string]string{"SSEHUB_SERVER_TRUSTED_PROXIES": trusted})
			req, _ := http.NewRequest("GET", url+"/healthz", nil)
			req.Header.Set("X-Forwarded-For", "6.6.6.6")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			line := waitLine(t, lines, "path=/healthz")
			if !strings.HasSuffix(line, " "+want) {
				t.Errorf("X-Forwarded-For: 6.6.6.6 from 127.0.0.1, server.trusted_proxies %q: access line %q, want %s", trusted, line, want)
			}
		})
	}
}
