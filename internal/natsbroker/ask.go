package natsbroker

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
)

// A JetStream cluster does not answer the API requests that reach it
// while a stream changes leader (its leader's server shut down): on a
// 3-node cluster, the first stream info sent after the leader's
// shutdown went unanswered, and the next, 300 ms later, was answered
// within a millisecond. nats.go asks once and waits as long as its
// context lasts (5 s without a deadline): Open failed, and a resume
// answered 503 after PublishTimeout (TestClusterOpenWhileANodeIsDown,
// TestClusterResumeAsTheLeaderStops).
// askAgain asks again instead, first after askEvery with no answer.
const askEvery = 500 * time.Millisecond

// askWait bounds askAgain's wait when ctx has no deadline, as nats.go's
// own timeout for JetStream's API bounded the one request before.
const askWait = 5 * time.Second

// askAgain returns what ask answers, asking again each time it has no
// answer within its wait, until ctx ends (or askWait passes, for a ctx
// without a deadline). The first wait is askEvery, and each next one twice
// the one before (0.5 s, 1 s, 2 s...): a request is dropped when it is
// asked again, and a busy server that answered each in 700 ms was never
// heard with a wait of askEvery alone (TestConsumerMadeAgainWhileNATSAnswersSlowly,
// TestResumeWhileNATSAnswersSlowly). Only a request that may be repeated
// may be asked again: a lookup, or the creation of a consumer by name (or
// under a new name, its predecessor left to the server).
func askAgain[T any](ctx context.Context, ask func(context.Context) (T, error)) (T, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, askWait)
		defer cancel()
	}
	for wait := askEvery; ; wait *= 2 {
		attempt, cancel := context.WithTimeout(ctx, wait)
		v, err := ask(attempt)
		cancel()
		if !unanswered(err) || ctx.Err() != nil {
			return v, err
		}
	}
}

// unanswered reports whether err is a request's wait for an answer that
// did not come.
func unanswered(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
}
