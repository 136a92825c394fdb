package natsbroker

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/ssehub/ssehub/internal/stream"
)

// The broker on a JetStream cluster of three NATS servers with an R3
// stream, as production runs it: every other test of the package has one
// server and an R1 stream.

// clusterWait bounds the waits for the cluster: forming, electing a
// stream's leader after its node stopped (JetStream's election timeout
// alone is 4 to 9 s, though a server that shuts down hands its
// leaderships over first).
const clusterWait = 30 * time.Second

// jsCluster is three NATS servers with JetStream in the test process,
// routed to each other on loopback ports, each storing in a directory of
// the test's. Every connection to a server, a client's or another
// server's route, and every route it makes, passes through a relay of
// its own, which crash cuts.
type jsCluster struct {
	nodes []*clusterNode
}

// clusterNode is one server of a jsCluster. Its relays, which clients
// and the other servers reach it at, and its store stay its own across
// a stop and a start; its own ports are picked at each start.
type clusterNode struct {
	*server.Server // nil before the first start
	name           string
	dir            string
	client         *relay     // to its client port
	inbound        []*relay   // to its route port, one for each other node
	routes         []*url.URL // to the relays to the other nodes
	relays         []*relay   // every one its connections pass
	running        bool       // started and not stopped
	crashed        bool
	tls            *tls.Config // its client port's, if TLS
}

// startCluster starts a cluster of three servers and waits until its
// JetStream has a leader that every server follows.
func startCluster(t *testing.T) *jsCluster {
	t.Helper()
	return startClusterWith(t, nil)
}

// startClusterWith starts a cluster whose client ports speak TLS with
// tlsConfig, or plain NATS with nil.
func startClusterWith(t *testing.T, tlsConfig *tls.Config) *jsCluster {
	t.Helper()
	return startClusterOf(t, tlsConfig, false)
}

// startClusterReadingRoutes starts a cluster whose route relays read the
// route protocol they pass, so that dropRoutes may filter it.
func startClusterReadingRoutes(t *testing.T) *jsCluster {
	t.Helper()
	return startClusterOf(t, nil, true)
}

// startClusterOf is startClusterWith, its route relays reading the route
// protocol they pass with readRoutes.
func startClusterOf(t *testing.T, tlsConfig *tls.Config, readRoutes bool) *jsCluster {
	t.Helper()
	c := &jsCluster{}
	for i := range 3 {
		n := &clusterNode{name: fmt.Sprintf("n%d", i+1), dir: t.TempDir(), client: newRelay(t), tls: tlsConfig}
		n.relays = append(n.relays, n.client)
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes {
		for _, m := range c.nodes {
			if m != n {
				r := newRelay(t)
				if readRoutes {
					r.readRoutes()
				}
				n.routes = append(n.routes, &url.URL{Scheme: "nats", Host: r.addr()})
				n.relays, m.relays = append(n.relays, r), append(m.relays, r)
				m.inbound = append(m.inbound, r)
			}
		}
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.stop()
		}
	})
	for _, n := range c.nodes {
		n.start(t)
	}
	c.waitFormed(t)
	return c
}

// start runs the node, again with the same ports and store after a stop.
func (n *clusterNode) start(t *testing.T) {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		ServerName: n.name, Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: n.dir, NoLog: true, NoSigs: true,
		Tags:      []string{"node:" + n.name}, // for a stream placed on it
		TLSConfig: n.tls,
		// Clients learn of the other servers at their relays.
		ClientAdvertise: n.client.addr(),
		Cluster: server.ClusterOpts{
			Name: "ssehub-test", Host: "127.0.0.1", Port: server.RANDOM_PORT,
			// The servers route to each other through the relays
			// only: the address a server gossips, to which others
			// would route without a relay, takes no connection.
			Advertise: "127.0.0.1:1",
		},
		Routes: n.routes,
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(waitLimit) {
		t.Fatalf("nats server %s not ready", n.name)
	}
	n.Server, n.running = s, true
	n.client.setTarget(s.Addr().String())
	for _, r := range n.inbound {
		r.setTarget(s.ClusterAddr().String())
	}
}

