package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ssehub/ssehub/config"
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
	d := net.Dialer{Control: smallReceiveBuffer}
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
// before any write blocks. It is dropped as one whose write timed out:
// its stream ends as write_failed and ssehub_slow_subscribers_dropped_total
// counts it. It read as a client gone, and an operator watching that
// metric missed it.
func TestUserTimeoutCountsASlowSubscriberEndedBeforeItsWriteBlocks(t *testing.T) {
	cfg := hubTestConfig()
	cfg.Stream.WriteTimeout = time.Second
	base, _ := startMain(t, cfg)
	conn := dialSmallWindow(t, base)
	subscribeRaw(t, conn)
	waitStreams(t, http.DefaultClient, base, 1)

	// From here on the client reads nothing. 2 KB every 10 ms closes its
	// window at once, and fills no send buffer for seconds more.
	publishUntilStreamEnded(t, http.DefaultClient, base, 20*cfg.Stream.WriteTimeout)
	if got := metricValue(t, base, "ssehub_slow_subscribers_dropped_total"); got != 1 {
		t.Errorf("ssehub_slow_subscribers_dropped_total %v, want 1: the client stopped reading", got)
	}
	if got := metricValue(t, base, `ssehub_streams_ended_total{reason="write_failed"}`); got != 1 {
		t.Errorf(`ssehub_streams_ended_total{reason="write_failed"} %v, want 1, as a write timed out (client_gone %v)`,
			got, metricValue(t, base, `ssehub_streams_ended_total{reason="client_gone"}`))
	}
}

// A client that stops reading, and resets its connection (a tab closed)
// while the server probes its closed window, before stream.write_timeout,
// went away: it is not a slow subscriber.
func TestUserTimeoutDoesNotCountAClientGoneBeforeItsTime(t *testing.T) {
	cfg := hubTestConfig()
	cfg.Stream.WriteTimeout = 10 * time.Second
	base, accepted := startMainAccepting(t, cfg)
	conn := dialSmallWindow(t, base)
	server := <-accepted
	subscribeRaw(t, conn)
	waitStreams(t, http.DefaultClient, base, 1)
	// The client reads nothing more; events go on until the server's
	// kernel probes its closed window, as it would one that stopped
	// reading for good.
	notSent := publishUntilProbed(t, base, server, cfg.Stream.WriteTimeout/2)
	// The stream has nothing left to write when the client resets: a
	// write after the reset fails (write_failed), and the client's going
	// is no longer what the stream learns first.
	publishLastWritten(t, base, server, notSent, cfg.Stream.WriteTimeout/2)
	// Unread data makes the close a reset.
	conn.Close()
	waitStreamEnded(t, base, cfg.Stream.WriteTimeout/2)
	if got := metricValue(t, base, "ssehub_slow_subscribers_dropped_total"); got != 0 {
		t.Errorf("ssehub_slow_subscribers_dropped_total %v, want 0: the client went away", got)
	}
	if got := metricValue(t, base, `ssehub_streams_ended_total{reason="client_gone"}`); got != 1 {
		t.Errorf(`ssehub_streams_ended_total{reason="client_gone"} %v, want 1 (write_failed %v)`,
			got, metricValue(t, base, `ssehub_streams_ended_total{reason="write_failed"}`))
	}
}

// tcpInfo reads the TCP_INFO of conn.
func tcpInfo(t *testing.T, conn net.Conn) *unix.TCPInfo {
	t.Helper()
	raw, err := conn.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var info *unix.TCPInfo
	var optErr error
	if err := raw.Control(func(fd uintptr) {
		info, optErr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil || optErr != nil {
		t.Fatal(err, optErr)
	}
	return info
}

// dialSmallWindow connects to base with a receive buffer of 4 KiB: a
// client that stops reading closes its window after a few events.
func dialSmallWindow(t *testing.T, base string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: smallReceiveBuffer}
	conn, err := d.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// streamsEnded is how many streams base ended otherwise than completed.
func streamsEnded(t *testing.T, base string) float64 {
	t.Helper()
	return streamsEndedWith(t, http.DefaultClient, base)
}

// streamsEndedWith is streamsEnded with client.
func streamsEndedWith(t *testing.T, client *http.Client, base string) float64 {
	t.Helper()
	var n float64
	for _, reason := range []string{"write_failed", "client_gone", "dropped"} {
		n += metricWith(t, client, base, `ssehub_streams_ended_total{reason="`+reason+`"}`)
	}
	return n
}

// smallReceiveBuffer is a net.Dialer's Control that gives the socket a
// receive buffer of 4 KiB.
func smallReceiveBuffer(_, _ string, c syscall.RawConn) error {
	var err error
	if cerr := c.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096)
	}); cerr != nil {
		return cerr
	}
	return err
}

