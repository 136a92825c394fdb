package natsbroker

import (
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

// An instance started on the stream with its local history empty (a
// resume then reads the stream's pages) at an event that an operator then
// removed (`nats stream rmm`), before a backup; its consumer's delivery
// of the next event was lost on the way (nothing since revealed the gap),
// and a resume handed that event out from the pages, ahead of the
// consumer. The stream restored from the backup holds neither: its last
// sequence is the removed event's, below the one handed out ahead. The
// consumer, made again at the removed event's sequence, gets nothing from
// it, and only the stream check the remade consumer asks for can tell the
// restore: asked with every event handed out, the pages' included
// (history.reached), it finds the last sequence short of them, and the
// instance takes the stream for another history. Asked with the
// consumer's alone, it took the restored stream for the instance's own,
// and the new event stored under the sequence handed out ahead was
// delivered under that id: a client that had got the lost event resumed
// after it, passing over the new one without a word.
func TestCheckCountsTheEventsHandedOutAheadOfTheConsumer(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	p := startProxy(t, ns)
	opts := testBrokerOptions(ns)
	w := newInstance(t, opts)
	first := w.publish(t, "t", "first")
	second := w.publish(t, "t", "second")
	removed := w.publish(t, "t", "removed")
	w.close()
	a := newColdInstance(t, opts, p) // its resumes read the stream's pages
	h := a.broker.cur.Load()
	id, _ := stream.ParseID(removed)
	seq, _ := h.ids.seq(id)
	if h.seen.last() != seq {
		t.Fatalf("the instance started at %d, want %d", h.seen.last(), seq)
	}
	st, err := ns.operator(t).Stream(t.Context(), DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteMsg(t.Context(), seq); err != nil {
		t.Fatal(err)
	}
	backup := backUpSeen(t, ns, a)

	lost := p.loseDeliveries("ahead of the consumer")
	b := newInstance(t, opts)
	ahead := publishUntilAccepted(t, b, "t", "ahead of the consumer")
	select {
	case <-lost:
	case <-time.After(waitLimit):
		t.Fatal("the consumer's delivery was not lost")
	}
	p.passDeliveries()
	b.close()
	c := a.subscribe(t, "topic=t", first)
	receives(t, c, []string{second, ahead}) // ahead from the stream's pages
	if h.readOut.Load() == nil || h.seen.last() != seq {
		t.Fatalf("the event handed out ahead of the consumer: read out %v, consumer at %d, want it at %d", h.readOut.Load(), h.seen.last(), seq)
	}

	restore(t, ns, backup)
	c.ended(t)
	waitNewHistory(t, a, h, "the restored stream taken")
	after := publishAfterTheRestore(t, a, 2)
	if after[0] != ahead {
		t.Fatalf("the restored stream stored at id %s, want %s", after[0], ahead)
	}
	r := a.subscribe(t, "topic=t", ahead)
	if ev := r.next(t); ev.Type != "reset" {
		t.Fatalf("resumed from %s, an event the restore lost: %+v, want a reset", ahead, ev)
	}
	receives(t, r, after)
}