// stop shuts the node down, as an operator's restart does: it hands its
// leaderships over first.
func (n *clusterNode) stop() {
	if n.running {
		n.running = false
		n.Shutdown()
		n.WaitForShutdown()
	}
}

// crash cuts the node off from its clients and the other nodes at once,
// with nothing handed over, as a crash of its machine does. It runs on
// alone until the test ends.
func (n *clusterNode) crash() {
	n.crashed = true
	for _, r := range n.relays {
		r.cutOff()
	}
}

// partition cuts the node off from the other nodes, and leaves its
// clients' connections up, as a network partition between the servers
// does; heal ends it, and the node routes to the others again.
func (n *clusterNode) partition() {
	for _, r := range n.relays {
		if r != n.client {
			r.cutOff()
		}
	}
}

func (n *clusterNode) heal() {
	for _, r := range n.relays {
		r.heal()
	}
}

func (n *clusterNode) url() string { return "nats://" + n.client.addr() }

// waitFormed waits until the running servers' JetStream has a meta
// leader that knows each of them online (else it may refuse to place a
// stream: "no suitable peers for placement, peer offline"), and every
// running server is current with it.
func (c *jsCluster) waitFormed(t *testing.T) {
	t.Helper()
	running := c.running()
	waitUntil(t, clusterWait, "the JetStream cluster to form", func() bool {
		leader := false
		for _, n := range running {
			if !n.JetStreamIsCurrent() {
				return false
			}
			if n.JetStreamIsLeader() {
				leader = len(n.JetStreamClusterPeers()) == len(running)
			}
		}
		return leader
	})
}

// createClusterStream creates the stream cfg as an operator would,
// asking again while the cluster leaves it unanswered or says JetStream
// is unavailable: on a busy machine, the meta leader and the server the
// stream is placed on, both needed, took more than the 5 s a request
// waits, just after the cluster formed. Creating a stream equal to one
// that exists succeeds, so a creation answered late does no harm.
func createClusterStream(t *testing.T, c *jsCluster, cfg jetstream.StreamConfig) {
	t.Helper()
	js := c.operator(t)
	for deadline := time.Now().Add(clusterWait); ; {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, err := js.CreateStream(ctx, cfg)
		cancel()
		if err == nil {
			return
		}
		if !unanswered(err) && !unavailable(err) || time.Now().After(deadline) {
			t.Fatalf("create stream %s: %v", cfg.Name, err)
		}
		if unavailable(err) {
			// No meta leader, as its servers answer at once: asked
			// again once one is elected, not as fast as they answer.
			c.metaLeader(t)
		}
	}
}

func (c *jsCluster) running() []*clusterNode {
	var out []*clusterNode
	for _, n := range c.nodes {
		if n.running && !n.crashed {
			out = append(out, n)
		}
	}
	return out
}

// urls are the client URLs of every node, running or not.
func (c *jsCluster) urls() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.url())
	}
	return out
}

// node returns the node named name.
func (c *jsCluster) node(t *testing.T, name string) *clusterNode {
	t.Helper()
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	t.Fatalf("no node %q", name)
	return nil
}

// operator returns a JetStream client connected to the running nodes, as
// an operator's tool would be, closed when the test ends. It waits up to
// operatorConnectTimeout for a server's handshake, rather than nats.go's
// default 2 s: on a loaded machine, a server just through an election
// may take longer, and the test would fail at its setup.
func (c *jsCluster) operator(t *testing.T) jetstream.JetStream {
	t.Helper()
	var urls []string
	for _, n := range c.running() {
		urls = append(urls, n.url())
	}
	return jetStreamClient(t, strings.Join(urls, ","), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.Timeout(operatorConnectTimeout))
}

// operatorConnectTimeout bounds an operator connection's dial and handshake.
const operatorConnectTimeout = 10 * time.Second

