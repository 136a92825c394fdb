package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

// positionOf opens a live subscription to query on in (no last event id)
// and returns the id of its `event: position`, the stream's first event,
// as a client gets it; the stream is closed when the test ends.
func positionOf(t *testing.T, in *instance, query string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", in.URL+"/api/v1/events?"+query, nil)
	resp, err := in.Client().Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("subscribe %s: %v %v", query, resp, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	p := stream.NewParser(resp.Body)
	for {
		ev, err := p.Next()
		if err != nil {
			t.Fatalf("subscribe %s: no position event: %v", query, err)
		}
		if ev.Type == "position" {
			return ev.ID
		}
	}
}

// purgeStream purges the broker's stream, as an operator would: it holds
// no event, and keeps its last sequence.
func purgeStream(t *testing.T, ns *natsServer) {
	t.Helper()
	st, err := ns.operator(t).Stream(t.Context(), DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// backUpThenLose publishes an event to topic t through in, backs the
// store up (backUpSeen) and publishes n more, each until it is accepted: a
// restore of the backup keeps the first, kept, and loses the n, gone.
func backUpThenLose(t *testing.T, ns *natsServer, in *instance, n int) (kept, backup string, gone []string) {
	t.Helper()
	kept = publishUntilAccepted(t, in, "t", "in the backup") // once, as the others
	backup = backUpSeen(t, ns, in)
	for i := range n {
		gone = append(gone, publishUntilAccepted(t, in, "t", fmt.Sprint("not in the backup ", i)))
	}
	return kept, backup, gone
}

// restoreUnanswered restores backup (restore) while p swallows every
// JetStream request, and returns once an instance behind p has asked one
// after the restore; p.passRequests answers them again.
func restoreUnanswered(t *testing.T, ns *natsServer, p *natsProxy, backup string) {
	t.Helper()
	asked := p.swallowRequests("$JS.API.")
	restore(t, ns, backup)
	select {
	case <-asked:
	case <-time.After(waitLimit):
		t.Fatal("the instance asked nothing of JetStream after the restore")
	}
}

// newColdInstance is newInstance with opts through p, its local history
// starting empty (Options.cold): its resumes from before it read the
// stream.
func newColdInstance(t *testing.T, opts Options, p *natsProxy) *instance {
	t.Helper()
	opts.URLs = []string{p.url()}
	opts.cold = true
	return newInstance(t, opts)
}

// consumerCreations is the subject prefix of the requests that make in's
// consumer again, for its current history.
func consumerCreations(in *instance) string {
	return "$JS.API.CONSUMER.CREATE." + DefaultStream + "." + in.broker.cur.Load().live.prefix
}

// positionOfAPurgedStream has an instance opened with opts store an
// event, kept, back the store up (backup) and store three more before the
// stream is purged; b, opened with bopts on the stream with no event in
// it, hands out pos to a live subscription to topic u (positionOf).
func positionOfAPurgedStream(t *testing.T, ns *natsServer, opts, bopts Options) (b *instance, kept, backup, pos string) {
	t.Helper()
	a := newInstance(t, opts)
	kept, backup, _ = backUpThenLose(t, ns, a, 3)
	a.close()
	purgeStream(t, ns)
	b = newInstance(t, bopts)
	return b, kept, backup, positionOf(t, b, "topic=u")
}

// An instance that took the stream with no event in it (purged, or its
// events all let go of by its max age) starts its history after the
// stream's last sequence, and a live subscription's position is that
// sequence's id, with nothing delivered. The stream then restored from a
// backup taken before that sequence: the events stored since under the
// sequences up to it were not seen by a client that comes back with the
// position, which is reset at the last event the restore kept and gets
// them. With nothing delivered, the instance found no event lost, and the
// resume went on after the position, passing over them without a word.
func TestResumeFromAPositionOfAnEmptyStreamAfterARestore(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	b, kept, backup, pos := positionOfAPurgedStream(t, ns, opts, opts)
	prev := b.broker.cur.Load()
	restore(t, ns, backup)
	waitNewHistory(t, b, prev, "the restored stream taken")
	after := publishAfterTheRestore(t, b, 4)
	if after[2] != pos {
		t.Fatalf("the restored stream stored at id %s, want %s (the position handed out)", after[2], pos)
	}
	resumesFromTheLost(t, b, []string{pos}, kept, after)
}

// As TestResumeFromAPositionOfAnEmptyStreamAfterARestore, the instance's
// questions unanswered after the restore until another instance has
// stored more events than the restored stream lost: its sequences passed
// the position, and its last sequence no longer tells the restore. The
// event stored under the position's sequence, which the stream did not
// hold when the instance took it, tells: the instance takes the stream
// for another history, and a resume from the position is reset at the
// last event kept. Its consumer, made again after the position, delivered
// the events past it into the same history, and the resume went on after
// the position, passing over those stored up to it without a word.
func TestResumeFromAPositionOfAnEmptyStreamAfterARestorePastIt(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	p := startProxy(t, ns)
	opts := testBrokerOptions(ns)
	popts := opts
	popts.URLs = []string{p.url()}
	b, kept, backup, pos := positionOfAPurgedStream(t, ns, opts, popts)
	restoreUnanswered(t, ns, p, backup)
	c := newInstance(t, opts)
	after := publishAfterTheRestore(t, c, 5)
	if after[2] != pos {
		t.Fatalf("the restored stream stored at id %s, want %s (the position handed out)", after[2], pos)
	}
	prev := b.broker.cur.Load()
	p.passRequests()
	waitNewHistory(t, b, prev, "the restored stream taken")
	resumesFromTheLost(t, b, []string{pos}, kept, after)
}

// The position of a live subscription to a topic that has no event, on an
// instance that delivered events of others past the backup: the id of
// the last one, which the restore's lost range holds as it holds those
// delivered. A client that comes back with it is reset at the last event
// kept, and gets the events stored since on its topic.
func TestResumeFromAnIdlePositionAfterARestore(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	a := newInstance(t, opts)
	kept, backup, _ := backUpThenLose(t, ns, a, 3)
	pos := positionOf(t, a, "topic=u")
	prev := a.broker.cur.Load()
	restore(t, ns, backup)
	waitNewHistory(t, a, prev, "the restored stream taken")
	var after []string
	for i := range 4 {
		after = append(after, publishUntilAccepted(t, a, "u", fmt.Sprint("after the restore ", i)))
	}
	if after[2] != pos {
		t.Fatalf("the restored stream stored at id %s, want %s (the position handed out)", after[2], pos)
	}
	r := a.subscribe(t, "topic=u", pos)
	if ev := r.next(t); ev.Type != "reset" || ev.ID != kept {
		t.Fatalf("resumed from %s, a position the restore lost: %+v, want a reset with id %s, the last one kept", pos, ev, kept)
	}
	receives(t, r, after)
}

// The stream restored from a backup, and new events stored in it past the
// last sequence the instance handed out before its consumer, made again,
// delivered anything (its creation unanswered): a resume read from the
// stream, from the id of an event the restore lost, is reset at the last
// event kept and gets the events stored since. The stream's last sequence
// did not tell the restore, nor had the consumer compared the event under
// the last sequence it had passed: the replay went on after the id,
// passing over the new event stored under the sequence up to it without a
// word. (The instance started after the lost events, and handed them out
// from the stream's pages: its local history does not hold them.)
func TestResumeFromTheStreamAfterARestoreBeforeTheConsumerDelivers(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	p := startProxy(t, ns)
	opts := testBrokerOptions(ns)
	b := newInstance(t, opts)
	kept, backup, gone := backUpThenLose(t, ns, b, 3)
	b.close()
	a := newColdInstance(t, opts, p) // its local history starts after the lost events
	receives(t, a.subscribe(t, "topic=t", kept), gone)

	live := consumerCreations(a)
	restoreUnanswered(t, ns, p, backup)
	c := newInstance(t, opts)
	after := publishAfterTheRestore(t, c, len(gone)+1)
	if after[0] != gone[0] {
		t.Fatalf("the restored stream stored at id %s, want %s", after[0], gone[0])
	}
	p.swallowOnly(live) // the consumer's creations only, from now on
	waitFor(t, "the instance ready", func() bool { return settled(a.broker) })
	// The first resume may be answered 503, as the instance learns of the
	// restore.
	waitFor(t, "the resume served", func() bool { return resumeStatus(t, a, "topic=t", gone[0]) == http.StatusOK })
	r := a.subscribe(t, "topic=t", gone[0])
	if ev := r.next(t); ev.Type != "reset" || ev.ID != kept {
		t.Fatalf("resumed from %s, an event the restore lost: %+v, want a reset with id %s, the last one kept", gone[0], ev, kept)
	}
	receives(t, r, after)
}

// resumeStatus is the status of a resume on in to query after
// lastEventID; the stream, if any, is closed at once.
func resumeStatus(t *testing.T, in *instance, query, lastEventID string) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", in.URL+"/api/v1/events?"+query, nil)
	req.Header.Set("Last-Event-ID", lastEventID)
	resp, err := in.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A replay read from the stream a page at a time, the stream restored
// from a backup between two pages, and new events stored in it past the
// last sequence the instance handed out before its consumer, made again,
// delivered anything (its creation unanswered): the replay ends, unfinished,
// with an error wrapping stream.ErrUnavailable, and its client comes back
// with its last id, of an event the restore lost. Its next page was read
// from the restored stream: after the lost events of its first page, the
// new events stored past them, with no word of the new ones stored under
// the sequences of those it had got.
func TestReplayAcrossARestoreBetweenItsPages(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	p := startProxy(t, ns)
	opts := testBrokerOptions(ns)
	b := newInstance(t, opts)
	kept := b.publish(t, "t", "in the backup")
	backup := backUpSeen(t, ns, b)
	data := strings.Repeat("x", 16<<10) // 16 events a page (replayPageBytes)
	const n = 40
	for range n {
		publishUntilAccepted(t, b, "t", "not in the backup "+data)
	}
	b.close()
	a := newColdInstance(t, opts, p) // its local history starts after the lost events
	sub, err := a.broker.Subscribe([]string{"t"}, kept)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got, _ := sub.Replay(nil, 1)

	live := consumerCreations(a)
	restoreUnanswered(t, ns, p, backup)
	c := newInstance(t, opts)
	for i := range n + 1 {
		publishUntilAccepted(t, c, "t", fmt.Sprint("after the restore ", i))
	}
	p.swallowOnly(live) // the consumer's creations only, from now on
	for done := false; !done; {
		got, done = sub.Replay(got, 1<<20)
	}
	for i, m := range got {
		if !strings.Contains(string(m.Frame), "not in the backup") {
			t.Fatalf("the replay handed out %q after %d events the restore lost, with no word of those stored under their sequences", m.Frame[:min(len(m.Frame), 60)], i)
		}
	}
	if len(got) == n {
		t.Fatalf("the replay handed out all %d events the restore lost, want it ended before", n)
	}
	if err := sub.Err(); !errors.Is(err, stream.ErrUnavailable) {
		t.Fatalf("the replay ended with %v, want an error wrapping stream.ErrUnavailable", err)
	}
}
