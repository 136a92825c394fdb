package natsbroker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// lateCtx is a context whose deadline has passed but which is not done
// yet: a context.WithTimeout whose timer has fired and whose cancellation,
// run on a goroutine of its own, has not (a loaded machine). The batched
// TestPublishAnsweredUnavailableIsNotSentAgainLater saw such a retry sent
// after its caller's deadline, answered 503 and stored.
type lateCtx struct{ context.Context }

func (lateCtx) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

// A publish whose deadline has passed by the clock is not sent, whether
// or not its context has been cancelled yet, in either mode: its caller
// answers 503, and a send would store what the client may send again.
func TestPublishPastItsDeadlineIsNotSent(t *testing.T) {
	t.Run("batched", func(t *testing.T) {
		p := &publisher{queue: make(chan *publishing, 1), stop: make(chan struct{})} // no run: the test looks at the queue
		got := publishInBackground(lateCtx{context.Background()}, p, &nats.Msg{Subject: "ssehub.a"})
		select {
		case err := <-got:
			if !errors.Is(err, errNotSent) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("publish past its deadline: %v, want errNotSent and context.DeadlineExceeded", err)
			}
		case <-time.After(waitLimit):
			t.Fatalf("a publish past its deadline still waits after %v (queued: %d)", waitLimit, len(p.queue))
		}
		if n := len(p.queue); n != 0 {
			t.Fatalf("a publish past its deadline was queued to be sent (%d)", n)
		}
	})
	t.Run("unbatched", func(t *testing.T) {
		ns := startNATS(t)
		b := openBroker(t, testBrokerOptions(ns))
		p := newPublisher(b.js, make(chan struct{}), false)
		_, err := p.publish(lateCtx{context.Background()}, &nats.Msg{Subject: b.subject("a"), Data: []byte("late")})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("publish past its deadline: %v, want context.DeadlineExceeded", err)
		}
		if n := storedEvents(t, b); n != 0 {
			t.Fatalf("a publish past its deadline was stored (%d events)", n)
		}
	})
}