// streamLeader waits until the stream has a leader and every replica is
// current, with nothing left to apply, and returns the leader's name.
func streamLeader(t *testing.T, js jetstream.JetStream, name string) string {
	t.Helper()
	var leader string
	waitUntil(t, clusterWait, "stream "+name+" to have a leader and current replicas", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		info, err := js.Stream(ctx, name)
		if err != nil {
			return false
		}
		cl := info.CachedInfo().Cluster
		if cl == nil || cl.Leader == "" || len(cl.Replicas) != 2 {
			return false
		}
		for _, r := range cl.Replicas {
			if !r.Current || r.Offline || r.Lag != 0 {
				return false
			}
		}
		leader = cl.Leader
		return true
	})
	return leader
}

// moveLeader makes node to the stream's leader, asking the leader to step
// down in its favour.
func moveLeader(t *testing.T, js jetstream.JetStream, name, to string) {
	t.Helper()
	if streamLeader(t, js, name) == to {
		return
	}
	req, _ := json.Marshal(server.JSApiLeaderStepdownRequest{Placement: &server.Placement{Preferred: to}})
	waitUntil(t, clusterWait, "stream "+name+" leader to move to "+to, func() bool {
		if streamLeader(t, js, name) == to {
			return true
		}
		_, _ = js.Conn().Request("$JS.API.STREAM.LEADER.STEPDOWN."+name, req, time.Second)
		return false
	})
}

// waitUntil polls cond until it holds, or fails the test after limit.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clusterOptions are the test's broker options on c: every node's URL,
// an R3 stream.
func clusterOptions(c *jsCluster) Options {
	return Options{
		URLs:           c.urls(),
		Replicas:       3,
		HistorySize:    1000, // more than a test publishes
		PublishTimeout: 2 * time.Second,
		ReconnectWait:  20 * time.Millisecond,
		Logger:         slog.New(slog.DiscardHandler),
	}
}

// publishN publishes events "0" to "n-1" to topic t through in and
// returns their ids, each stored once, sent again while it is answered
// 503 (publishUntilAccepted): the events a test starts from, not what it
// tests. On a loaded machine under -race, an R3 stream's acknowledgement
// took longer than the publish timeout, 2 s, on a cluster just formed.
func publishN(t *testing.T, in *instance, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		ids = append(ids, publishUntilAccepted(t, in, "t", strconv.Itoa(i)))
	}
	return ids
}

