package natsbroker

import (
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The instance's consumer made again just after its server, which leads
// a one-replica stream, was cut off from the rest of the cluster (here by
// a reset, as for missed heartbeats on a loaded machine): the server
// still takes JetStream's meta leader to be there for seconds, and leaves
// the old consumer's deletion unanswered, then refuses the creation as
// unavailable (10008). The remake reads on the old one, its deletion
// asked again and refused so: the subscriber gets every event, in
// order. Not asked again, the deletion's timeout kept the remake from
// reading on, and the subscriber got nothing for the whole partition
// (TestClusterWatchStaysWithItsStream voided such runs).
func TestClusterConsumerReadOnWhenMadeAgainAsItsServerIsCutOff(t *testing.T) {
	t.Parallel() // mostly waiting for the cluster
	c := startCluster(t)
	opts := clusterOptions(c)
	opts.Replicas = 1
	opts.PingInterval = 500 * time.Millisecond
	logs := watchLog(&opts)
	meta := c.metaLeader(t).name
	x := otherNode(c, meta)
	cfg := opts
	cfg.setDefaults()
	want := streamConfig(&cfg)
	want.Placement = &jetstream.Placement{Tags: []string{"node:" + x.name}}
	createClusterStream(t, c, want)
	a := instanceWhere(t, opts, func(server string) bool { return server == x.name })
	live := a.follow(t, "topic=t", "")
	ids := []string{publishOrVoid(t, a, logs, "0")}
	if got := live.next(t); got.ID != ids[0] {
		t.Fatalf("before the partition: %+v, want id %s", got, ids[0])
	}

	x.partition()
	a.broker.cur.Load().live.reset()
	for i := 1; i < 6; i++ {
		ids = append(ids, publishOrVoid(t, a, logs, strconv.Itoa(i)))
	}
	end := publishOrVoid(t, a, logs, "end")
	stayed(t, logs)
	if a.broker.nc.ConnectedServerName() != x.name {
		voidIfNoise(t, logs, "the instance is off the stream's server")
	}
	receivesExactly(t, live, ids[1:], 1, end)
	if logs.Count("reading on the one it replaced") == 0 {
		t.Errorf("the consumer was made again during the partition, not read on:\n%s", logs.String())
	}
}
