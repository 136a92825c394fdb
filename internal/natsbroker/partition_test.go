package natsbroker

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ssehub/ssehub/internal/testlog"
	"github.com/ssehub/ssehub/internal/testpki"
)

// watchMove is in the line watch logs when it moves the connection to
// another server (askJetStream): the tests count watch's moves by it, not
// the connection's reconnections, which a stale connection on a loaded
// machine adds to.
const watchMove = "moving to another server"

// watchLog has opts log, at every level, to the buffer it returns.
func watchLog(opts *Options) *testlog.Buffer {
	logs := new(testlog.Buffer)
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return logs
}

// noise is the first line of logs that tells of a disconnection watch did
// not make: the connection found stale (its pings unanswered in time on a
// loaded machine) or dropped, after which nats.go reconnected to any of
// the servers. watch's own move disconnects with no error ("err=<nil>").
// "" if there is none; with beforeMove, "" if there is none before watch's
// first move.
func noise(logs *testlog.Buffer, beforeMove bool) string {
	for line := range strings.Lines(logs.String()) {
		if beforeMove && strings.Contains(line, watchMove) {
			return ""
		}
		if strings.Contains(line, "nats disconnected") && !strings.Contains(line, "err=<nil>") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// firstLine is the first line of logs that holds text, "" if none does.
func firstLine(logs *testlog.Buffer, text string) string {
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, text) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// voidIfNoise skips the test as void when the instance was disconnected
// by something other than watch (noise): the test put the instance on a
// chosen server, and from then on cannot tell what it checks from where
// nats.go took it. Called only where the outcome depends on that server.
func voidIfNoise(t *testing.T, logs *testlog.Buffer, what string) {
	t.Helper()
	if line := noise(logs, false); line != "" {
		t.Skipf("void: %s, but the instance was disconnected by the cluster's noise, not by watch, and reconnected to any server: %s", what, line)
	}
}

// stayed fails the test if watch moved the instance off the stream's
// server, unless the cluster's noise had taken it off first, and watch
// rightly moved it on (back): then the test is void.
func stayed(t *testing.T, logs *testlog.Buffer) {
	t.Helper()
	if n := logs.Count(watchMove); n != 0 {
		if line := noise(logs, true); line != "" {
			t.Skipf("void: watch moved the instance %d times, after the cluster's noise had taken it off the stream's server: %s", n, line)
		}
		t.Fatalf("watch moved the instance off the stream's server %d times", n)
	}
}

// publishOrVoid publishes data to topic t through in with the
// Idempotency-Key "k"+data, sent again while it is answered 503, up to
// clusterWait (a loaded machine's JetStream may take longer than
// PublishTimeout). Still refused: a move of watch's fails the test, the
// cluster's noise voids it.
func publishOrVoid(t *testing.T, in *instance, logs *testlog.Buffer, data string) string {
	t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		status, id, err := postEvent(in, "t", data, "k"+data)
		if err != nil {
			t.Fatal(err)
		}
		if status == http.StatusCreated {
			return id
		}
		if status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			stayed(t, logs)
			voidIfNoise(t, logs, fmt.Sprintf("publish %s answered %d", data, status))
			t.Fatalf("publish %s: %d", data, status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A server cut off from the rest of its cluster (its routes down, its
// clients' connections up, as in a network partition): an instance
// connected to it moves to another server (watch), and its subscriber
// gets every event published meanwhile on the other side, in order, with
// the partition still there. Nothing else told the instance: the server
// answers its pings. Then the server rejoins, and an instance on it
// resumes from the first event.
func TestClusterServerCutOff(t *testing.T) {
	t.Parallel() // mostly waiting for the cluster
	c := startCluster(t)
	meta := c.metaLeader(t).name
	opts := clusterOptions(c)
	opts.PingInterval = 500 * time.Millisecond
	logs := watchLog(&opts)
	a := instanceWhere(t, opts, func(server string) bool { return server != meta })
	x := c.node(t, a.broker.nc.ConnectedServerName())
	// The stream's leader elsewhere: the other side goes on at once.
	moveLeader(t, c.operator(t), DefaultStream, meta)
	waitUntil(t, clusterWait, "the instance's JetStream question answered", func() bool { return a.broker.jsAnswers.Load() > 0 })
	b := instanceWhere(t, clusterOptions(c), func(server string) bool { return server != x.name })
	live := a.follow(t, "topic=t", "")
	var ids []string
	for i := range 5 {
		ids = append(ids, publishKeyed(t, b, strconv.Itoa(i)))
	}
	for i, id := range ids {
		if got := live.next(t); got.ID != id {
			t.Fatalf("event %d: %+v, want id %s", i, got, id)
		}
	}

	x.partition()
	for i := 5; i < 15; i++ {
		ids = append(ids, publishKeyed(t, b, strconv.Itoa(i)))
	}
	end := publishKeyed(t, b, "end")
	receivesExactly(t, live, ids[5:], 5, end)
	if got := a.broker.nc.ConnectedServerName(); got == x.name {
		t.Errorf("the instance is still on %s, cut off", got)
	}
	if logs.Count(watchMove) == 0 {
		// Off the server, but not by watch: a stale connection's
		// reconnection took it elsewhere, and watch was never put to
		// the test.
		voidIfNoise(t, logs, "the instance left "+x.name)
		t.Errorf("the instance left %s, but not by watch: no %q in its log", x.name, watchMove)
	}

	x.heal()
	waitHealed(t, c, x)
	again := instanceWhere(t, clusterOptions(c), func(server string) bool { return server == x.name })
	receivesExactly(t, again.follow(t, "topic=t", ids[0]), ids[1:], 1, end)
}

// publishKeyed publishes data to topic t through in with the
// Idempotency-Key "k"+data, sent again with it while it is answered 503,
// up to clusterWait: on a loaded machine, JetStream's acknowledgement
// took longer than PublishTimeout now and then, just after the stream's
// leader moved, and the test failed before its partition. The key stores
// an event answered 503 but stored once.
func publishKeyed(t *testing.T, in *instance, data string) string {
	t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		status, id, err := postEvent(in, "t", data, "k"+data)
		switch {
		case err != nil:
			t.Fatal(err)
		case status == http.StatusCreated:
			return id
		case status != http.StatusServiceUnavailable:
			t.Fatalf("publish %s: %d", data, status)
		case time.Now().After(deadline):
			t.Fatalf("publish %s: still 503 after %v", data, clusterWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitHealed waits until n, its partition healed, is routed to the other
// running nodes again and current with JetStream's meta leader, and its
// copy of the stream is current with the stream's leader. Before, an
// instance's start on it took up to 9 s (12 starts just after a heal),
// and one of the 12 loaded the tail as n's copy had it before the
// partition: the server answered the stream's lookup itself, from that
// copy. What follows is a resume on a server back in its cluster, not a
// race with its return.
func waitHealed(t *testing.T, c *jsCluster, n *clusterNode) {
	t.Helper()
	others := len(c.running()) - 1
	waitUntil(t, clusterWait, n.name+" routed to the others and current with the meta leader", func() bool {
		return n.NumRemotes() >= others && n.JetStreamIsCurrent()
	})
	streamLeader(t, c.operator(t), DefaultStream) // every replica current, n's included
}

// JetStream's meta leader crashed, and with it the stream's leader: while
// the cluster elects the next ones, no server answers watch's question,
// the instance's included, and moving would help nothing. The instance on
// a healthy server stays on it (answeredElsewhere), and is answered again
// once there is a leader. Without asking another server first, it moved
// 3 s after the crash. (With the stream's leader on another server, the
// question was answered throughout, and the test could not fail.) Only
// watch's moves count: a stale connection's reconnection is not one.
func TestClusterWatchStaysThroughAMetaElection(t *testing.T) {
	t.Parallel() // mostly waiting for the election
	c := startCluster(t)
	meta := c.metaLeader(t)
	opts := clusterOptions(c)
	opts.PingInterval = time.Second
	logs := watchLog(&opts)
	a := instanceWhere(t, opts, func(server string) bool { return server != meta.name })
	moveLeader(t, c.operator(t), DefaultStream, meta.name)
	waitUntil(t, clusterWait, "the instance's JetStream question answered", func() bool { return a.broker.jsAnswers.Load() > 0 })
	if !meta.JetStreamIsLeader() {
		// The meta group elected another leader meanwhile (missed
		// heartbeats on a loaded machine): the crash would not be of
		// the meta leader.
		t.Skipf("void: %s is no longer JetStream's meta leader before its crash", meta.name)
	}
	meta.crash()
	asked := a.broker.jsAnswers.Load()
	waitUntil(t, clusterWait, "a new meta leader", func() bool {
		for _, n := range c.running() {
			if n != meta && n.JetStreamIsLeader() {
				return true
			}
		}
		return false
	})
	waitUntil(t, clusterWait, "the instance's question answered after the election", func() bool { return a.broker.jsAnswers.Load() > asked+1 })
	if n := logs.Count(watchMove); n != 0 {
		t.Errorf("watch moved the instance %d times during the election; its server was never cut off: %s", n, firstLine(logs, watchMove))
	}
}

// A one-replica stream's server cut off from the rest of the cluster:
// it still leads the stream, and the instance connected to it publishes
// and delivers there. The instance stays (watch asks about the stream):
// asking JetStream's account info, which only the meta leader answers,
// it moved to a server that cannot reach the stream, and every publish
// was 503 for the partition's length.
func TestClusterWatchStaysWithItsStream(t *testing.T) {
	t.Parallel() // mostly waiting for the cluster
	c := startCluster(t)
	opts := clusterOptions(c)
	opts.Replicas = 1
	opts.PingInterval = 500 * time.Millisecond
	logs := watchLog(&opts)
	// The stream away from the meta leader, which answers the account's
	// info: a server that leads both answered it too, partitioned, for a
	// while.
	meta := c.metaLeader(t).name
	leader := otherNode(c, meta).name
	cfg := opts
	cfg.setDefaults()
	want := streamConfig(&cfg)
	want.Placement = &jetstream.Placement{Tags: []string{"node:" + leader}}
	createClusterStream(t, c, want)
	a := instanceWhere(t, opts, func(server string) bool { return server == leader })
	live := a.follow(t, "topic=t", "")
	live.stalled = func(t *testing.T) {
		t.Helper()
		// The consumer, on the stream's server with it, missed its
		// heartbeats (a loaded machine) and was made again: its
		// creation needs JetStream's meta leader, which the partition
		// cuts the server off from. It reads on the old one then
		// (resume), and the subscriber gets every event: that is
		// asserted. Void only when it could not read on: the old
		// one's deletion was not refused as unavailable, but left
		// unanswered by a server just cut off that still takes the
		// meta leader to be there (it drops the request, until it
		// finds itself leaderless, seconds later), or went through
		// before the partition; the old one may be gone, and nothing
		// can be made on the server until the partition heals (a
		// known limit, not watch's).
		if line := firstLine(logs, "nor read on"); line != "" {
			t.Skipf("void: the subscriber got nothing once its consumer, made again cut off from the meta leader, could not read on the old one: %s", line)
		}
	}
	waitUntil(t, clusterWait, "the instance's question answered", func() bool { return a.broker.jsAnswers.Load() > 0 })
	c.node(t, leader).partition()
	asked := a.broker.jsAnswers.Load()
	var ids []string
	for i := range 5 {
		ids = append(ids, publishOrVoid(t, a, logs, strconv.Itoa(i)))
	}
	// Past maxPingsOut questions: a move would have happened by now.
	waitUntil(t, clusterWait, "more questions answered", func() bool { return a.broker.jsAnswers.Load() >= asked+2*maxPingsOut })
	end := publishOrVoid(t, a, logs, "end")
	stayed(t, logs)
	// Off its server by a stale connection, and not yet back, its
	// consumer waits for a stream it cannot reach: void.
	if a.broker.nc.ConnectedServerName() != leader {
		voidIfNoise(t, logs, "the instance is off the stream's server")
	}
	receivesExactly(t, live, ids, 0, end)
}

// A cluster whose servers' TLS certificates name their host only, as
// most do: the cluster tells its clients of the other servers by
// address, and watch's probes check each certificate against the name the
// instance connected with, as nats.go's own connection does. Checked
// against the address, every probe failed ("doesn't contain any IP
// SANs"), and an instance on a server cut off from its cluster never
// moved. The instance trusts the cluster's CA through CAFile. Its own
// server, told of by address too, is not asked as another.
func TestClusterWatchChecksTLSCertificatesByName(t *testing.T) {
	t.Parallel() // mostly waiting for the cluster
	pki := testpki.New(t)
	pair := pki.Named(t, "localhost")
	cert, err := tls.X509KeyPair(pair.CertPEM, pair.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c := startClusterWith(t, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	_, port, err := net.SplitHostPort(c.nodes[0].client.addr())
	if err != nil {
		t.Fatal(err)
	}
	opts := clusterOptions(c)
	opts.URLs, opts.CAFile = []string{"tls://localhost:" + port}, pki.CAFile
	a := newInstance(t, opts)
	var told []string
	waitUntil(t, clusterWait, "the cluster to tell of the other servers", func() bool {
		told = nil
		for _, s := range a.broker.nc.Servers() {
			if strings.HasPrefix(s, "tls://127.0.0.1:") && !strings.HasSuffix(s, ":"+port) {
				told = append(told, s)
			}
		}
		return len(told) == len(c.nodes)-1
	})
	// Probed until clusterWait: on a loaded machine one probe, which
	// waits PingInterval, went unanswered now and then.
	for _, s := range told {
		waitUntil(t, clusterWait, "the probe of "+s+" answered", func() bool {
			ctx, cancel := context.WithTimeout(t.Context(), clusterWait)
			defer cancel()
			return a.broker.answers(ctx, s)
		})
	}
	waitUntil(t, clusterWait, "another server to answer watch's question", a.broker.answeredElsewhere)
	// The instance's own server, told of by address: not another one.
	if a.broker.answers(t.Context(), "tls://127.0.0.1:"+port) {
		t.Error("the instance's own server, at its address, counted as another")
	}
}

// A server that fails its handshake after its INFO (cut off, stalled, or
// refusing the instance) does not answer watch's question, even though
// its INFO told of another server that does: nats.go goes on to the
// servers an INFO told of when the one it was given fails, and the other
// server's answer counted as the first one's.
func TestClusterWatchProbeAsksOnlyItsServer(t *testing.T) {
	t.Parallel() // mostly waiting for the cluster
	c := startCluster(t)
	a := newInstance(t, clusterOptions(c))
	other := otherNode(c, a.broker.nc.ConnectedServerName())
	waitUntil(t, clusterWait, "the other server to answer watch's question", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), clusterWait)
		defer cancel()
		return a.broker.answers(ctx, other.url())
	})

	// A server that sends its INFO, telling of the other one, and then
	// closes the connection.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(conn, "INFO {\"server_id\":\"NFAILING\",\"server_name\":\"failing\",\"version\":\"2.11.0\",\"proto\":1,\"max_payload\":1048576,\"connect_urls\":[%q]}\r\n", other.client.addr())
			_, _ = bufio.NewReader(conn).ReadString('\n') // its CONNECT
			_ = conn.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), clusterWait)
	defer cancel()
	if a.broker.answers(ctx, "nats://"+ln.Addr().String()) {
		t.Error("a server that failed its handshake counted as answering: another server it told of answered in its place")
	}
}
