package natsbroker

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ssehub/ssehub/internal/testlog"
)

// A server whose JetStream hears no meta leader while it reaches the
// stream's leader: it answers the stream's info, and stores the
// instance's publishes, but refuses every consumer's creation and
// deletion as temporarily unavailable (10008), for as long as that lasts.
// The instance's consumer, deleted meanwhile (as an operator may, or as
// a restart of its server loses one in memory), cannot be made again
// there, nor read on: the subscriber got nothing, and the instance stayed,
// its stream's question answered. Another server has a meta leader and
// reaches the stream: the instance moves there (watch's second question,
// askMetaLeader), its consumer is made again, and the subscriber gets
// the event published meanwhile.
//
// The cluster's routes are cut so: x, the instance's server, routes to
// y, which leads a one-replica stream, with the servers' Raft traffic
// between them dropped (a filter, dropRoutes), and not at all to z, the
// meta leader; y and z route to each other. x's meta group, which hears
// nobody and whom nobody hears, is leaderless, and its campaigns reach
// no one: no election ends it. (A partition of the servers' routes alone
// does not last so: cut off from the meta leader only, x's campaign
// reaches y, which then elects a leader that x hears.) y's client port
// is cut: a server that hears no meta leader answers every JetStream
// request of the account routed to it with 10008, the meta leader's
// answers to y's clients raced x's, and the instance may move to z only.
func TestClusterWatchLeavesAServerWithoutAMetaLeader(t *testing.T) {
	t.Parallel() // mostly waiting for the cluster
	s := startMetaCutScene(t)
	s.y.client.cutOff()
	s.deleteConsumers(t)

	id := publishKeyed(t, s.a, "1")
	if got := s.live.next(t); got.ID != id || got.Data != "1" {
		t.Fatalf("after the deletion: %+v, want id %s with data 1", got, id)
	}
	if got := s.a.broker.nc.ConnectedServerName(); got != s.z.name {
		t.Errorf("the instance is on %s, want %s", got, s.z.name)
	}
	if s.logs.Count(watchMove) == 0 {
		voidIfNoise(t, s.logs, "the instance left "+s.x.name)
		t.Errorf("the instance left %s, but not by watch: no %q in its log", s.x.name, watchMove)
	}
}

// The scene of TestClusterWatchLeavesAServerWithoutAMetaLeader, but the
// meta leader crashes as the consumer is deleted: y, which reaches the
// stream's leader (itself) and which x's side asks, hears no meta leader
// either, and can make the consumer no more than x. The instance stays:
// moving to y helps nothing. It was asked twice (the line of askMetaLeader
// that no other server would do better), the consumer refused each time.
func TestClusterWatchStaysWhereNoServerHearsAMetaLeader(t *testing.T) {
	t.Parallel() // mostly waiting for the cluster
	s := startMetaCutScene(t)
	s.deleteConsumers(t)
	s.z.crash()
	const stay = "hears no JetStream meta leader, nor does another"
	waitUntil(t, clusterWait, "watch to ask elsewhere twice, or move", func() bool {
		return s.logs.Count(stay) >= 2 || s.logs.Count(watchMove) > 0
	})
	stayed(t, s.logs)
	if got := s.a.broker.nc.ConnectedServerName(); got != s.x.name {
		voidIfNoise(t, s.logs, "the instance is off "+s.x.name)
		t.Errorf("the instance is on %s, want %s", got, s.x.name)
	}
}

// metaCutScene is a cluster whose server x, which an instance a is
// connected to, hears no meta leader (z), and reaches the server of the
// stream, y, which hears z (TestClusterWatchLeavesAServerWithoutAMetaLeader
// says how); a's follower of topic t has had its first event.
type metaCutScene struct {
	x, y, z *clusterNode
	a       *instance
	live    *follower
	logs    *testlog.Buffer
}

func startMetaCutScene(t *testing.T) *metaCutScene {
	t.Helper()
	c := startClusterReadingRoutes(t)
	s := &metaCutScene{z: c.metaLeader(t)}
	s.y = otherNode(c, s.z.name)
	s.x = thirdNode(c, s.y.name, s.z.name)
	opts := clusterOptions(c)
	opts.Replicas = 1
	opts.PingInterval = 500 * time.Millisecond
	s.logs = watchLog(&opts)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the instance's log:\n%s", s.logs.String())
		}
	})
	cfg := opts
	cfg.setDefaults()
	want := streamConfig(&cfg)
	want.Placement = &jetstream.Placement{Tags: []string{"node:" + s.y.name}}
	createClusterStream(t, c, want)
	s.a = instanceWhere(t, opts, func(server string) bool { return server == s.x.name })
	s.live = s.a.follow(t, "topic=t", "")
	if id := publishKeyed(t, s.a, "0"); s.live.next(t).ID != id {
		t.Fatalf("before the cut: the event of id %s not delivered first", id)
	}

	for _, r := range routeRelays(s.x, s.y) {
		r.dropRoutes(t, func(subject string) bool { return strings.HasPrefix(subject, "$NRG.") })
	}
	for _, r := range routeRelays(s.x, s.z) {
		r.cutOff()
	}
	js := jetStreamClient(t, s.x.url(), nats.IgnoreDiscoveredServers(), nats.NoReconnect())
	waitUntil(t, clusterWait, s.x.name+" to refuse consumers as unavailable", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err := js.CreateOrUpdateConsumer(ctx, DefaultStream, jetstream.ConsumerConfig{
			Name: "probe", AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Second,
		})
		return unavailable(err)
	})
	if !s.z.JetStreamIsLeader() {
		t.Skipf("void: %s is no longer JetStream's meta leader (missed heartbeats on a loaded machine)", s.z.name)
	}
	if got := s.a.broker.nc.ConnectedServerName(); got != s.x.name {
		voidIfNoise(t, s.logs, "the instance left "+s.x.name+" before its consumer was deleted")
		t.Fatalf("the instance left %s before its consumer was deleted, for %s: %s", s.x.name, got, firstLine(s.logs, watchMove))
	}
	return s
}

// deleteConsumers deletes the stream's consumers, the instance's, through
// the meta leader: the instance cannot make it again on x, nor read on.
func (s *metaCutScene) deleteConsumers(t *testing.T) {
	t.Helper()
	op := jetStreamClient(t, s.z.url(), nats.IgnoreDiscoveredServers())
	ctx, cancel := context.WithTimeout(t.Context(), clusterWait)
	defer cancel()
	st, err := op.Stream(ctx, DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	names := st.ConsumerNames(ctx)
	for name := range names.Name() {
		if err := st.DeleteConsumer(ctx, name); err != nil {
			t.Fatalf("delete consumer %s: %v", name, err)
		}
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
}

// routeRelays are the relays between the route ports of n and m, one
// each way.
func routeRelays(n, m *clusterNode) []*relay {
	var out []*relay
	for _, r := range n.relays {
		if r != n.client && r != m.client && slices.Contains(m.relays, r) {
			out = append(out, r)
		}
	}
	return out
}
