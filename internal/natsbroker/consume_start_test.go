package natsbroker

import (
	"net"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ssehub/ssehub/internal/stream"
)

// startProxyTo is startProxy for a server at addr: a cluster's node,
// reached at its client relay.
func startProxyTo(t *testing.T, addr string) *natsProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &natsProxy{ln: ln, target: addr}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// An instance whose stream was found, but whose consumer's creation
// reaches the meta leader while every server of the stream is away (the
// one server of an R1 stream restarting), waits for the server: the
// meta leader refuses to place the consumer ("insufficient resources",
// 10023: createGroupForConsumer finds no server of the stream online),
// and places it once the server is back. The start failed at that
// answer, and ssehub exited. The proxy holds the creation on its way
// until the server is down, as a server restarting just after the
// stream's lookup does; the answers are the cluster's own.
func TestClusterConsumerMadeAtStartWhileTheStreamsServerRestarts(t *testing.T) {
	t.Parallel() // waits for the cluster, not on the CPU
	c := startCluster(t)
	leader := c.metaLeader(t)
	down := otherNode(c, leader.name)
	opts := clusterOptions(c)
	opts.Replicas = 1
	opts.setDefaults()
	cfg := streamConfig(&opts)
	cfg.Placement = &jetstream.Placement{Tags: []string{"node:" + down.name}}
	createClusterStream(t, c, cfg)
	js := c.operator(t)
	waitUntil(t, clusterWait, "the stream to be led by "+down.name, func() bool { return leaderNow(t, js, cfg.Name) == down.name })

	p := startProxyTo(t, leader.client.addr())
	opts.URLs = []string{p.url()}
	held, release := p.holdNext(t, "$JS.API.CONSUMER.CREATE.")
	opened := make(chan error, 1)
	go func() {
		b, err := Open(t.Context(), opts)
		if err == nil {
			_, _, err = b.Publish(stream.Publication{Topic: "t", Data: "after"})
			b.Close()
		}
		opened <- err
	}()
	select {
	case <-held:
	case err := <-opened:
		t.Fatalf("Open ended before its consumer's creation: %v", err)
	}
	down.stop()
	waitUntil(t, clusterWait, "the stream to be offline", func() bool {
		_, err := js.Stream(t.Context(), cfg.Name)
		return streamOffline(err)
	})
	refused := p.answerWith(`"err_code":10023`)
	release()
	select {
	case <-refused:
	case err := <-opened:
		t.Fatalf("Open ended with its consumer's creation unrefused: %v", err)
	}
	down.start(t)
	if err := <-opened; err != nil {
		t.Fatalf("Open as the stream's server restarted: %v", err)
	}
}
