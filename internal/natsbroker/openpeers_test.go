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
// the refusal, and ssehub exited. Each attempt restarts the server and
// starts an instance on a stream of its own, until one start was refused
// (told by its one warning): a start made once the server's statistics
// were in has nothing to ask again.
func TestClusterOpenAsAPeerRestarts(t *testing.T) {
	t.Parallel() // waits for the cluster, not on the CPU
	c := startCluster(t)
	peer := otherNode(c, c.metaLeader(t).name)
	for attempt := range 10 {
		var log testlog.Buffer
		opts := clusterOptions(c)
		opts.Stream, opts.SubjectPrefix = fmt.Sprintf("RESTART%d", attempt), fmt.Sprintf("restart%d", attempt)
		opts.Logger = slog.New(slog.NewTextHandler(&log, nil))
		peer.stop()
		peer.start(t)
		b, err := Open(t.Context(), opts)
		if err != nil {
			t.Fatalf("attempt %d: Open as a peer restarted: %v", attempt, err)
		}
		b.Close()
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
