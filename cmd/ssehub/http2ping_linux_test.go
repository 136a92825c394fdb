package main

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/stream"
	"golang.org/x/net/http2"
)

// TestHTTP2ClientThatVanishedIsDropped: an HTTP/2 client that vanished
// without a word (a laptop that slept, a connection a NAT dropped) sends
// no frame and answers no PING. Where no TCP_USER_TIMEOUT ends its
// connection (every system but Linux; the test turns it off), its
// heartbeats fit in the socket buffers, so no write blocks: the server
// held the connection and its subscriptions until the kernel gave up
// retransmitting, about 15 minutes. It now sends a PING once the client
// has sent nothing for stream.heartbeat_interval, and closes the
// connection when no answer comes within stream.write_timeout. The
// client here goes on reading, so TCP stays healthy: only its silence
// tells it gone.
func TestHTTP2ClientThatVanishedIsDropped(t *testing.T) {
	t.Parallel() // its own server; it waits on timers, not the CPU
	eachHTTP2Mode(t, func(t *testing.T, _ string, cfg config.Config, roots *x509.CertPool) {
		t.Parallel()
		cfg.Stream.HeartbeatInterval = time.Second
		cfg.Stream.WriteTimeout = time.Second
		closed := newClosedAddrs()
		base, _ := startMain(t, cfg, stallableConns(t, closed))
		// The stream has started once vanishedHTTP2 returns. It is not
		// looked for in /metrics: the server drops it
		// stream.heartbeat_interval and stream.write_timeout later, 2 s,
		// and a loaded machine answered /metrics after that (0 streams,
		// the test failed).
		conn, pings := vanishedHTTP2(t, base, stallTLSConfig(roots), "vanished")
		client := testClient(t, roots, (*http.Protocols).SetHTTP1)

		start := time.Now()
		bound := 3 * (cfg.Stream.HeartbeatInterval + cfg.Stream.WriteTimeout)
		select {
		case <-closed.of(conn.LocalAddr().String()):
		case <-time.After(bound):
			t.Fatalf("the connection of a client that answers no PING was still open %v after its stream started (%d PINGs sent); stream.heartbeat_interval %v, stream.write_timeout %v",
				time.Since(start), len(pings), cfg.Stream.HeartbeatInterval, cfg.Stream.WriteTimeout)
		}
		t.Logf("connection closed %v after the stream started, %d PINGs sent", time.Since(start), len(pings))
		waitStreams(t, client, base, 0)
	})
}

// vanishedHTTP2 opens an HTTP/2 connection to base, over TLS with
// tlsConfig when not nil, else h2c, subscribes to topic and returns once
// the stream started, with the connection and a channel that gets each
// PING the server sends. The client reads every frame and answers only
// the server's SETTINGS: no PING ack, no frame of its own.
func vanishedHTTP2(t *testing.T, base string, tlsConfig *tls.Config, topic string) (net.Conn, <-chan struct{}) {
	t.Helper()
	conn, fr, scheme := dialHTTP2(t, net.Dialer{}, base, tlsConfig)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	writeGet(t, fr, 1, scheme, "/api/v1/events?topic="+topic)
	started := make(chan struct{})
	pings := make(chan struct{}, 100)
	go func() {
		for first := true; ; {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					if err := fr.WriteSettingsAck(); err != nil {
						return
					}
				}
			case *http2.PingFrame:
				pings <- struct{}{}
			case *http2.DataFrame:
				if first {
					first = false
					close(started)
				}
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not start")
	}
	return conn, pings
}

// TestHTTP2ClientThatAnswersPingsKeepsItsStream: a Go HTTP/2 client,
// which answers the server's PINGs, keeps an idle stream open across
// several PING periods (stream.heartbeat_interval, then
// stream.write_timeout for the answer), and its stream still gets the
// next event.
func TestHTTP2ClientThatAnswersPingsKeepsItsStream(t *testing.T) {
	t.Parallel() // its own server; it waits on timers, not the CPU
	eachHTTP2Mode(t, func(t *testing.T, name string, cfg config.Config, roots *x509.CertPool) {
		t.Parallel()
		cfg.Stream.HeartbeatInterval = time.Second
		// The client's answer to a PING must come within
		// stream.write_timeout: at 1 s, a loaded machine held the
		// client's answer back longer, and the server rightly closed
		// the connection.
		cfg.Stream.WriteTimeout = 3 * time.Second
		base, _ := startMain(t, cfg, stallableConns(t, nil))
		set := (*http.Protocols).SetHTTP2
		if name == "h2c" {
			set = (*http.Protocols).SetUnencryptedHTTP2
		}
		resp, err := testClient(t, roots, set).Get(base + "/api/v1/events?topic=idle")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
			t.Fatalf("subscribe: %s %s", resp.Proto, resp.Status)
		}
		p := stream.NewParser(resp.Body)
		publisher := testClient(t, roots, (*http.Protocols).SetHTTP1)
		waitStreams(t, publisher, base, 1)

		// Several PING periods pass with nothing from the client but its
		// answers (one each heartbeat interval, answered at once), and
		// twice the longest wait for an answer. Had the server closed the
		// connection, the stream would end before the event below.
		time.Sleep(2 * (cfg.Stream.HeartbeatInterval + cfg.Stream.WriteTimeout))
		waitStreams(t, publisher, base, 1)
		if status, answer := publishWith(t, publisher, base, hubTestToken, "idle", "still here"); status != http.StatusCreated {
			t.Fatalf("publish: %d %s", status, answer)
		}
		for {
			ev, err := nextEvent(p)
			if err != nil {
				t.Fatalf("the idle stream ended: %v", err)
			}
			if strings.Contains(ev.Data, "still here") {
				break
			}
		}
	})
}

// TestHTTP2ClientThatVanishedWarnsOnce: net/http logs "timeout waiting
// for PING response" for each HTTP/2 client that vanished without a
// word, at the rate clients' laptops sleep and NATs drop them: the
// client's doing, not the server's, it is a debug line but the first,
// of kind http2_ping_timeout, as the other lines clients cause.
func TestHTTP2ClientThatVanishedWarnsOnce(t *testing.T) {
	t.Parallel() // its own server; it waits on timers, not the CPU
	cfg := hubTestConfig()
	cfg.Server.H2C = true
	cfg.Stream.HeartbeatInterval = time.Second
	cfg.Stream.WriteTimeout = time.Second
	var logs lockedBuffer
	closed := newClosedAddrs()
	base, _ := startMainLogging(t, cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), stallableConns(t, closed))
	for i := range 2 {
		conn, _ := vanishedHTTP2(t, base, nil, "vanished")
		select {
		case <-closed.of(conn.LocalAddr().String()):
		case <-time.After(3 * (cfg.Stream.HeartbeatInterval + cfg.Stream.WriteTimeout)):
			t.Fatalf("client %d: its connection was not closed", i)
		}
	}
	warnedOnce(t, logs.String(), "http2_ping_timeout", "timeout waiting for PING response", 2)
}
