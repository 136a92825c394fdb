package natsbroker

import (
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

// A publish that comes while the instance checks whether its stream was
// deleted, with no answer yet (a publish that no stream's server took as
// the stream's leader crashed starts such a check, which lasted seconds
// on a cluster), waits for the check's answer within its bound: the
// stream found h's still, it is stored, with an id of h's, and delivered.
// It answered 503 at once, "stream being checked", for as long as the
// check lasted.
func TestPublishWaitsForTheStreamsCheck(t *testing.T) {
	_, p, opts := startProxied(t)
	// The wait's bound: the check's next question, once passed, comes
	// within askEvery, on a loaded machine later.
	opts.PublishTimeout = waitLimit
	b := openBroker(t, opts)
	h := b.cur.Load()
	published, _ := publishWhileChecked(t, b, p, "checked")
	p.passRequests() // the check's next question is answered: the stream is there
	r := <-published
	if r.err != nil {
		t.Fatalf("publish once the check found the stream: %v", r.err)
	}
	if b.cur.Load() != h {
		t.Fatal("the check found the stream there, yet another history is current")
	}
	if got := h.mem.Retained(r.m.ID); got == nil || got.Topic != "t" {
		t.Fatalf("event %d published once the check ended: not delivered under its id (%v)", r.m.ID, got)
	}
}

// A publish waiting for the check, which finds the stream deleted and
// created again and makes a new history current, goes on with the new
// one, as a publish that came a moment later would: the event is stored
// in the new stream, and delivered under an id of the new history. It
// failed, "stream deleted", for the history it first looked at.
func TestPublishWaitingForTheCheckGoesOnWithTheNewHistory(t *testing.T) {
	ns, p, opts := startProxied(t)
	opts.PublishTimeout = waitLimit
	b := openBroker(t, opts)
	h := b.cur.Load()
	published, _ := publishWhileChecked(t, b, p, "renewed")
	recreateStream(t, ns, opts)
	p.passRequests() // the check's next question finds the new stream
	r := <-published
	if r.err != nil {
		t.Fatalf("publish once the check took the new stream: %v", r.err)
	}
	cur := b.cur.Load()
	if cur == h {
		t.Fatal("the check found the stream created again, yet the old history is current")
	}
	if _, ok := cur.ids.seq(r.m.ID); !ok {
		t.Fatalf("event published once the new stream was taken has id %d, not one of the new history's", r.m.ID)
	}
	waitFor(t, "the event delivered by the new history's consumer", func() bool {
		got := cur.mem.Retained(r.m.ID)
		return got != nil && got.Topic == "t"
	})
}

// publishResult is what a publish in the background was answered.
type publishResult struct {
	m   *stream.Message
	err error
}

// publishWhileChecked has b check its stream, the check's question
// swallowed by p (unanswered until p.passRequests), then publishes data
// to topic t in the background, and returns its answer's channel once
// the publish waits for the check, with the time the publish began. It
// fails the test if the publish is answered first.
func publishWhileChecked(t *testing.T, b *Broker, p *natsProxy, data string) (published <-chan publishResult, started time.Time) {
	t.Helper()
	swallowed := p.swallowRequests(infoSubject)
	b.renew(b.cur.Load())
	waitClosed(t, swallowed, "the check's question of the stream")
	answered := make(chan publishResult, 1)
	started = time.Now()
	go func() {
		m, _, err := b.Publish(stream.Publication{Topic: "t", Type: "message", Data: data})
		answered <- publishResult{m, err}
	}()
	var early *publishResult
	waitFor(t, "the publish to wait for the check, or be answered", func() bool {
		select {
		case r := <-answered:
			early = &r
			return true
		default:
			return waitingForTheCheck()
		}
	})
	if early != nil {
		t.Fatalf("publish while the stream is checked answered at once: %v; want it to wait for the check", early.err)
	}
	return answered, started
}
