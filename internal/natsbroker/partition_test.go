package natsbroker

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ssehub/ssehub/internal/testpki"
)

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
	a := instanceWhere(t, opts, func(server string) bool { return server != meta })
	x := c.node(t, a.broker.nc.ConnectedServerName())
	// The stream's leader elsewhere: the other side goes on at once.
	moveLeader(t, c.operator(t), DefaultStream, meta)
	waitUntil(t, clusterWait, "the instance's JetStream question answered", func() bool { return a.broker.jsAnswers.Load() > 0 })
	b := instanceWhere(t, clusterOptions(c), func(server string) bool { return server != x.name })
	live := a.follow(t, "topic=t", "")
	ids := publishN(t, b, 5)
	for i, id := range ids {
		if got := live.next(t); got.ID != id {
			t.Fatalf("event %d: %+v, want id %s", i, got, id)
		}
	}

	x.partition()
	for i := 5; i < 15; i++ {
		ids = append(ids, publishUntilAccepted(t, b, "t", strconv.Itoa(i)))
	}
	end := b.publish(t, "t", "end")
	receivesExactly(t, live, ids[5:], 5, end)
	if got := a.broker.nc.ConnectedServerName(); got == x.name {
		t.Errorf("the instance is still on %s, cut off", got)
	}

	x.heal()
	waitHealed(t, c, x)
	again := instanceWhere(t, clusterOptions(c), func(server string) bool { return server == x.name })
	receivesExactly(t, again.follow(t, "topic=t", ids[0]), ids[1:], 1, end)
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

// JetStream's meta leader crashed: while the cluster elects the next one,
// no server answers watch's question, the instance's included, and
// moving would help nothing. The instance on a healthy server stays on it
// (answeredElsewhere), and is answered again once there is a leader.
// Without asking another server first, it moved 3 s after the crash.
func TestClusterWatchStaysThroughAMetaElection(t *testing.T) {
	t.Parallel() // mostly waiting for the election
	c := startCluster(t)
	meta := c.metaLeader(t)
	opts := clusterOptions(c)
	opts.PingInterval = time.Second
	a := instanceWhere(t, opts, func(server string) bool { return server != meta.name })
	waitUntil(t, clusterWait, "the instance's JetStream question answered", func() bool { return a.broker.jsAnswers.Load() > 0 })
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
	if n := a.broker.nc.Stats().Reconnects; n != 0 {
		t.Errorf("the instance reconnected %d times during the election; its server %s was never cut off", n, a.broker.nc.ConnectedServerName())
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
	waitUntil(t, clusterWait, "the instance's question answered", func() bool { return a.broker.jsAnswers.Load() > 0 })
	c.node(t, leader).partition()
	asked := a.broker.jsAnswers.Load()
	var ids []string
	for i := range 5 {
		ids = append(ids, a.publish(t, "t", strconv.Itoa(i)))
	}
	// Past maxPingsOut questions: a move would have happened by now.
	waitUntil(t, clusterWait, "more questions answered", func() bool { return a.broker.jsAnswers.Load() >= asked+2*maxPingsOut })
	end := a.publish(t, "t", "end")
	receivesExactly(t, live, ids, 0, end)
	if n := a.broker.nc.Stats().Reconnects; n != 0 {
		t.Errorf("the instance left the stream's server %d times", n)
	}
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
	for _, s := range told {
		ctx, cancel := context.WithTimeout(t.Context(), clusterWait)
		ok := a.broker.answers(ctx, s)
		cancel()
		if !ok {
			t.Errorf("the probe of %s found no answer", s)
		}
	}
	if !a.broker.answeredElsewhere() {
		t.Error("no other server answered watch's question")
	}
	// The instance's own server, told of by address: not another one.
	if a.broker.answers(t.Context(), "tls://127.0.0.1:"+port) {
		t.Error("the instance's own server, at its address, counted as another")
	}
}