// On an R3 stream, events published through one instance reach the live
// subscribers of every instance, in order; a resume is served from the
// local history of the instance that published, from the tail that an
// instance opened later loaded, and from the stream by one that started
// cold.
func TestClusterPublishSubscribeResume(t *testing.T) {
	c := startCluster(t)
	a := newInstance(t, clusterOptions(c))
	js := c.operator(t)
	streamLeader(t, js, DefaultStream) // waits for two current replicas
	st, err := js.Stream(t.Context(), DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if r := st.CachedInfo().Config.Replicas; r != 3 {
		t.Fatalf("the stream has %d replicas, want 3", r)
	}
	b := newInstance(t, clusterOptions(c))
	onA, onB := a.follow(t, "topic=t", ""), b.follow(t, "topic=t", "")
	ids := publishN(t, a, 30)
	end := b.publish(t, "t", "end")
	receivesExactly(t, onA, ids, 0, end)
	receivesExactly(t, onB, ids, 0, end)

	warm := newInstance(t, clusterOptions(c))
	if topics := warm.broker.Topics(); len(topics) != 1 || topics[0].LastEventID != end {
		t.Fatalf("the tail was not loaded at Open: topics %+v", topics)
	}
	cold := clusterOptions(c)
	cold.cold = true
	for name, in := range map[string]*instance{"the publisher": a, "the warm instance": warm, "the cold instance": newInstance(t, cold)} {
		t.Run(name, func(t *testing.T) {
			receivesExactly(t, in.follow(t, "topic=t", ids[9]), ids[10:], 10, end)
		})
	}
}

// clusterFeed publishes events "0", "1", ... to topic t through an
// instance, one after another, each with the Idempotency-Key "k<n>":
// a publish answered 503 is sent again with its key until it is answered
// 201, so that each event is stored once whatever the answers were. Any
// other answer, or a publish still refused after clusterWait, ends it
// with err.
type clusterFeed struct {
	stop chan struct{} // closed by the test: the feed ends after its publish
	done chan struct{} // closed when it has ended

	mu      sync.Mutex
	acked   []string // the ids answered, of events "0", "1", ...
	refused int      // the 503s
	err     error
}

func feed(in *instance) *clusterFeed {
	f := &clusterFeed{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for n := 0; ; n++ {
			select {
			case <-f.stop:
				return
			default:
			}
			id, err := f.publish(in, strconv.Itoa(n))
			f.mu.Lock()
			f.acked = append(f.acked, id)
			f.err = err
			f.mu.Unlock()
			if err != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return f
}

// publish sends event data until it is answered 201, and returns its id.
func (f *clusterFeed) publish(in *instance, data string) (string, error) {
	deadline := time.Now().Add(clusterWait)
	for {
		status, id, err := postEvent(in, "t", data, "k"+data)
		switch {
		case err != nil:
			return "", err
		case status == http.StatusCreated:
			return id, nil
		case status != http.StatusServiceUnavailable:
			return "", fmt.Errorf("publish %s: %d", data, status)
		case time.Now().After(deadline):
			return "", fmt.Errorf("publish %s: still 503 after %v", data, clusterWait)
		}
		f.mu.Lock()
		f.refused++
		f.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
}

// postEvent publishes data to topic with an Idempotency-Key, as in.post
// does, from any goroutine.
func postEvent(in *instance, topic, data, key string) (int, string, error) {
	body := fmt.Sprintf(`{"data": %q}`, data)
	req, err := http.NewRequest("POST", in.URL+"/api/v1/topics/"+topic+"/events", strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := in.Client().Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var out struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.ID, nil
}

// count is how many events have been acknowledged so far.
func (f *clusterFeed) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.acked)
}

// end stops the feed and returns the ids acknowledged, failing the test
// if it had failed.
func (f *clusterFeed) end(t *testing.T) []string {
	t.Helper()
	close(f.stop)
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		t.Fatalf("publishing: %v (after %d acknowledged, %d refused with 503)", f.err, len(f.acked)-1, f.refused)
	}
	t.Logf("%d events acknowledged, %d publishes answered 503", len(f.acked), f.refused)
	return f.acked
}

// receivesExactly reads c's next events and fails the test unless they
// are events ids[i] with data from+i, then event end with data "end":
// every acknowledged event, in order, once, and no other before end.
func receivesExactly(t *testing.T, c *follower, ids []string, from int, end string) {
	t.Helper()
	for i, id := range ids {
		got := c.next(t)
		if got.ID != id || got.Data != strconv.Itoa(from+i) || got.Type != "" {
			t.Fatalf("event %d of %d: got %+v, want id %s with data %d", i, len(ids), got, id, from+i)
		}
	}
	if got := c.next(t); got.ID != end || got.Data != "end" {
		t.Fatalf("after the %d acknowledged events: %+v, want the end, id %s", len(ids), got, end)
	}
}

// follower reads a stream as a browser's EventSource does: once the
// stream ends, it subscribes again with the id of the last event it got
// as Last-Event-ID. It waits up to clusterWait for an event: elections
// take seconds, and a crashed leader's longer.
type follower struct {
	in         *instance
	query      string
	c          *client
	last       string
	reconnects int // how many times the stream ended
	// stalled, if set, is called when no event came within
	// clusterWait, before the test fails: it may void the test
	// (t.Skip) when the cluster's noise explains the silence.
	stalled func(t *testing.T)
}

// follow subscribes to query, after lastEventID ("" for live only).
func (in *instance) follow(t *testing.T, query, lastEventID string) *follower {
	t.Helper()
	return &follower{in: in, query: query, c: in.subscribe(t, query, lastEventID), last: lastEventID}
}

// next waits for the next event, subscribing again when the stream ends.
func (f *follower) next(t *testing.T) stream.Event {
	t.Helper()
	for {
		var ev stream.Event
		ok := false
		select {
		case ev, ok = <-f.c.events:
		case <-time.After(clusterWait):
			if f.stalled != nil {
				f.stalled(t)
			}
			t.Fatal("no event within", clusterWait)
		}
		if ok {
			f.last = cmpOr(ev.ID, f.last)
			return ev
		}
		if f.reconnects++; f.reconnects > 5 {
			t.Fatal("the stream ended a sixth time")
		}
		f.c = f.in.subscribe(t, f.query, f.last)
	}
}

// droppedOnly fails the test if f's stream ended other than for a slow
// consumer: the local broker of its instance dropped none.
func (f *follower) droppedOnly(t *testing.T) {
	t.Helper()
	if dropped := f.in.broker.Stats().Dropped; uint64(f.reconnects) > dropped {
		t.Errorf("the stream ended %d times, its instance dropped %d subscriptions", f.reconnects, dropped)
	} else if f.reconnects > 0 {
		t.Logf("the stream ended %d times (a slow consumer: dropped), resumed each time", f.reconnects)
	}
}

// The node that stops is the stream's leader, the server the instance is
// connected to, or both, while two instances have a live subscriber and
// one of them publishes: once the stream has a leader again and the
// instance a server, publishes are answered 201 again (503 meanwhile: a
// publish retried with its key is stored once), and each live
// subscriber gets every acknowledged event, in order, once, with no gap
// (a subscriber dropped as slow resumes from its last id, as a browser
// does). Resumes from before the stop, on an instance that started cold
// (it reads the stream) and one that loaded the tail, get every event
// after it.
//
// The node is not JetStream's meta leader, but in the "meta" case,
// which is all three: the new consumers (the instances' own, made again
// after the stop) wait for a new meta leader. With nats.go's ordered
// consumer, which asked for its new consumer once every 10 s, that case
// took 11 s; with live, which asks again every askEvery, 1 s.
func TestClusterNodeStopsWhilePublishing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		victim string // which the stopped node is: "leader", "server" (the instance's), "both", "meta" (all three), "crash" (the leader, crashed)
	}{
		{"the stream's leader", "leader"},
		{"the instance's server", "server"},
		{"the stream's leader and the instance's server", "both"},
		{"the meta leader, the stream's leader and the instance's server", "meta"},
		{"the stream's leader, crashed", "crash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // mostly waiting for elections
			c := startCluster(t)
			meta := c.metaLeader(t).name
			a := instanceWhere(t, clusterOptions(c), func(server string) bool { return (server == meta) == (tc.victim == "meta") })
			js := c.operator(t)
			mine := a.broker.nc.ConnectedServerName()
			victim := mine
			switch tc.victim {
			case "leader", "crash":
				victim = thirdNode(c, mine, meta).name
				moveLeader(t, js, DefaultStream, victim)
			case "server":
				moveLeader(t, js, DefaultStream, meta)
			default:
				moveLeader(t, js, DefaultStream, mine)
			}
			t.Logf("instance on %s, meta leader %s, stream leader %s, stopping %s", mine, meta, streamLeader(t, js, DefaultStream), victim)

			// Another instance's subscriber, wherever it is connected;
			// on the crashed server when one crashes: its consumer is
			// made again while the cluster may still place it there
			// (live.create).
			b := instanceWhere(t, clusterOptions(c), func(server string) bool { return tc.victim != "crash" || server == victim })
			live, other := a.follow(t, "topic=t", ""), b.follow(t, "topic=t", "")
			histories := []*history{a.broker.cur.Load(), b.broker.cur.Load()}
			f := feed(a)
			waitUntil(t, clusterWait, "events before the stop", func() bool { return f.count() >= 20 })
			before, stopped := f.count(), time.Now()
			if tc.victim == "crash" {
				c.node(t, victim).crash()
			} else {
				c.node(t, victim).stop()
			}
			waitUntil(t, clusterWait, "a new stream leader", func() bool {
				l := leaderNow(t, js, DefaultStream)
				return l != "" && l != victim
			})
			waitUntil(t, clusterWait, "the instance connected to another server", func() bool {
				return a.broker.Connected() && a.broker.nc.ConnectedServerName() != victim
			})
			waitUntil(t, clusterWait, "events after the failover", func() bool { return f.count() >= before+40 })
			t.Logf("40 events acknowledged %v after the stop", time.Since(stopped).Round(time.Millisecond))
			acked := f.end(t)
			end := a.publish(t, "t", "end")
			receivesExactly(t, live, acked, 0, end)
			receivesExactly(t, other, acked, 0, end)
			live.droppedOnly(t)
			other.droppedOnly(t)
			if a.broker.cur.Load() != histories[0] || b.broker.cur.Load() != histories[1] {
				t.Error("the stream was taken for another after the failover: its history was renewed")
			}

			// Resumes from event 9, before the stop, each to be
			// answered, not within a time: with 2 s on the cluster
			// of two nodes left, beside other packages' tests under
			// -race, the resume answered 503 (its stream's info
			// unanswered), and the warm instance's start failed (the
			// stream's tail not loaded).
			cold, warm := clusterOptions(c), clusterOptions(c)
			cold.cold = true
			cold.PublishTimeout, warm.PublishTimeout = clusterWait, clusterWait
			for _, in := range []*instance{newInstance(t, cold), newInstance(t, warm)} {
				receivesExactly(t, in.follow(t, "topic=t", acked[9]), acked[10:], 10, end)
			}
		})
	}
}

