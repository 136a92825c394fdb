package natsbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// fetchNoWait asks the page consumer cons for up to n of the messages it
// has now, as jetstream's FetchNoWait does, and returns those the server
// delivers: fewer once it answers that it has no more (404, or 408), or
// once they take the bound of a pull in bytes (pull). It waits for the
// server's answer as long as ctx lasts.
//
// FetchNoWait gives up when a second passes with no answer, as if the
// consumer had nothing: a server slow to answer (busy with a crowd of
// resumes, on a loaded machine) delivers the messages after that to an
// inbox no longer read, and the consumer, which takes no
// acknowledgements, has moved past them. A resume then failed, the
// messages counted but not delivered (TestResumeStormWaitsForConsumers,
// 2 runs in 10 of its package), or its page ended early.
//
// A reconnect while it waits ends the wait with errPullLost: what the
// server sent before it may be lost, and the consumer, which takes no
// acknowledgements, has moved past it. Waited for until ctx ended, the
// answer never came, and the resume failed, its time spent ("context
// deadline exceeded"; TestResumeWhosePagesPullIsLostWithTheConnection).
func (b *Broker) fetchNoWait(ctx context.Context, cons jetstream.Consumer, n int) ([]*nats.Msg, error) {
	// Taken before the request is sent: a reconnect after it may have
	// lost the request or its answer.
	back := b.reconnected()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-back:
			cancel(errPullLost)
		case <-ctx.Done():
		}
	}()
	msgs, err := b.pull(ctx, cons, n)
	if err != nil && errors.Is(context.Cause(ctx), errPullLost) {
		return nil, errPullLost
	}
	return msgs, err
}

// errPullLost is fetchNoWait's error when the connection reconnected while
// it waited for the server's answer: readPage's caller reads the page again
// through a new consumer.
var errPullLost = errors.New("nats: a page's pull in flight as the connection reconnected (its answer may be lost)")

// pull is fetchNoWait's request and its wait for the server's answer.
//
// It asks for at most pullBytes, as the instance's consumer does
// (consumer.go): a page's first pull asks for replayPull messages, and
// with no bound in bytes the server sent them all at once on the
// instance's one connection, ahead of the answers of JetStream's API and
// the consumer's heartbeats: 32 MiB for a page of events of 1 MiB, times
// the resumes reading pages at once (reads.go), for a page that ends at
// the first of them (TestResumePullsABoundedNumberOfBytes). The server
// stops at the bound: it answers "409 Message Size Exceeds MaxBytes" when
// the next message does not fit, and sends nothing more once the bytes
// sent take the bound exactly; either way pull returns what came, fewer
// than n, and readPage pulls again. A message larger than the bound (one
// a server of a larger max_payload took) is pulled alone, with no bound:
// the server would answer that 409 to every bounded pull, and the replay
// never pass it (TestResumeReadsAnEventLargerThanAPull).
func (b *Broker) pull(ctx context.Context, cons jetstream.Consumer, n int) ([]*nats.Msg, error) {
	sub, err := b.nc.SubscribeSync(b.nc.NewInbox())
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	bound := b.pullBytes()
	req, err := pullRequest(n, bound)
	if err != nil {
		return nil, err
	}
	info := cons.CachedInfo()
	subject := jetstream.DefaultAPIPrefix + "CONSUMER.MSG.NEXT." + info.Stream + "." + info.Name
	if err := b.nc.PublishRequest(subject, sub.Subject, req); err != nil {
		return nil, err
	}
	var msgs []*nats.Msg
	// sent is what the server counted of the bound: each message's
	// subject, reply subject, headers and data, as it came (Size).
	for sent := 0; len(msgs) < n && (bound == 0 || sent < bound); {
		m, err := sub.NextMsgWithContext(ctx)
		if errors.Is(err, nats.ErrNoResponders) && len(msgs) == 0 {
			// No server took the request: on a cluster, the server
			// this instance is connected to may not know yet of the
			// consumer just created on another (2 % of the resumes
			// read from the stream failed so, TestClusterDeepResumes).
			// Nothing was pulled: ask again.
			if err := pause(ctx, noRespondersWait); err != nil {
				return nil, err
			}
			if err := b.nc.PublishRequest(subject, sub.Subject, req); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		switch status := m.Header.Get("Status"); {
		case status == "" || len(m.Data) > 0:
			msgs = append(msgs, m)
			sent += m.Size()
		case status == "404" || status == "408":
			return msgs, nil // no more now
		case status == "409" && m.Header.Get("Description") == tooLargeForPull && len(msgs) > 0:
			return msgs, nil // the bound: the next message did not fit
		case status == "409" && m.Header.Get("Description") == tooLargeForPull && len(msgs) == 0 && bound > 0:
			// The next message alone is larger than the bound; the
			// request has ended, nothing sent. Ask for it alone.
			n, bound = 1, 0
			if req, err = pullRequest(n, bound); err != nil {
				return nil, err
			}
			if err := b.nc.PublishRequest(subject, sub.Subject, req); err != nil {
				return nil, err
			}
		case status != "100": // 100: a heartbeat, none asked for
			return nil, fmt.Errorf("pull from consumer %s: %s %s", info.Name, status, m.Header.Get("Description"))
		}
	}
	return msgs, nil
}

// tooLargeForPull is the description of the server's 409 when the next
// message takes more than what is left of a pull's max_bytes.
const tooLargeForPull = "Message Size Exceeds MaxBytes"

// pullRequest is a no-wait pull's request for up to n messages and
// maxBytes bytes (0: no bound).
func pullRequest(n, maxBytes int) ([]byte, error) {
	return json.Marshal(struct {
		Batch    int  `json:"batch"`
		MaxBytes int  `json:"max_bytes,omitempty"`
		NoWait   bool `json:"no_wait"`
	}{n, maxBytes, true})
}

// noRespondersWait is how long fetchNoWait waits before it asks again
// for messages that no server took the request for.
const noRespondersWait = 5 * time.Millisecond

// pause waits d, or returns ctx's error once it ends first.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