// subscribeRaw sends an HTTP/1.1 subscription to topic a on conn and
// reads its answer up to the status: a stream.
func subscribeRaw(t *testing.T, conn io.ReadWriter) {
	t.Helper()
	if _, err := io.WriteString(conn, "GET /api/v1/events?topic=a HTTP/1.1\r\nHost: ssehub\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, len("HTTP/1.1 200"))
	if _, err := io.ReadFull(conn, head); err != nil || string(head) != "HTTP/1.1 200" {
		t.Fatalf("answer %q, %v; want a stream", head, err)
	}
}

// startMainAccepting is startMain that sends the server's side of the
// first connection it accepts to first. Only the first: the hook runs in
// net/http's accept loop, and with every connection sent, the third one
// (a client's new connection for /metrics) waited for a receive that
// never came, and the server accepted nothing more: the test waited for
// its answer until go test's -timeout (CI, once)
// (TestStartMainAcceptingServesEveryConnection).
func startMainAccepting(t *testing.T, cfg config.Config) (base string, first <-chan net.Conn) {
	t.Helper()
	conns := make(chan net.Conn, 1)
	var once sync.Once
	base, _ = startMain(t, cfg, func(m *Main) {
		m.connState = func(c net.Conn, state http.ConnState) {
			if state == http.StateNew {
				once.Do(func() { conns <- c })
			}
		}
	})
	return base, conns
}

func TestStartMainAcceptingServesEveryConnection(t *testing.T) {
	base, first := startMainAccepting(t, hubTestConfig())
	for i := range 4 {
		// A connection of its own for each request.
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			t.Fatalf("request %d on a new connection: %v", i+1, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d, want 200", i+1, resp.StatusCode)
		}
	}
	if c := <-first; c == nil {
		t.Fatal("no first connection")
	}
}

// publishUntilProbed publishes 2 KB events to topic a on base until the
// kernel probes the closed window of server's client, within limit. It
// returns the bytes server's socket held unsent then.
func publishUntilProbed(t *testing.T, base string, server net.Conn, limit time.Duration) (notSent uint32) {
	t.Helper()
	data := strings.Repeat("x", 2000)
	for start := time.Now(); ; {
		if status, answer := publishOverHTTP(t, base, hubTestToken, "a", data); status != http.StatusCreated {
			t.Fatalf("publish: %d %s", status, answer)
		}
		if info := tcpInfo(t, server); info.Probes > 0 && info.Snd_wnd == 0 && info.Notsent_bytes > 0 {
			t.Logf("probing after %v", time.Since(start))
			return info.Notsent_bytes
		}
		if time.Since(start) > limit {
			t.Fatal("the server never probed the closed window of a client that stopped reading")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// publishLastWritten publishes a last event of 60 KB to topic a on base
// and waits, limit at most, until server's socket holds that many bytes
// more unsent than notSent (its client's window is closed, so all it is
// given stays unsent): the stream has written it, and every event before
// it, and waits for the next, unless it lagged 29 events of 2 KB behind
// the publishes.
func publishLastWritten(t *testing.T, base string, server net.Conn, notSent uint32, limit time.Duration) {
	t.Helper()
	const last = 60000
	if status, answer := publishOverHTTP(t, base, hubTestToken, "a", strings.Repeat("y", last)); status != http.StatusCreated {
		t.Fatalf("publish: %d %s", status, answer)
	}
	for start := time.Now(); tcpInfo(t, server).Notsent_bytes < notSent+last; {
		if time.Since(start) > limit {
			t.Fatalf("the last event, of %d bytes, was not written: %d bytes unsent, %d before it", last, tcpInfo(t, server).Notsent_bytes, notSent)
		}
		time.Sleep(time.Millisecond)
	}
}

// publishUntilStreamEnded publishes 2 KB events to topic a on base with
// client, one every 10 ms, until base has ended a stream otherwise than
// completed, within limit.
func publishUntilStreamEnded(t *testing.T, client *http.Client, base string, limit time.Duration) {
	t.Helper()
	data := strings.Repeat("x", 2000)
	start := time.Now()
	for streamsEndedWith(t, client, base) == 0 {
		if time.Since(start) > limit {
			t.Fatalf("the stream of a client that stopped reading was still open %v later", time.Since(start))
		}
		if status, answer := publishWith(t, client, base, hubTestToken, "a", data); status != http.StatusCreated {
			t.Fatalf("publish: %d %s", status, answer)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("the stream ended %v after the client stopped reading", time.Since(start))
}

// waitStreamEnded waits, limit at most, until base has ended a stream
// otherwise than completed.
func waitStreamEnded(t *testing.T, base string, limit time.Duration) {
	t.Helper()
	start := time.Now()
	for streamsEnded(t, base) == 0 {
		if time.Since(start) > limit {
			t.Fatal("the stream of a client gone was still open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("the stream ended %v after the client's reset", time.Since(start))
}

// A client that sent a byte after its request (pipelined), stopped
// reading, and reset its connection before stream.write_timeout, went
// away: net/http no longer reads such a connection, so its stream learns
// it only at its next write, a heartbeat later than stream.write_timeout
// after the client's window closed. It is not a slow subscriber.
func TestUserTimeoutDoesNotCountAClientGoneUnnoticedTillLater(t *testing.T) {
	cfg := hubTestConfig()
	cfg.Stream.WriteTimeout = 2 * time.Second
	cfg.Stream.HeartbeatInterval = 5 * time.Second
	base, accepted := startMainAccepting(t, cfg)
	conn := dialSmallWindow(t, base)
	server := <-accepted
	subscribeRaw(t, conn)
	waitStreams(t, http.DefaultClient, base, 1)
	// The next request's first byte, which net/http reads in the
	// background, and then reads no more.
	if _, err := io.WriteString(conn, "G"); err != nil {
		t.Fatal(err)
	}
	notSent := publishUntilProbed(t, base, server, 3*cfg.Stream.WriteTimeout)
	publishLastWritten(t, base, server, notSent, cfg.Stream.WriteTimeout/2)
	conn.Close() // a reset: unread data
	waitStreamEnded(t, base, 3*cfg.Stream.HeartbeatInterval)
	if got := metricValue(t, base, "ssehub_slow_subscribers_dropped_total"); got != 0 {
		t.Errorf("ssehub_slow_subscribers_dropped_total %v, want 0: the client went away", got)
	}
}