// instanceWhere opens instances of opts until one is connected to a
// server whose name ok accepts (nats.go picks one of the URLs at random),
// and returns it; the others are closed.
func instanceWhere(t *testing.T, opts Options, ok func(server string) bool) *instance {
	t.Helper()
	for range 30 {
		in := newInstance(t, opts)
		if ok(in.broker.nc.ConnectedServerName()) {
			return in
		}
		in.close()
	}
	t.Fatal("no instance connected to the server wanted in 30 attempts")
	return nil
}

// thirdNode is the running node that is neither of the named ones.
func thirdNode(c *jsCluster, a, b string) *clusterNode {
	for _, n := range c.running() {
		if n.name != a && n.name != b {
			return n
		}
	}
	return nil
}

// otherNode is a running node other than the one named name.
func otherNode(c *jsCluster, name string) *clusterNode {
	for _, n := range c.running() {
		if n.name != name {
			return n
		}
	}
	return nil
}

// leaderNow is the stream's leader as NATS tells it now: "" while it has
// none, or does not answer within a second.
func leaderNow(t *testing.T, js jetstream.JetStream, name string) string {
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	st, err := js.Stream(ctx, name)
	if err != nil || st.CachedInfo().Cluster == nil {
		return ""
	}
	return st.CachedInfo().Cluster.Leader
}

