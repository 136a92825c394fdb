package natsbroker

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

// A replay read from the stream ahead of the instance's consumer (its
// creation unanswered since a reconnect), the stream restored from a
// backup between two pages, and new events stored in it past the last
// sequence the first page handed out, but the last one the consumer had
// delivered (or the stream's last as the history began) still the
// backup's: the replay ends, unfinished, with an error wrapping
// stream.ErrUnavailable. The check before each page compared only the
// event under the consumer's last sequence, which the restore kept: the
// next page handed out the new events stored past the lost ones of the
// first, with no word of those stored under their sequences.
func TestReplayAheadOfTheConsumerAcrossARestoreBetweenItsPages(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	p := startProxy(t, ns)
	opts := testBrokerOptions(ns)
	// The resume from the last event handed out reads the restored
	// stream: with 2 s, beside other packages' tests under -race, it was
	// answered 503 ("the event store is unreachable"). The test counts
	// what the replay hands out, not time.
	opts.PublishTimeout = waitLimit
	b := newInstance(t, opts)
	first := b.publish(t, "t", "in the backup")
	kept := b.publish(t, "t", "in the backup")
	backup := backUp(t, ns)
	a := newColdInstance(t, opts, p)        // the history begins at the backup's last event
	p.swallowRequests(consumerCreations(a)) // a's consumer, made again, delivers nothing
	cutAndReconnect(t, p, a.broker)

	data := strings.Repeat("x", 16<<10) // 16 events a page (replayPageBytes)
	const n = 40
	for range n {
		publishUntilAccepted(t, b, "t", "not in the backup "+data)
	}
	b.close()
	sub, err := a.broker.Subscribe([]string{"t"}, first)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got, _ := sub.Replay(nil, 1)
	if len(got) == 0 {
		t.Fatal("the replay's first page handed out nothing")
	}

	restore(t, ns, backup)
	c := newInstance(t, opts)
	var after []string
	for i := range n + 5 {
		after = append(after, publishUntilAccepted(t, c, "t", fmt.Sprint("after the restore ", i)))
	}
	waitFor(t, "the instance reconnected", func() bool { return a.broker.nc.IsConnected() })
	deadline := time.Now().Add(waitLimit)
	for done := false; !done && time.Now().Before(deadline); {
		got, done = sub.Replay(got, 1<<20)
	}
	for i, m := range got {
		if !strings.Contains(string(m.Frame), "in the backup") {
			t.Fatalf("the replay handed out %q after %d events the restore lost, with no word of those stored under their sequences", m.Frame[:min(len(m.Frame), 60)], i)
		}
	}
	if err := sub.Err(); !errors.Is(err, stream.ErrUnavailable) {
		t.Fatalf("the replay ended with %v after %d events, want an error wrapping stream.ErrUnavailable", err, len(got))
	}
	// Its client, back with the last id it got, is reset at the last
	// event kept, and gets the events stored since.
	waitFor(t, "the restored stream taken", func() bool { return settled(a.broker) })
	resumesFromTheLost(t, a, []string{got[len(got)-1].IDString()}, kept, after)
}

