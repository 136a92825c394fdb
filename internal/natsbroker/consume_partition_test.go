package natsbroker

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/ssehub/ssehub/internal/testlog"
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
	s := startCutOffScene(t)
	s.x.partition()
	// Cut off once x answers that it cannot make a consumer.
	js := jetStreamClient(t, s.x.url())
	waitUntil(t, clusterWait, s.x.name+" to refuse consumers", func() bool {
		_, err := js.CreateOrUpdateConsumer(t.Context(), DefaultStream, jetstream.ConsumerConfig{
			Name: "probe", AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Second,
		})
		return unavailable(err)
	})
	s.reset(t)
	s.readOn(t)

	s.x.heal()
	waitUntil(t, clusterWait, s.x.name+" routed to the others and current with the meta leader", func() bool {
		return s.x.NumRemotes() >= len(s.c.running())-1 && s.x.JetStreamIsCurrent()
	})
	for i := 6; i < 9; i++ {
		id := publishKeyed(t, s.a, strconv.Itoa(i))
		if got := s.live.next(t); got.ID != id || got.Data != strconv.Itoa(i) {
			t.Fatalf("after the partition: %+v, want id %s with data %d", got, id, i)
		}
	}
}

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
	s := startCutOffScene(t)
	s.x.partition()
	s.reset(t)
	s.readOn(t)
}

// cutOffScene is a cluster with a one-replica stream on x, a server that
// does not lead JetStream's meta group, and an instance a on x following
// topic t, which has had the event of id ids[0].
type cutOffScene struct {
	c    *jsCluster
	x    *clusterNode
	a    *instance
	live *follower
	logs *testlog.Buffer
	ids  []string
	// readOns and notReadOns count the log's lines of each outcome of
	// a remake before the test's (reset): one during the partition,
	// for missed heartbeats, is not the one readOn looks for.
	readOns, notReadOns int
}

// The log's lines of a remake's outcomes, while cut off.
const readOnLine, notReadOnLine = "reading on the one it replaced", "nor read on"

func startCutOffScene(t *testing.T) *cutOffScene {
	t.Helper()
	s := &cutOffScene{c: startCluster(t)}
	opts := clusterOptions(s.c)
	opts.Replicas = 1
	opts.PingInterval = 500 * time.Millisecond
	s.logs = watchLog(&opts)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the instance's log:\n%s", s.logs.String())
		}
	})
	s.x = otherNode(s.c, s.c.metaLeader(t).name)
	cfg := opts
	cfg.setDefaults()
	want := streamConfig(&cfg)
	want.Placement = &jetstream.Placement{Tags: []string{"node:" + s.x.name}}
	createClusterStream(t, s.c, want)
	s.a = instanceWhere(t, opts, func(server string) bool { return server == s.x.name })
	s.live = s.a.follow(t, "topic=t", "")
	s.ids = []string{publishOrVoid(t, s.a, s.logs, "0")}
	if got := s.live.next(t); got.ID != s.ids[0] {
		t.Fatalf("before the partition: %+v, want id %s", got, s.ids[0])
	}
	return s
}

// reset has a's consumer made again (as for missed heartbeats on a
// loaded machine), and returns once the reading it stops has ended and
// the server has its unsubscription. An event published before was sent
// to that reading, lost to the consumer, which was then rightly not read
// on (TestConsumerNotReadOnPastAMessageItLost): the test failed so, and
// before the consumer's Delivered count was asked, its subscriber got
// nothing within clusterWait (CI, the test of the meta leader cut off).
func (s *cutOffScene) reset(t *testing.T) {
	t.Helper()
	l := s.a.broker.cur.Load().live
	l.mu.Lock()
	reading := l.cc // nil: a remake has stopped it already
	s.readOns, s.notReadOns = s.logs.Count(readOnLine), s.logs.Count(notReadOnLine)
	l.mu.Unlock()
	l.reset()
	if reading != nil {
		waitClosed(t, reading.Closed(), "the old reading's end")
	}
	if err := s.a.broker.nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// readOn publishes six events through a, x cut off and a's consumer
// made again, and fails the test unless a's follower gets each, in
// order, and the log says the consumer was read on, not made again.
func (s *cutOffScene) readOn(t *testing.T) {
	t.Helper()
	for i := 1; i < 6; i++ {
		s.ids = append(s.ids, publishOrVoid(t, s.a, s.logs, strconv.Itoa(i)))
	}
	end := publishOrVoid(t, s.a, s.logs, "end")
	stayed(t, s.logs)
	if s.a.broker.nc.ConnectedServerName() != s.x.name {
		voidIfNoise(t, s.logs, "the instance is off the stream's server")
	}
	waitUntil(t, clusterWait, "the consumer read on, or not", func() bool {
		return s.logs.Count(readOnLine) > s.readOns || s.logs.Count(notReadOnLine) > s.notReadOns
	})
	if s.logs.Count(readOnLine) == s.readOns {
		// The old consumer may not be read on for what the
		// machine's load made of it before the partition: its
		// creation asked again (a slow answer), or a message of it
		// lost (a slow consumer). The test is void then; any other
		// reason (its deletion not refused as unavailable, a false
		// alarm) fails it.
		line := lastLine(s.logs, notReadOnLine)
		if strings.Contains(line, "not all taken in order, or it is gone, or its creation was repeated") {
			t.Skipf("void: the old consumer could not be read on for what came of it before the partition: %s", line)
		}
		t.Fatalf("the consumer was made again during the partition, not read on: %s\n%s", line, s.logs.String())
	}
	receivesExactly(t, s.live, s.ids[1:], 1, end)
}

// lastLine is the last line of logs that holds text, "" if none does.
func lastLine(logs *testlog.Buffer, text string) string {
	last := ""
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, text) {
			last = strings.TrimSpace(line)
		}
	}
	return last
}