// An instance opened while a node is down, the one that led the stream,
// connects to another (its URLs list all three), loads the stream's tail
// and serves: a resume from before, live events to and from the other
// instances.
func TestClusterOpenWhileANodeIsDown(t *testing.T) {
	t.Parallel() // waits for elections, as the other tests of stopped nodes
	c := startCluster(t)
	a := newInstance(t, clusterOptions(c))
	js := c.operator(t)
	ids := publishN(t, a, 20)
	onA := a.follow(t, "topic=t", "")
	leader := streamLeader(t, js, DefaultStream)
	c.node(t, leader).stop()

	b := newInstance(t, clusterOptions(c))
	if topics := b.broker.Topics(); len(topics) != 1 || topics[0].LastEventID != ids[19] {
		t.Fatalf("the tail was not loaded at Open: topics %+v", topics)
	}
	resumed := b.follow(t, "topic=t", ids[4])
	onB := b.follow(t, "topic=t", "")
	more := []string{publishUntilAccepted(t, b, "t", "20"), publishUntilAccepted(t, a, "t", "21")}
	end := b.publish(t, "t", "end")
	receivesExactly(t, resumed, append(ids[5:], more...), 5, end)
	receivesExactly(t, onA, more, 20, end)
	receivesExactly(t, onB, more, 20, end)
}

