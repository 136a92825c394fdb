package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// An accepted connection has TCP_USER_TIMEOUT at what listen was given
// (stream.write_timeout in Run), inherited from the listening socket: a
// client gone without a word is dropped once a heartbeat goes
// unacknowledged that long.
func TestListenSetsTheUserTimeout(t *testing.T) {
	for _, tt := range []struct {
		unacked time.Duration
		want    int // milliseconds; 0 is the system's default
	}{
		{10 * time.Second, 10000},
		{1500 * time.Millisecond, 1500},
		{0, 0},
	} {
		ln, err := listen(t.Context(), "127.0.0.1:0", tt.unacked)
		if err != nil {
			t.Fatal(err)
		}
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := conn.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var got int
		var optErr error
		if err := raw.Control(func(fd uintptr) {
			got, optErr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
		}); err != nil || optErr != nil {
			t.Fatal(err, optErr)
		}
		if got != tt.want {
			t.Errorf("listen with %v: TCP_USER_TIMEOUT %d ms on an accepted connection, want %d", tt.unacked, got, tt.want)
		}
		conn.Close()
		client.Close()
		ln.Close()
	}
}

// TCP_USER_TIMEOUT bounds a closed receive window too (Linux since 5.11):
// a client alive and acknowledging every zero-window probe, that only
// stopped reading, has its connection ended by the kernel once its window
// has stayed closed that long, while none of the server's writes blocked
// (what it writes waits in the kernel's send buffer). So stream.write_timeout,
// which bounds a blocked write, is not what drops such a client unless the
// server's writes fill that buffer first; README says so.
func TestUserTimeoutEndsALiveClientThatStopsReading(t *testing.T) {
	const unacked = time.Second
	ln, err := listen(t.Context(), "127.0.0.1:0", unacked)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// A small receive buffer closes the window after a few writes.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096)
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	client, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// The client never reads. The server writes a little at a time, each
	// write bounded by a deadline far past the user timeout: a write that
	// blocked would show as a deadline error, much later.
	start := time.Now()
	chunk := make([]byte, 1000)
	var werr error
	for time.Since(start) < 20*unacked {
		if err := conn.SetWriteDeadline(time.Now().Add(30 * unacked)); err != nil {
			t.Fatal(err)
		}
		if _, werr = conn.Write(chunk); werr != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !errors.Is(werr, syscall.ETIMEDOUT) {
		t.Fatalf("writing to a client that stopped reading: %v after %v; want the kernel's ETIMEDOUT (TCP_USER_TIMEOUT %v)", werr, time.Since(start), unacked)
	}
	t.Logf("the kernel ended the connection %v after the first write", time.Since(start))
	// The client was alive all along: its socket is open, and what it
	// holds is the server's data, not an end.
	if err := client.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := client.Read(make([]byte, 10)); n == 0 {
		t.Errorf("the client read nothing (%v), want the data it left unread", err)
	}
}

// A hub subscriber that stops reading, on a hub publishing too slowly to
// fill the kernel's send buffer within stream.write_timeout, has its
// connection ended by the kernel (TCP_USER_TIMEOUT, its window closed)
// before any write blocks: its stream ends as write_failed or
// client_gone, not as a slow subscriber, as README says. Only a
// subscriber whose write blocked (or whose queue filled) first is
// counted in ssehub_slow_subscribers_dropped_total.
func TestUserTimeoutEndsASlowSubscriberBeforeItsWriteBlocks(t *testing.T) {
	cfg := hubTestConfig()
	cfg.Stream.WriteTimeout = time.Second
	base, _ := startMain(t, cfg)
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096)
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	conn, err := d.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /api/v1/events?topic=a HTTP/1.1\r\nHost: ssehub\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, len("HTTP/1.1 200"))
	if _, err := io.ReadFull(conn, head); err != nil || string(head) != "HTTP/1.1 200" {
		t.Fatalf("answer %q, %v; want a stream", head, err)
	}
	waitStreams(t, http.DefaultClient, base, 1)

	// From here on the client reads nothing. 2 KB every 10 ms closes its
	// window within a second, and fills no send buffer for seconds more.
	data := strings.Repeat("x", 2000)
	ended := func() float64 {
		var n float64
		for _, reason := range []string{"write_failed", "client_gone", "dropped"} {
			n += metricValue(t, base, `ssehub_streams_ended_total{reason="`+reason+`"}`)
		}
		return n
	}
	start := time.Now()
	for ended() == 0 {
		if time.Since(start) > 20*cfg.Stream.WriteTimeout {
			t.Fatalf("the stream of a client that stopped reading was still open %v later", time.Since(start))
		}
		if status, answer := publishOverHTTP(t, base, hubTestToken, "a", data); status != http.StatusCreated {
			t.Fatalf("publish: %d %s", status, answer)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("the stream ended %v after the client stopped reading: write_failed %v, client_gone %v", time.Since(start),
		metricValue(t, base, `ssehub_streams_ended_total{reason="write_failed"}`),
		metricValue(t, base, `ssehub_streams_ended_total{reason="client_gone"}`))
	if got := metricValue(t, base, "ssehub_slow_subscribers_dropped_total"); got != 0 {
		t.Errorf("ssehub_slow_subscribers_dropped_total %v, want 0: the kernel ended the connection before a write blocked", got)
	}
	if got := metricValue(t, base, `ssehub_streams_ended_total{reason="dropped"}`); got != 0 {
		t.Errorf(`ssehub_streams_ended_total{reason="dropped"} %v, want 0`, got)
	}
}
