package natsbroker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A JetStream cluster does not answer the API requests that reach it
// while a stream changes leader (its leader's server shut down): on a
// 3-node cluster, the first stream info sent after the leader's
// shutdown went unanswered, and the next, 300 ms later, was answered
// within a millisecond. nats.go asks once and waits as long as its
// context lasts (5 s without a deadline): Open failed, and a resume
// answered 503 after PublishTimeout (TestClusterOpenWhileANodeIsDown,
// TestClusterResumeAsTheLeaderStops).
// askAgain asks again instead, each askEvery with no answer.
const askEvery = 500 * time.Millisecond

// askWait bounds askAgain's wait when ctx has no deadline, as nats.go's
// own timeout for JetStream's API bounded the one request before.
const askWait = 5 * time.Second

// askAgain returns the first answer to ask, which it asks again each
// askEvery that it has none, until ctx ends (or
// askWait passes, for a ctx without a deadline). Each request waits for
// its answer as long as ctx lasts: a busy server that answered each in
// 700 ms was never heard when each was dropped after askEvery
// (TestConsumerMadeAgainWhileNATSAnswersSlowly,
// TestResumeWhileNATSAnswersSlowly), and a wait that doubled instead
// heard a cluster back from an election up to seconds late. Only a
// request that may be repeated may be asked again: a lookup, the
// creation of a stream (JetStream answers a repeat of the same config
// with the stream the first made), or the creation of a consumer by name
// (or under a new name each time, the others deleted).
func askAgain[T any](ctx context.Context, ask func(context.Context) (T, error)) (T, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, askWait)
		defer cancel()
	}
	type answer struct {
		v   T
		err error
	}
	deadline, _ := ctx.Deadline()
	answers := make(chan answer, int(time.Until(deadline)/askEvery)+2) // one for each ask
	var asks sync.WaitGroup
	defer asks.Wait() // after cancel: each ends with ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	asked := 0
	send := func() {
		asked++
		asks.Go(func() {
			v, err := ask(ctx)
			answers <- answer{v, err}
		})
	}
	send()
	tick := time.NewTicker(askEvery)
	defer tick.Stop()
	for {
		select {
		case a := <-answers:
			if !unanswered(a.err) || ctx.Err() != nil {
				return a.v, a.err
			}
		case <-tick.C:
			if asked < cap(answers) {
				send()
			}
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
	}
}

// unanswered reports whether err is a request's wait for an answer that
// did not come.
func unanswered(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrAsyncPublishTimeout)
}

// errCodeUnavailable is nats-server's error code for "JetStream system
// temporarily unavailable" (JSClusterNotAvailErr); nats.go names none.
const errCodeUnavailable jetstream.ErrorCode = 10008

// unavailable reports whether err is JetStream's answer that it is
// temporarily unavailable.
func unavailable(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeUnavailable
}

// electing reports whether err is JetStream's answer that it is
// temporarily unavailable (10008) or that the stream is offline (10118),
// as a cluster's servers answer while the stream elects a leader.
func electing(err error) bool {
	return unavailable(err) || streamOffline(err)
}

// askThroughElection is askAgain that also asks again, each askEvery,
// while JetStream answers that it is temporarily unavailable (10008) or
// that the stream is offline (10118), as a cluster's servers answer while
// the stream elects a new leader (its leader stopped), until ctx ends (or
// askWait passes, for a ctx without a deadline): then it returns that
// last answer. A resume took the first such answer
// for the store unreachable and answered 503
// (TestResumeWhileTheStreamElectsALeader).
func askThroughElection[T any](ctx context.Context, ask func(context.Context) (T, error)) (T, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, askWait)
		defer cancel()
	}
	for {
		v, err := askAgain(ctx, ask)
		if !electing(err) || pause(ctx, askEvery) != nil {
			return v, err
		}
	}
}