// An instance opened just after JetStream's meta leader stopped creates
// its consumer, which the next meta leader places, and serves.
func TestClusterOpenAsTheMetaLeaderStops(t *testing.T) {
	t.Parallel() // waits for elections, as the other tests of stopped nodes
	c := startCluster(t)
	a := newInstance(t, clusterOptions(c))
	ids := publishN(t, a, 5)
	c.metaLeader(t).stop()
	b := newInstance(t, clusterOptions(c))
	if topics := b.broker.Topics(); len(topics) != 1 || topics[0].LastEventID != ids[4] {
		t.Fatalf("the tail was not loaded at Open: topics %+v", topics)
	}
}

// An instance opened while a node is down creates the R3 stream with that
// node's replica offline, and serves. The node, back, catches up: once
// another stops, the stream it now leads or follows holds every event.
func TestClusterStreamCreatedWhileANodeIsDown(t *testing.T) {
	t.Parallel() // waits for elections, as the other tests of stopped nodes
	c := startCluster(t)
	// Not the meta leader: the next one may not have heard from the
	// node yet (a server learns of the others from their periodic
	// stats), and does not place a replica on a server it never heard
	// from. With the meta leader stopped, 3 creations of 40 were
	// refused ("no suitable peers for placement, peer offline"); with
	// another node, none.
	down := otherNode(c, c.metaLeader(t).name)
	down.stop()
	c.waitFormed(t)
	a := newInstance(t, clusterOptions(c))
	onA := a.follow(t, "topic=t", "")
	ids := publishN(t, a, 20)

	down.start(t)
	js := c.operator(t)
	leader := streamLeader(t, js, DefaultStream) // every replica current
	if leader == down.name {
		leader = otherNode(c, down.name).name
	}
	c.node(t, leader).stop()
	more := []string{publishUntilAccepted(t, a, "t", "20")}
	end := a.publish(t, "t", "end")
	receivesExactly(t, onA, append(ids, more...), 0, end)
	cold := clusterOptions(c)
	cold.cold = true
	receivesExactly(t, newInstance(t, cold).follow(t, "topic=t", ids[0]), append(ids[1:], more...), 1, end)
}

// A resume read from the stream just after a node stopped is answered,
// not refused with a 503: the node led the stream (whose leader answers
// its info) or JetStream's meta group (whose leader answers the creation
// of the replay's consumer).
func TestClusterResumeAsALeaderStops(t *testing.T) {
	t.Parallel() // waits for elections, as the other tests of stopped nodes
	for _, stop := range []string{"stream", "meta"} {
		t.Run(stop, func(t *testing.T) {
			c := startCluster(t)
			a := newInstance(t, clusterOptions(c))
			ids := publishN(t, a, 20)
			end := a.publish(t, "t", "end")
			cold := clusterOptions(c)
			cold.cold = true // its resumes read the stream
			// The resume waits for the election its question meets:
			// refused at once, it answered 503 before; given 2 s, it
			// answered 503 too once the election took longer, beside
			// other packages' tests under -race.
			cold.PublishTimeout = clusterWait
			b := newInstance(t, cold)
			js := c.operator(t)
			victim := streamLeader(t, js, DefaultStream)
			if stop == "meta" {
				victim = c.metaLeader(t).name
				if streamLeader(t, js, DefaultStream) == victim {
					moveLeader(t, js, DefaultStream, otherNode(c, victim).name)
				}
			}
			mine, back := b.broker.nc.ConnectedServerName(), b.broker.reconnected()
			c.node(t, victim).stop()
			// An instance whose server it was answers 503 until it
			// has reconnected, a few milliseconds.
			if mine == victim {
				waitReconnected(t, back)
			}
			waitUntil(t, clusterWait, "the instance connected to another server", func() bool {
				name := b.broker.nc.ConnectedServerName()
				return settled(b.broker) && name != "" && name != victim
			})
			receivesExactly(t, b.follow(t, "topic=t", ids[4]), ids[5:], 5, end)
		})
	}
}