// A NATS user that may not get the stream's messages by sequence, on an
// instance whose consumer, made again after a reconnect, has delivered
// nothing since (the event under its last sequence deleted by an
// operator, and none stored since): each page of a replay compares that
// event first (storedAsDelivered), and is not answered. Once the server
// has told of the violation, a replay's pages no longer wait for it: each
// waited restWait, 0.5 s, and a replay of four pages 2.5 s, for a
// comparison that could never be made.
func TestReplayPagesWithoutMessageGetPermissionDoNotWaitEach(t *testing.T) {
	t.Parallel()
	ns := startNATSWith(t, &natsServer{denied: []string{"$JS.API.STREAM.MSG.GET.>"}})
	p := startProxy(t, ns)
	opts := testBrokerOptions(ns)
	// Each page's reads share one PublishTimeout, 2 s in tests: on a
	// loaded machine a page took longer, and the replay ended 503 ("nats
	// stream info: context deadline exceeded", 4 runs in 30). The test
	// counts questions, not time.
	opts.PublishTimeout = waitLimit
	w := openBroker(t, opts)
	all := store(t, ns, w, repeat(event{"t", 16 << 10}, 59)) // four pages
	opts.URLs = []string{"nats://restricted:restricted@" + strings.TrimPrefix(p.url(), "nats://")}
	opts.cold = true // its resumes read the stream
	a := openBroker(t, opts)
	last := store(t, ns, w, repeat(event{"u", 10}, 1))[0]
	seq, _ := a.cur.Load().ids.seq(last.ID)
	waitFor(t, "the last event delivered", func() bool { return a.cur.Load().seen.last() >= seq })
	st, err := ns.operator(t).Stream(t.Context(), DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteMsg(t.Context(), seq); err != nil {
		t.Fatal(err)
	}
	cutAndReconnect(t, p, a)

	replay := func() {
		t.Helper()
		s, err := a.Subscribe([]string{"t"}, all[0].IDString())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if got := replayAll(t, s, nil, 64<<10); len(got) != len(all)-1 || s.Err() != nil {
			t.Fatalf("replayed %d events, ended %v; want the %d after the first", len(got), s.Err(), len(all)-1)
		}
	}
	replay() // the server tells of the violation
	// Swallowed on their way: the server answers none of them anyway.
	asked := p.swallowRequests("$JS.API.STREAM.MSG.GET.")
	replay()
	if a.cur.Load().compared.Load() {
		t.Fatal("the consumer compared its last event: the test did not test its case")
	}
	select {
	case <-asked:
		t.Fatal("a replay's page asked for a message the server had told the user it may not get: each such question waits restWait for no answer")
	default:
	}
}

// cutAndReconnect cuts the connections through p, and waits until b has
// connected again and is ready.
func cutAndReconnect(t *testing.T, p *natsProxy, b *Broker) {
	t.Helper()
	conns := p.connections()
	p.cut()
	waitFor(t, "the instance reconnected", func() bool { return p.connections() > conns && settled(b) })
}

// Once the consumer, made again, has compared the event under the last
// sequence it delivered, a replay's pages ask NATS for no message by its
// sequence (storedAsDelivered): the normal case pays nothing for the check.
func TestReplayPagesAskNoMessageOnceTheConsumerCompared(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	p := startProxy(t, ns)
	opts := testBrokerOptions(ns)
	// Each page's reads share one PublishTimeout, 2 s in tests: on a
	// loaded machine a page took longer, and the replay ended 503 ("nats
	// stream info: context deadline exceeded", 4 runs in 30). The test
	// counts questions, not time.
	opts.PublishTimeout = waitLimit
	w := openBroker(t, opts)
	all := store(t, ns, w, repeat(event{"t", 16 << 10}, 59)) // four pages
	opts.URLs = []string{p.url()}
	opts.cold = true // its resumes read the stream
	a := openBroker(t, opts)
	gets := countMessageGets(t, ns)
	for _, cut := range []bool{false, true} {
		if cut {
			cutAndReconnect(t, p, a)
		}
		last := store(t, ns, w, repeat(event{"u", 10}, 1))[0]
		seq, _ := a.cur.Load().ids.seq(last.ID)
		waitFor(t, "the consumer compared", func() bool { return a.cur.Load().seen.last() >= seq && a.cur.Load().compared.Load() })
		before := gets.seen(t, a)
		s, err := a.Subscribe([]string{"t"}, all[0].IDString())
		if err != nil {
			t.Fatal(err)
		}
		got := replayAll(t, s, nil, 64<<10)
		s.Close()
		if len(got) != len(all)-1 || s.Err() != nil {
			t.Fatalf("replayed %d events, ended %v; want the %d after the first", len(got), s.Err(), len(all)-1)
		}
		if n := gets.seen(t, a) - before; n != 0 {
			t.Fatalf("a replay of four pages (reconnected first: %v) asked for %d messages by their sequence, want none", cut, n)
		}
	}
}

// countMessageGets counts the requests for a message of the default
// stream by its sequence alone (not the next one of a subject: rest's),
// as NATS sees them go by; seen returns the count of those b sent so far.
func countMessageGets(t *testing.T, ns *natsServer) *requestCount {
	t.Helper()
	subjects := []string{msgGetSubject + DefaultStream, directGetSubject + DefaultStream}
	return countRequests(t, ns, subjects, func(data []byte) bool {
		return !bytes.Contains(data, []byte("next_by_subj"))
	})
}
