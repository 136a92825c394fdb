package natsbroker

import (
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/ssehub/ssehub/internal/stream"
)

// TestRenewalAsksAgainOnceNATSIsBack: a check of the stream under way
// (its consumer deleted, its stream answered "not found" as by a
// JetStream still recovering) when NATS goes away backs off while it
// cannot ask, up to 10 s between questions. Once NATS was back, the
// instance stayed unready, every publish answered 503, for the rest of
// that pause: up to 10 s after NATS and its stream answered again. The
// check asks again as soon as the connection is back.
//
// Nothing is timed: ReconnectWait, the check's first pause, is an hour
// (renewMax, its bound, too), and the check (renew, the stream answered
// "not found" by the proxy) has had its answer (told) before NATS goes:
// it is in that pause when NATS is back, and were the reconnect not to
// cut it short, not ready within waitFor's bound. The connection's own
// attempts are ReconnectWait apart too: it is asked to reconnect
// (ForceReconnect) once NATS is back, as an attempt falling then would.
// (The consumer is not deleted to begin the check, as in production: its
// delivery's check of the stream, same, would pause ReconnectWait, an
// hour, holding the consumer's lock that the check's end waits for.)
func TestRenewalAsksAgainOnceNATSIsBack(t *testing.T) {
	ns, p, opts := startProxied(t)
	opts.ReconnectWait, opts.renewMax = time.Hour, time.Hour
	a := newInstance(t, opts)
	a.publish(t, "t", "before")
	p.missStream(1 << 30)
	h := a.broker.cur.Load()
	a.broker.renew(h)
	waitFor(t, "the check to be answered that the stream is not found", h.told.Load)
	ns.stop()
	waitFor(t, "the instance to see NATS gone", func() bool { return !a.broker.Connected() })
	p.missStream(0)
	ns.start(t)
	waitFor(t, "the instance to reconnect", func() bool {
		if a.broker.Connected() {
			return true
		}
		if err := a.broker.nc.ForceReconnect(); err != nil {
			t.Fatal(err)
		}
		return false
	})
	waitFor(t, "the instance to be ready", func() bool { return a.broker.Ready() == nil })
	a.publish(t, "t", "after")
}

// A stream JetStream answers "not found" for some seconds while the
// connection stays up (a server restarted, recovering its store: longer
// on a loaded machine): the check of the stream backed off up to 10 s
// between questions, and the instance stayed unready, every publish
// answered 503, up to 10 s after the stream answered again (a restore
// test failed so in CI). Its pause grows to renewWaitMax, 2 s. The clock
// is synctest's, the NATS server in the bubble (startBubbled): the wait
// is renewWaitMax at most, to the millisecond, however loaded the
// machine. (On the wall clock, a bound of renewWaitMax and a second
// failed under load.)
func TestRenewalAsksSoonOnceTheStreamAnswersAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, opts, js := startBubbled(t)
		b, err := Open(t.Context(), opts)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		publishDirect(t, b, "before")

		p.missStream(1 << 30)
		h := b.cur.Load()
		if err := js.DeleteConsumer(t.Context(), DefaultStream, h.live.current.Load().name); err != nil {
			t.Fatal(err)
		}
		for !h.stale.Load() {
			time.Sleep(time.Millisecond) // the instance to check its stream
		}
		// Long enough for a pause doubling from ReconnectWait, 20 ms, to
		// reach renewWaitMax (from 2.54 s after the first question), and,
		// were it bound at 10 s, to be in its pause of 5.12 s (from 5.1 s
		// to 10.22 s): the stream answers again 4.2 s before that pause
		// ends.
		time.Sleep(6 * time.Second)
		p.missStream(0)
		answered := time.Now()
		const step = time.Millisecond
		for b.Ready() != nil {
			time.Sleep(step)
		}
		if waited := time.Since(answered); waited > renewWaitMax+step {
			t.Fatalf("unready %v after the stream answered again, want renewWaitMax (%v) at most", waited, renewWaitMax)
		}
		t.Logf("ready %v after the stream answered again", time.Since(answered))
		publishDirect(t, b, "after")
	})
}

// startBubbled starts a NATS server with JetStream in t's synctest
// bubble, with no listener, and a proxy to it: it returns the proxy,
// testBrokerOptions whose connections reach the server through it over
// in-memory pipes (the bubble's clock stands still while a socket is
// read, not while a pipe is), and a JetStream of the server, also in
// memory, for what an operator does. All are stopped as t ends.
func startBubbled(t *testing.T) (*natsProxy, Options, jetstream.JetStream) {
	t.Helper()
	s, err := server.NewServer(&server.Options{DontListen: true, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(waitLimit) {
		t.Fatal("nats server not ready")
	}
	p := &natsProxy{}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	opts := testBrokerOptions(&natsServer{Server: s})
	opts.dial = func(string, string) (net.Conn, error) {
		srv, err := s.InProcessConn()
		if err != nil {
			return nil, err
		}
		c, client := net.Pipe()
		p.relay(c, srv)
		return client, nil
	}
	nc, err := nats.Connect("", nats.InProcessServer(s))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return p, opts, js
}

// publishDirect publishes data to topic t through b, not over HTTP (a
// server's listener would stop the clock of a synctest bubble).
func publishDirect(t *testing.T, b *Broker, data string) {
	t.Helper()
	if _, _, err := b.Publish(stream.Publication{Topic: "t", Data: data}); err != nil {
		t.Fatalf("publish %q: %v", data, err)
	}
}