// waitReconnected waits until an instance's connection has told it that
// it is back, on the channel its Broker's reconnected returned before its
// server went. The connection's handlers run on a goroutine of their
// own, late on a loaded machine: the one that tells of a disconnection
// had not run yet when the connection was already away (its server's
// name "", not the stopped one's), so Ready said nil; a resume sent then
// was refused at once ("outbound buffer limit exceeded": nothing is
// buffered while it reconnects), and the test failed with a 503.
func waitReconnected(t *testing.T, back <-chan struct{}) {
	t.Helper()
	select {
	case <-back:
	case <-time.After(clusterWait):
		t.Fatal("the instance was not told of its reconnection within", clusterWait)
	}
}

// metaLeader is the leader of JetStream's meta group.
func (c *jsCluster) metaLeader(t *testing.T) *clusterNode {
	t.Helper()
	var leader *clusterNode
	waitUntil(t, clusterWait, "a meta leader", func() bool {
		for _, n := range c.running() {
			if n.JetStreamIsLeader() {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

// A publish repeated with its Idempotency-Key after the stream's leader
// stopped, through another instance, is answered with the first one's
// event, replayed: the new leader knows the key. Subscribers get the
// event once.
func TestClusterPublishKeyAcrossAFailover(t *testing.T) {
	t.Parallel() // waits for elections, as the other tests of stopped nodes
	c := startCluster(t)
	a, b := newInstance(t, clusterOptions(c)), newInstance(t, clusterOptions(c))
	live := b.follow(t, "topic=t", "")
	status, id, replayed := a.postKeyed(t, "t", `{"data": "0"}`, "k0")
	if status != http.StatusCreated || replayed != "" {
		t.Fatalf("first publish: %d, replayed %q", status, replayed)
	}
	leader := streamLeader(t, c.operator(t), DefaultStream)
	c.node(t, leader).stop()
	deadline := time.Now().Add(clusterWait)
	for {
		status, again, replayed := b.postKeyed(t, "t", `{"data": "0"}`, "k0")
		if status == http.StatusServiceUnavailable && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond) // the instance reconnecting, or the election
			continue
		}
		if status != http.StatusCreated || again != id || replayed != "true" {
			t.Fatalf("publish repeated after the failover: %d, id %s (first %s), replayed %q", status, again, id, replayed)
		}
		break
	}
	end := publishUntilAccepted(t, b, "t", "end")
	receivesExactly(t, live, []string{id}, 0, end)
}

// Resumes read from the stream on a cluster: each creates a consumer,
// whose server may be another than the instance's, and pulls from it at
// once. Every one replays the events after its id.
func TestClusterDeepResumes(t *testing.T) {
	c := startCluster(t)
	a := newInstance(t, clusterOptions(c))
	ids := publishN(t, a, 20)
	// A page consumer may be placed on a replica yet to apply the
	// last events: it counts them as missing, and the page ends short
	// (known, not fixed here). Every replica has them all first.
	streamLeader(t, c.operator(t), DefaultStream)
	cold := clusterOptions(c)
	cold.cold = true // its resumes read the stream
	// Each resume is to be answered, not within a time: with 2 s, the
	// stream's info (its leader's answer) went unanswered once in 400
	// beside other packages' tests under -race, and the resume answered
	// 503.
	cold.PublishTimeout = clusterWait
	b := newInstance(t, cold)
	for i := range 400 {
		from := i % 10
		s, err := b.broker.Subscribe([]string{"t"}, ids[from])
		if err != nil {
			t.Fatalf("resume %d: %v", i, err)
		}
		var got []string
		for done := false; !done; {
			var msgs []*stream.Message
			msgs, done = s.Replay(nil, 1<<20)
			for _, m := range msgs {
				got = append(got, m.IDString())
			}
		}
		s.Close()
		if err := s.Err(); err != nil || !slices.Equal(got, ids[from+1:]) {
			t.Fatalf("resume %d from %s: replayed %v (%v), want %v", i, ids[from], got, err, ids[from+1:])
		}
	}
}
