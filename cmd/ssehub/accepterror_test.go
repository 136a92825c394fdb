package main

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// fullListener is a listener of a process at its open files limit whose
// clients keep coming: each accept that succeeds (a connection closed
// elsewhere freed a descriptor) is followed by failures more, EMFILE,
// until total have failed; then it waits for Close.
type fullListener struct {
	failures, total int
	failed, run     int
	drained         chan struct{} // closed once total have failed
	closed          chan struct{}
}

func (l *fullListener) Accept() (net.Conn, error) {
	if l.failed < l.total && l.run < l.failures {
		l.failed++
		l.run++
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	if l.failed < l.total {
		l.run = 0
		server, client := net.Pipe()
		client.Close() // a client that leaves at once
		return server, nil
	}
	if l.drained != nil {
		close(l.drained)
		l.drained = nil
	}
	<-l.closed
	return nil, net.ErrClosed
}

func (l *fullListener) Close() error {
	select {
	case <-l.closed:
	default:
		close(l.closed)
	}
	return nil
}

func (l *fullListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8111} }

// TestAcceptErrorsRateLimited: at the open files limit net/http retries
// each failed accept after 5 ms, doubling to 1 s, and starts again at
// 5 ms after each accept that succeeds, logging every failure: with
// clients that keep coming, "http: Accept error ... too many open files"
// was a warning every few milliseconds. It is a line a second, with the
// count of failures it stands for, none lost.
func TestAcceptErrorsRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs lockedBuffer
		errLog, flush := serverErrorLog(slog.NewTextHandler(&logs, nil), nil)
		defer flush()
		srv := &http.Server{Handler: http.NotFoundHandler(), ErrorLog: errLog}
		const total = 600
		drained := make(chan struct{})
		ln := &fullListener{failures: 3, total: total, drained: drained, closed: make(chan struct{})}
		served := make(chan error, 1)
		start := time.Now()
		go func() { served <- srv.Serve(ln) }()
		<-drained
		took := time.Since(start)
		time.Sleep(2 * acceptErrorWindow) // the last window's line
		synctest.Wait()
		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Fatalf("Serve: %v", err)
		}
		lines, counted := 0, 0
		count := regexp.MustCompile(` count=(\d+)`)
		for line := range strings.Lines(logs.String()) {
			if !strings.Contains(line, "Accept error") {
				continue
			}
			lines++
			if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "too many open files") {
				t.Errorf("line %q, want a warning that names the error", line)
			}
			n := 1
			if m := count.FindStringSubmatch(line); m != nil {
				n, _ = strconv.Atoi(m[1])
			}
			counted += n
		}
		if most := int(took/acceptErrorWindow) + 2; lines > most {
			t.Errorf("%d Accept error lines in %v, want at most %d, one a second", lines, took, most)
		}
		if counted != total {
			t.Errorf("the lines count %d failed accepts, want %d", counted, total)
		}
	})
}
