package natsbroker

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ssehub/ssehub/internal/testlog"
)

// startWarning begins the warning that the start was refused for a
// while and asks again.
const startWarning = "nats JetStream temporarily unavailable at start"

// An instance started just as a server of its cluster came back from a
// restart creates its R3 stream: the meta leader refuses the creation
// ("no suitable peers for placement, peer offline", 10005) from the
// moment the server's route is back until it has its first statistics,
// about 300 ms here, and places it when asked again. The start failed at
// the refusal, and ssehub exited.
func TestClusterOpenAsAPeerRestarts(t *testing.T) {
	t.Parallel() // waits for the cluster, not on the CPU
	startsAsAPeerRestarts(t, startCluster(t), nil)
}

// So too an instance that raises its stream's replicas from 1 to 3: the
// meta leader refuses the update alike.
func TestClusterOpenRaisesReplicasAsAPeerRestarts(t *testing.T) {
	t.Parallel() // waits for the cluster, not on the CPU
	c := startCluster(t)
	startsAsAPeerRestarts(t, c, func(opts Options) {
		opts.Replicas = 1
		opts.setDefaults()
		cfg := streamConfig(&opts)
		// Led by the meta leader, which the restart leaves up.
		cfg.Placement = &jetstream.Placement{Tags: []string{"node:" + c.metaLeader(t).name}}
		createClusterStream(t, c, cfg)
		// The tag dropped, the stream stays where it is: else the R3
		// stream would have to be placed by it, which no 3 servers are.
		cfg.Placement = nil
		if _, err := c.operator(t).UpdateStream(t.Context(), cfg); err != nil {
			t.Fatal(err)
		}
		if leader := leaderNow(t, c.operator(t), cfg.Name); leader != c.metaLeader(t).name {
			t.Fatalf("stream %s led by %q once its tag was dropped, not by %s", cfg.Name, leader, c.metaLeader(t).name)
		}
	})
}

// startsAsAPeerRestarts restarts a server of c other than the meta leader
// and starts an instance of an R3 stream of its own at once, first made
// by prepare, if set, with the instance's options; until one start was
// refused (told by its one warning), 10 times at most: a start made once
// the server's statistics were in has nothing to ask again.
func startsAsAPeerRestarts(t *testing.T, c *jsCluster, prepare func(Options)) {
	t.Helper()
	peer := otherNode(c, c.metaLeader(t).name)
	for attempt := range 10 {
		var log testlog.Buffer
		opts := clusterOptions(c)
		opts.Stream, opts.SubjectPrefix = fmt.Sprintf("RESTART%d", attempt), fmt.Sprintf("restart%d", attempt)
		opts.Logger = slog.New(slog.NewTextHandler(&log, nil))
		if prepare != nil {
			prepare(opts)
		}
		peer.stop()
		peer.start(t)
		b, err := Open(t.Context(), opts)
		if err != nil {
			t.Fatalf("attempt %d: Open as a peer restarted: %v", attempt, err)
		}
		b.Close()
		// Its replicas placed and current before a server stops again:
		// nats-server left the file store of a replica it was creating
		// as it shut down running (goleak).
		streamLeader(t, c.operator(t), opts.Stream)
		switch n := log.Count(startWarning); n {
		case 0: // started once the peer's statistics were in
			c.waitFormed(t)
		case 1:
			return
		default:
			t.Fatalf("%d warnings that the start was refused, want 1:\n%s", n, log.String())
		}
	}
	t.Fatal("no start of 10, each just after the peer restarted, was refused")
}

// An instance started while the one server of its R1 stream restarts
// waits for it: the meta leader answers the stream's lookup that the
// stream is offline (10118) while its server is away, and the server,
// back, serves it. The start failed at that answer, and ssehub exited.
func TestClusterOpenWhileTheStreamsServerRestarts(t *testing.T) {
	t.Parallel() // waits for the cluster, not on the CPU
	c := startCluster(t)
	down := otherNode(c, c.metaLeader(t).name)
	opts := clusterOptions(c)
	opts.Replicas = 1
	var log testlog.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&log, nil))
	opts.setDefaults()
	cfg := streamConfig(&opts)
	cfg.Placement = &jetstream.Placement{Tags: []string{"node:" + down.name}}
	createClusterStream(t, c, cfg)
	js := c.operator(t)
	waitUntil(t, clusterWait, "the stream to be led by "+down.name, func() bool { return leaderNow(t, js, cfg.Name) == down.name })
	down.stop()

	opened := make(chan error, 1)
	go func() {
		b, err := Open(t.Context(), opts)
		if b != nil {
			b.Close()
		}
		opened <- err
	}()
	// The server comes back once the start was refused, or the start
	// ends without it.
	waitUntil(t, clusterWait, "the start to be refused", func() bool { return log.Count(startWarning) > 0 || len(opened) > 0 })
	down.start(t)
	if err := <-opened; err != nil {
		t.Fatalf("Open as the stream's server restarted: %v", err)
	}
	if n := log.Count(startWarning); n != 1 {
		t.Fatalf("%d warnings that the start was refused, want 1:\n%s", n, log.String())
	}
}
