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
// delivers: fewer once it answers that it has no more (404, or 408). It
// waits for the server's answer as long as ctx lasts.
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
func (b *Broker) pull(ctx context.Context, cons jetstream.Consumer, n int) ([]*nats.Msg, error) {
	sub, err := b.nc.SubscribeSync(b.nc.NewInbox())
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	req, err := json.Marshal(struct {
		Batch  int  `json:"batch"`
		NoWait bool `json:"no_wait"`
	}{n, true})
	if err != nil {
		return nil, err
	}
	info := cons.CachedInfo()
	subject := jetstream.DefaultAPIPrefix + "CONSUMER.MSG.NEXT." + info.Stream + "." + info.Name
	if err := b.nc.PublishRequest(subject, sub.Subject, req); err != nil {
		return nil, err
	}
	var msgs []*nats.Msg
	for len(msgs) < n {
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
		case status == "404" || status == "408":
			return msgs, nil // no more now
		case status != "100": // 100: a heartbeat, none asked for
			return nil, fmt.Errorf("pull from consumer %s: %s %s", info.Name, status, m.Header.Get("Description"))
		}
	}
	return msgs, nil
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
