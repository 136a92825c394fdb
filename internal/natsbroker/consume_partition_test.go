package natsbroker

import (
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A one-replica stream's server cut off from the rest of the cluster
// leads the stream still and stores the publishes of the instance on
// it, but refuses every consumer's creation and deletion: only
// JetStream's meta leader, on the other side, makes them ("temporarily
// unavailable", 10008). The instance's consumer made again there (here
// by a reset, as for missed heartbeats on a loaded machine, or a
// reconnect) reads on the one it replaced, which the refused deletion
// left in place: its subscriber gets every event, in order, with its id.
// It got none for the whole partition. Once healed, the consumer goes on.
func TestClusterConsumerResumedWhileCutOffFromTheMetaLeader(t *testing.T) {
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
	// Cut off once x answers that it cannot make a consumer.
	js := jetStreamClient(t, x.url())
	waitUntil(t, clusterWait, x.name+" to refuse consumers", func() bool {
		_, err := js.CreateOrUpdateConsumer(t.Context(), DefaultStream, jetstream.ConsumerConfig{
			Name: "probe", AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Second,
		})
		return unavailable(err)
	})
	h := a.broker.cur.Load()
	h.live.reset()
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

	x.heal()
	waitUntil(t, clusterWait, x.name+" routed to the others and current with the meta leader", func() bool {
		return x.NumRemotes() >= len(c.running())-1 && x.JetStreamIsCurrent()
	})
	for i := 6; i < 9; i++ {
		id := publishKeyed(t, a, strconv.Itoa(i))
		if got := live.next(t); got.ID != id || got.Data != strconv.Itoa(i) {
			t.Fatalf("after the partition: %+v, want id %s with data %d", got, id, i)
		}
	}
}
