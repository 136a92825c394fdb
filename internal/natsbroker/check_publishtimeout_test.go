package natsbroker

import (
	"testing"
	"time"
)

// A publish that waited for the check of its stream until late in its
// PublishTimeout, then sent, has a PublishTimeout of its own for the
// acknowledgement: a server slow to acknowledge, as after the leader's
// election that started the check, answers within it, and the event is
// answered with its id, stored once. It was sent with what the wait had
// left of one bound, its acknowledgement timed out, and it answered 503
// "may have been stored" for an event that was stored: a client's plain
// retry stored it twice.
//
// The times are the scenario's, with half a second or more either way:
// the check is answered 2.5 to 3.1 s into the publish's wait (the check
// asks again every askEvery), well within the wait's bound of 4 s; the
// acknowledgement comes 2 s after the publish is sent, at least 0.5 s
// past what the wait left of a single bound, and 2 s within a bound of
// its own.
func TestPublishAfterTheChecksWaitHasItsOwnTimeout(t *testing.T) {
	const (
		timeout   = 4 * time.Second
		checkedAt = 2500 * time.Millisecond // into the publish's wait
		ackBy     = 2 * time.Second
	)
	eachPublishMode(t, func(t *testing.T, options func(*natsServer) Options) {
		ns := startNATS(t)
		p := startProxy(t, ns)
		opts := options(ns)
		opts.URLs = []string{p.url()}
		opts.PublishTimeout = timeout
		b := openBroker(t, opts)
		h := b.cur.Load()
		p.slowAcknowledgements(ackBy)
		published, start := publishWhileChecked(t, b, p, "late")
		time.Sleep(time.Until(start.Add(checkedAt)))
		p.passRequests() // the check's next question is answered: the stream is there
		r := <-published
		if r.err != nil {
			t.Fatalf("publish sent once the check found the stream, about %v into its wait, and acknowledged %v after it was sent, answered %v after it began: %v; want its id", checkedAt, ackBy, time.Since(start), r.err)
		}
		if b.cur.Load() != h {
			t.Fatal("the check found the stream there, yet another history is current")
		}
		if got := storedEvents(t, b); got != 1 {
			t.Fatalf("the stream holds %d events, want the one published", got)
		}
		waitFor(t, "the event delivered under its id", func() bool {
			got := h.mem.Retained(r.m.ID)
			return got != nil && got.Topic == "t"
		})
	})
}
