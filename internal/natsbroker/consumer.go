package natsbroker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// createWait bounds the wait for one consumer's first creation
// (live.create); each next one in a row that went unanswered waits twice
// as long, up to maxCreateWait: a server slow to answer is heard.
const (
	createWait    = 2 * time.Second
	maxCreateWait = 16 * time.Second
)

// consumerHeartbeat is how often NATS tells an idle local consumer it is
// still there: missing two, it is recreated (consume).
const consumerHeartbeat = time.Second

// minPullBytes is the least a consumer's pull asks for (pullBytes), and
// pullSlack what a delivery carries besides its headers and data, which
// the server counts against a pull too: its subject (within the server's
// max_control_line, 4 KiB by default), and its reply subject, which names
// the stream and the consumer.
const (
	minPullBytes = 4 << 20
	pullSlack    = 64 << 10
)

// pullBytes is how many bytes of events the consumer asks NATS for ahead
// of those it has handled (nats.go's PullMaxBytes: once half of them are
// handled, it asks for as many more). The events of a pull come on the
// instance's one connection, ahead of everything else the server sends
// it: the answers of JetStream's API (a stream's info, a consumer's
// creation), the pulls' heartbeats, the acknowledgements of publishes.
// Bounded by count alone (nats.go's default, 500 messages), a burst of
// events of 1 MiB queued up to 500 MiB there: with 80 MiB queued on a
// loaded machine, each answer came 2 to 4 s after its question, past the
// wait of the one that holds the deliveries (same), and they stood still
// for 11 to 19 s (TestConsumerPullsABoundedNumberOfBytes). It bounds what
// the NATS client holds of the consumer's events, too: below the client's
// pending limit (64 MiB, past which it drops them: a slow consumer) unless
// max_payload is near its own largest, 64 MiB.
//
// It is minPullBytes, or the largest message the consumer may be sent,
// when that is more: the server answers a pull of fewer bytes than the
// next message takes "409 Message Size Exceeds MaxBytes", sending
// nothing, and nats.go, which does not tell, asks again for as many: the
// consumer would stop there for good
// (TestConsumerTakesEventsAsLargeAsMaxPayload). That message passed a
// server's max_payload, which the one the instance is connected to tells
// (a cluster's servers should share it); the hub's own events are smaller
// still (maxStoredBytes of MaxEventBytes); and it carries its subjects
// (pullSlack). read asks for each consumer it reads, so after each
// reconnect: of the largest max_payload a server of the connection has
// told (largestPayload), not the current one's alone. Events stored
// through a server that took 8 MiB were still to be delivered once the
// connection was back on one that takes 1 MiB (the same, restarted so,
// or another of a cluster whose servers do not share it: routes carry
// messages of any size), and each pull, bounded by 1 MiB, was answered
// 409: the consumer stopped for good
// (TestConsumerTakesEventsStoredPastAReconnectsMaxPayload). A larger
// event, stored through a server this connection never reached, still
// stops it.
func (b *Broker) pullBytes() int {
	if b.opts.pullBytes > 0 {
		return b.opts.pullBytes
	}
	largest := max(b.largestPayload(b.nc.MaxPayload()), maxStoredBytes(b.opts.MaxEventBytes)) + pullSlack
	return int(max(minPullBytes, largest))
}

// largestPayload notes now, the max_payload of the server b's connection
// is connected to, and returns the largest one a server of it has told
// since Open: now, or that of a server it was connected to before (Open
// and each reconnect note theirs).
func (b *Broker) largestPayload(now int64) int64 {
	for {
		seen := b.payloadSeen.Load()
		if now <= seen || b.payloadSeen.CompareAndSwap(seen, now) {
			return max(now, seen)
		}
	}
}

// live is history h's one consumer of the whole stream, which hands each
// event, in sequence order and once, to h's local broker (deliver). It is
// what nats.go's ordered consumer is, with two differences: a consumer it
// has to make again is asked for again each askEvery that NATS leaves the
// request unanswered (askAgain), where the ordered consumer asks once and
// waits 10 s, its lock held; and under a new name once unanswered for
// createWait (create says why). After JetStream's meta leader stopped, that
// wait left an instance delivering nothing for 11 s, each of its
// publishes waiting PublishTimeout for its event
// (TestClusterNodeStopsWhilePublishing, its meta case), and Close waited
// for the lock.
//
// Each consumer it makes is a pull consumer with no acknowledgements, one
// replica in memory, named prefix_n, which starts after the last stream
// sequence delivered (at it, once one was delivered: deliver drops it
// again, or finds another event under it). It is made again (reset),
// from that sequence on, when:
//   - a message skips a consumer sequence: one was lost on its way;
//   - the consumer was deleted (then the Broker also checks the stream:
//     renew, as when it cannot be made again for want of its stream), or
//     NATS answers a pull with no responders (its server gone);
//   - two heartbeats are missed (then the Broker also checks the stream:
//     check): a pull request that NATS never got (sent while a restarted
//     server's JetStream was still recovering) leaves it waiting, and
//     nats-server may lose the notice of a stream's deletion;
//   - the connection is back after a loss: what was sent meanwhile is
//     lost, and nothing else would tell until the next event.
//
// Each one made again has the Broker check the stream (check): one
// created again meanwhile sends it nothing until it passes the last
// sequence delivered.
//
// It has no subject filter: the stream's one subject is the prefix's
// wildcard (ensureStream checks it), and a filter equal to it made the
// server match every event's subject for each instance's consumer.
type live struct {
	b       *Broker
	h       *history
	prefix  string         // of the consumers' names
	resets  chan struct{}  // holds one reset asked for
	answers chan struct{}  // holds one notice that the stream answers (streamAnswers)
	stop    chan struct{}  // closed by halt
	done    chan struct{}  // closed when run has returned
	drops   sync.WaitGroup // the deletions of replaced consumers
	halted  sync.Once
	closed  sync.Once
	current atomic.Pointer[made] // the current consumer's name, for retire
	// unavailable is whether remake's last creation was refused as
	// JetStream being unavailable (10008), and no consumer has been made
	// or read on since: watch's second question (askMetaLeader).
	unavailable atomic.Bool

	// mu is held by each message's delivery, so a consumer's messages
	// are checked and delivered one at a time, and none of one replaced
	// is delivered after the reset has read last.
	mu     sync.Mutex
	serial int // of the current consumer: a message or error of another is dropped
	made   int // how many creations were asked for: the next one's name
	cons   jetstream.Consumer
	// repeated is whether the creation of the consumer create returned
	// last was asked more than once (askAgain).
	repeated bool
	cc       jetstream.ConsumeContext // nil while the consumer is made again
	next     uint64                   // the consumer sequence expected next
	last     uint64                   // the stream sequence last delivered
	// from is the last that create made the consumer start after:
	// start refuses one made from a last that trustAgain has since
	// moved back.
	from uint64
	// resumable is whether the current consumer may be read on where
	// it stopped, should a remake be refused (resume): every message of
	// it was taken in order, and NATS did not say it was gone.
	resumable bool
}

// consume makes history h's consumer, starting after the sequence h.seen
// is at, and starts it. Its creation is asked again when NATS leaves it
// unanswered (Open just after a cluster's meta leader stopped failed, 2
// runs in 4: TestClusterOpenAsTheMetaLeaderStops), under a new name after
// createWait, 2 s, then 4 s and 8 s (an instance opened on a server that
// had just rejoined its cluster failed after 2 s, 1 run in 3:
// TestClusterServerCutOff): 14 s at most before it fails, or until ctx
// ends. An answer that JetStream is temporarily unavailable is asked
// again after askEvery, within the same 14 s: a server that had just
// rejoined its cluster answered so until it had caught up
// (TestClusterServerCutOff again, 1 run in CI). So is an answer that
// there are no resources to place it on (noConsumerPeers, 10023), as the
// meta leader answers while every server of the stream is offline (an
// R1 stream's one server restarting just after the stream was found):
// the start failed, though the server, back, served the consumer
// (TestClusterConsumerMadeAtStartWhileTheStreamsServerRestarts).
func (b *Broker) consume(ctx context.Context, h *history) error {
	l := &live{
		b: b, h: h, prefix: rand.Text(), last: h.seen.last(),
		resets: make(chan struct{}, 1), answers: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	var cons jetstream.Consumer
	var err error
	// A reconnect before h.live is set is not told to this consumer
	// (resetConsumers): it is made again then.
	back := b.reconnected()
	giveUp := time.Now().Add(7 * createWait) // 2 + 4 + 8 s
	for limit := createWait; ; {
		// Asked again after a refusal, a creation waits no longer
		// than the 14 s leave.
		cons, err = l.create(ctx, min(limit, time.Until(giveUp)))
		if ctx.Err() != nil || !time.Now().Before(giveUp) {
			break
		}
		if unanswered(err) && limit < 4*createWait {
			limit *= 2
			continue
		}
		if !unavailable(err) && !noConsumerPeers(err) || time.Until(giveUp) <= askEvery || pause(ctx, askEvery) != nil {
			break
		}
	}
	if err == nil {
		if err = l.start(cons); err != nil {
			err = fmt.Errorf("nats: consume stream %q: %w", b.opts.Stream, err)
		}
	} else {
		err = fmt.Errorf("nats: consumer on stream %q: %w", b.opts.Stream, err)
	}
	if err != nil {
		l.drops.Wait() // the deletions of those left unanswered
		return err
	}
	b.renewMu.Lock() // resetConsumers reads it
	h.live = l
	b.renewMu.Unlock()
	go l.run()
	select {
	case <-back:
		l.reset()
	default:
	}
	return nil
}

// errCodeInsufficientResources is nats-server's error code for
// "insufficient resources" (JSInsufficientResourcesErr); nats.go names
// none.
const errCodeInsufficientResources jetstream.ErrorCode = 10023

// noConsumerPeers reports whether err is JetStream's answer to a
// consumer's creation that it has no resources to place it on: so a
// cluster's meta leader answers while it knows every server of the
// stream offline (createGroupForConsumer), and when the servers' cap on
// replicated assets is taken. The first passes once a server of the
// stream is back; consume asks again within its leave, which the second
// outlasts.
func noConsumerPeers(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeInsufficientResources
}

// create makes the next consumer, to start after l.last, asking NATS
// again while it does not answer (askAgain), until ctx ends or wait
// passes.
//
// Each call names a new one. A creation NATS leaves unanswered that
// long may have been placed on a server that is gone: a cluster's meta
// leader places a consumer on one of the stream's servers, and the
// answer comes from that server once it has made it. After the stream's
// leader crashed, it was placed there in 2 runs of 5, and asked again
// under its name it stayed there: the instance delivered nothing for 30 s
// and more (TestClusterNodeStopsWhilePublishing, its crash case), as
// with nats.go's ordered consumer, which asks again under one name too.
//
// A creation that failed may have been made all the same, by a server
// slow to answer or by a repeat of it: it is deleted in passing (or goes
// once idle for its InactiveThreshold, if that is not answered either).
func (l *live) create(ctx context.Context, wait time.Duration) (jetstream.Consumer, error) {
	ask, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	l.mu.Lock()
	l.made++
	l.from = l.last
	start := l.last + 1
	if d := l.h.lastStored(); d != nil && d.seq == l.last {
		// The last one delivered (or the stream's last as the
		// history began) again first: deliver compares it with the
		// one delivered.
		start = l.last
	}
	cfg := jetstream.ConsumerConfig{
		Name:              fmt.Sprintf("%s_%d", l.prefix, l.made),
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       start,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: 5 * time.Minute, // the ordered consumer's: one left behind goes
		Replicas:          1,
		MemoryStorage:     true,
	}
	l.mu.Unlock()
	var asks atomic.Int32
	cons, err := askAgain(ask, func(ctx context.Context) (jetstream.Consumer, error) {
		asks.Add(1)
		return l.h.stream.CreateOrUpdateConsumer(ctx, cfg)
	})
	repeated := asks.Load() > 1
	switch {
	case err == nil:
		l.mu.Lock()
		l.repeated = repeated
		l.mu.Unlock()
	case ctx.Err() != nil:
		// Cut short by the end of l (Close, a renewal that Close
		// ends): the server may have made it all the same, and
		// nothing would read or delete it. Close waits for this.
		l.drop(context.WithoutCancel(ctx), cfg.Name, askEvery, repeated)
	default:
		// Refused, the same creation asked again meanwhile may have
		// made it: askAgain returns the first answer, and a stream
		// created again between the two (a stream not found, then
		// found) kept that consumer for its InactiveThreshold. Not
		// cut short by l's end: a refusal that the stream is not found
		// ends it (renew).
		l.drop(context.WithoutCancel(ctx), cfg.Name, askEvery, repeated)
	}
	return cons, err
}

// made is a consumer's name, and whether its creation was asked more
// than once.
type made struct {
	name     string
	repeated bool
}

// drop deletes the consumer of that name, on a goroutine of its own that
// close waits for, each request waiting at most wait for its answer. One
// whose creation was repeated is deleted once more askEvery later: a
// repeat (askAgain's) sent before the deletion may be handled after it
// by a server busy with other API requests, and make it again
// (TestConsumerRefusedAndMadeByARepeatIsDeleted). ctx ending (Close,
// remake's) ends the first deletion's wait and the pause, not the second
// deletion: it is asked at once then, waiting at most askEvery, before
// Close closes the connection. Skipped, a consumer a repeat had made
// again during a remake's pause was left to the server for its
// InactiveThreshold
// (TestCloseDuringARemakeDeletesAConsumerMadeAgainByARepeat).
//
// The channel it returns gets the first deletion's answer (nil once
// deleted).
func (l *live) drop(ctx context.Context, name string, wait time.Duration, repeated bool) <-chan error {
	deleted := make(chan error, 1)
	l.drops.Go(func() {
		ask, cancel := context.WithTimeout(ctx, wait)
		deleted <- l.h.stream.DeleteConsumer(ask, name)
		cancel()
		if !repeated {
			return
		}
		_ = pause(ctx, askEvery)
		ask, cancel = context.WithTimeout(context.WithoutCancel(ctx), min(wait, askEvery))
		_ = l.h.stream.DeleteConsumer(ask, name)
		cancel()
	})
	return deleted
}

// errMovedBack is start's refusal of a consumer made from a last
// delivered that trustAgain has since moved back.
var errMovedBack = errors.New("nats consumer made past the events a false alarm has it read again")

// start makes cons the current consumer and starts reading it. It
// refuses one made from a last that trustAgain moved back while its
// creation was on its way (errMovedBack), and deletes it: that one starts
// past the events dropped as another stream's, and started, it delivered
// the next event before run came back for the reset trustAgain had
// queued, and the consumer made then started after it, past them too
// (TestConsumerMadeBeforeAFalseAlarmIsNotStarted).
func (l *live) start(cons jetstream.Consumer) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last != l.from {
		l.drop(context.Background(), cons.CachedInfo().Name, askEvery, l.repeated)
		return errMovedBack
	}
	if err := l.read(cons); err != nil {
		return err
	}
	l.next = 1
	l.current.Store(&made{cons.CachedInfo().Name, l.repeated})
	return nil
}

// read reads cons as the current consumer, under a new serial, from the
// message NATS sends it next; l.mu is held.
func (l *live) read(cons jetstream.Consumer) error {
	l.serial++
	serial := l.serial
	l.h.compared.Store(false)
	cc, err := cons.Consume(func(m jetstream.Msg) { l.take(serial, m) },
		jetstream.PullHeartbeat(l.b.opts.heartbeatOr(consumerHeartbeat)),
		jetstream.PullMaxBytes(l.b.pullBytes()),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) { l.failed(serial, err) }))
	if err != nil {
		return err
	}
	l.cons, l.cc, l.resumable = cons, cc, true
	return nil
}

// resume reads on old, the consumer remake stopped, whose deletion it
// asked for (deleted, the first deletion's answer), as the current one
// again: remake's, when its creation of the next one is refused for
// JetStream being unavailable. It does so only once that deletion too
// was refused so (the consumer is there still), asked again once if it
// went unanswered; nil once it did, else why it did not (remake logs
// it).
//
// And only once NATS says it delivered no message past the last taken,
// asked when the stopped reading (stopped: its Closed) has unsubscribed:
// a message sent that reading (in flight as it stopped, or to its pull
// before the server had its unsubscription) is lost to it, AckNone, and
// read on, the consumer went on from the one after. take finds such a
// gap only at the next message, which may not come for long: the event
// stayed undelivered, its publish stored
// (TestConsumerNotReadOnPastAMessageItLost). One lost after the question
// is found so (take), and asks for a reset: then it is not resumed again.
//
// So a server cut off from JetStream's meta leader, which answers every
// consumer's creation and deletion that way, leads its stream, stores
// its publishes, and serves the consumer it has: made again, for missed
// heartbeats on a loaded machine, the instance on it delivered nothing
// for the whole partition, its publishes stored
// (TestClusterConsumerResumedWhileCutOffFromTheMetaLeader).
func (l *live) resume(ctx context.Context, old jetstream.Consumer, oldMade *made, deleted <-chan error, stopped <-chan struct{}) error {
	select {
	case err := <-deleted:
		if unanswered(err) && ctx.Err() == nil {
			// A server just cut off leaves the requests only the
			// meta leader answers unanswered while it still takes
			// it to be there, for seconds, and then refuses them as
			// unavailable, as it did this remake's creation: the
			// deletion is asked again. Not, the old consumer was
			// left unread for the whole partition
			// (TestConsumerReadOnWhenItsDeletionWasUnansweredAndThenRefused).
			ask, cancel := context.WithTimeout(ctx, askWait)
			err = l.h.stream.DeleteConsumer(ask, old.CachedInfo().Name)
			cancel()
		}
		if !unavailable(err) {
			// Deleted, or unanswered still.
			return fmt.Errorf("its deletion was not refused as unavailable: %w", err)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-stopped: // its unsubscription sent before the question
	case <-ctx.Done():
		return ctx.Err()
	}
	ask, cancel := context.WithTimeout(ctx, askWait)
	info, err := old.Info(ask)
	cancel()
	if err != nil {
		return fmt.Errorf("what it delivered was not told: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if taken := l.next - 1; info.Delivered.Consumer != taken {
		return fmt.Errorf("NATS delivered %d of its messages, %d taken: the others were lost with the reading stopped", info.Delivered.Consumer, taken)
	}
	if !l.resumable {
		// Not since remake looked: a false alarm (trustAgain) has the
		// consumer read again from the last event delivered, before
		// those the old one dropped as another stream's. Read on, it
		// was past them, and they were never delivered
		// (TestConsumerNotReadOnAfterAFalseAlarmDuringItsRemake).
		return errors.New("a false alarm has it read from the last event delivered")
	}
	if err := l.read(old); err != nil {
		return err
	}
	l.current.Store(oldMade)
	return nil
}

// take delivers m, a message of consumer serial, unless that consumer was
// replaced, or m skips one (then it asks for a reset).
func (l *live) take(serial int, m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case serial != l.serial:
		return
	case md.Sequence.Consumer != l.next:
		// So are the ones after it, until the reset.
		l.resumable = false
		l.b.opts.Logger.Debug("nats consumer skipped a message: made again", "want", l.next, "got", md.Sequence.Consumer)
		l.reset()
		return
	}
	l.next++
	l.last = md.Sequence.Stream
	l.b.deliver(l.h, m, md)
}

// failed handles err, reported by consumer serial.
func (l *live) failed(serial int, err error) {
	l.b.opts.Logger.Debug("nats consumer", "err", err)
	l.mu.Lock()
	current := serial == l.serial
	if current && (errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, nats.ErrNoResponders)) {
		l.resumable = false // gone, or its server
	}
	l.mu.Unlock()
	if !current {
		return
	}
	switch {
	case errors.Is(err, jetstream.ErrConsumerDeleted):
		l.b.renew(l.h)
		l.reset()
	case errors.Is(err, jetstream.ErrNoHeartbeat):
		l.b.check(l.h)
		l.reset()
	case errors.Is(err, nats.ErrNoResponders):
		l.reset()
	}
}

// trustAgain has h's consumer deliver again once it had taken the stream
// it reads for another (h.foreign: made again on a stream created again
// by h's name, its first message told), and a renewal found the stream
// h's after all: a false alarm, as when a backup of h's stream, with
// every event h delivered, was restored meanwhile. Made again after the
// last sequence h delivered (lastStored), not after those of the other
// stream it dropped, it delivers the stream's events from there. Left
// set, foreign dropped every event from then on, while the instance,
// ready, stored its publishes (TestConsumerDeliversAgainAfterAFalseAlarm).
// It does not wait for the consumer.
func (l *live) trustAgain() {
	l.mu.Lock()
	foreign := l.h.foreign
	if foreign {
		l.h.foreign = false
		if d := l.h.lastStored(); d != nil {
			l.last = d.seq
		} else {
			l.last = l.h.seen.last()
		}
		l.serial++ // nothing more of the consumer that read the other stream
		l.resumable = false
	}
	l.mu.Unlock()
	if foreign {
		l.reset()
	}
}

// reset asks run to make the consumer again. It does not wait.
func (l *live) reset() {
	l.h.compared.Store(false)
	select {
	case l.resets <- struct{}{}:
	default: // one is asked for already
	}
}

// streamAnswers tells a remake waiting out its back-off that JetStream
// answers for the stream its creation was refused for: the Broker found
// the stream (renewFrom), or the stream stored a publish (Publish). It
// asks again within askEvery. It does not wait.
func (l *live) streamAnswers() {
	if len(l.answers) > 0 {
		return // told already: most often, each publish after the first
	}
	select {
	case l.answers <- struct{}{}:
	default: // told already
	}
}

// run makes the consumer again each time reset asks, until close.
func (l *live) run() {
	defer close(l.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-l.stop
		cancel()
	}()
	for {
		select {
		case <-l.stop:
			return
		case <-l.resets:
		}
		select {
		case <-l.stop: // the reset may be retire's deletion
			return
		default:
		}
		l.remake(ctx)
	}
}

// remake stops the current consumer and makes the next one, trying until
// it is made or ctx ends. The old one is deleted in passing; one NATS
// did not delete goes once idle for its InactiveThreshold.
//
// A creation left unanswered is asked again at once, under a new name
// and with twice the wait (create). An answer that is no consumer (the
// stream not found, JetStream not ready on a restarted server) is asked
// again less and less often, as the ordered consumer did (up to 10 s),
// and at once when a reset comes meanwhile: a reconnect waited out the
// back-off its server's outage had grown. A creation refused while the
// stream answers otherwise (streamAnswers: the Broker finds it there, it
// stores a publish) is asked again within askEvery: a JetStream that had
// not yet taken the stream back answered that it was not found, or that
// it was temporarily unavailable, and the instance, ready again and
// storing, delivered nothing for the rest of a back-off grown up to 10 s
// (TestConsumerAskedForSoonOnceItsStreamIsFound,
// TestConsumerAskedForSoonOnceJetStreamStoresAgain). One refused for
// another reason (refusedForItself) is not: the stream's answers say
// nothing of it. A creation refused for JetStream being unavailable,
// the old one's deletion refused so too, reads on the old one (resume),
// once in a remake: a server cut off from the meta leader answers so for
// as long as the partition lasts. Refused so still, it has watch ask
// whether another server would make it (unavailable, askMetaLeader).
func (l *live) remake(ctx context.Context) {
	l.mu.Lock()
	old, oldMade := l.cons, l.current.Load() // set together (start)
	// One whose creation was repeated is not: drop deletes it a second
	// time, which may come after the resume. Nor one not being read.
	resumable := l.resumable && oldMade != nil && !oldMade.repeated && l.cc != nil
	var stopped <-chan struct{} // closed once it has unsubscribed
	if l.cc != nil {
		stopped = l.cc.Closed()
		l.cc.Stop()
		l.cc = nil
	}
	l.serial++ // nothing more of the old one
	l.mu.Unlock()
	var deleted <-chan error
	if old != nil {
		// One whose creation was repeated is deleted twice (drop).
		deleted = l.drop(ctx, old.CachedInfo().Name, askWait, oldMade != nil && oldMade.repeated)
	}
	select {
	case <-l.answers: // told of before this remake's refusals
	default:
	}
	limit, wait := createWait, askEvery
	warned := false // of a refusal for itself, once in a remake
	tried := false  // to read on the old one (resume), once in a remake
	for {
		cons, err := l.create(ctx, limit)
		if err == nil {
			if err = l.start(cons); err == nil {
				l.unavailable.Store(false)
				if warned {
					l.b.opts.Logger.Info("nats consumer made: subscribers get events again", "stream", l.b.opts.Stream)
				}
				// The stream of h's name may be another by now, created
				// again while the consumer was not there to be told (one
				// of memory storage, after a NATS restart): its first
				// message would tell (deliver), but none comes before
				// the new stream passes the old one's last sequence.
				l.b.check(l.h)
				return
			}
			if errors.Is(err, errMovedBack) {
				// Made again from where trustAgain moved it back,
				// at once: this is the reset it queued.
				select {
				case <-l.resets:
				default:
				}
				continue
			}
		}
		l.b.opts.Logger.Debug("nats consumer not made again", "err", err)
		l.unavailable.Store(unavailable(err))
		if !tried && unavailable(err) {
			tried = true // once
			why := errors.New("its messages were not all taken in order, or it is gone, or its creation was repeated")
			if resumable {
				if why = l.resume(ctx, old, oldMade, deleted, stopped); why == nil {
					l.unavailable.Store(false)
					l.b.opts.Logger.Info("nats consumer not made again, JetStream being unavailable: reading on the one it replaced, still there", "stream", l.b.opts.Stream)
					l.b.check(l.h)
					return
				}
			}
			l.b.opts.Logger.Debug("nats consumer not made again, JetStream being unavailable, nor read on", "why", why)
		}
		if !warned && ctx.Err() == nil && refusedForItself(err) {
			// Not a passing state of NATS: the operator's to end.
			warned = true
			l.b.opts.Logger.Warn("nats consumer refused: this instance's subscribers get no event until it is made; asking again, less and less often (every 10 s at most)",
				"stream", l.b.opts.Stream, "err", err)
		}
		switch {
		case ctx.Err() != nil:
			return
		case unanswered(err):
			limit = min(2*limit, maxCreateWait)
			continue
		case errors.Is(err, jetstream.ErrStreamNotFound):
			// Deleted, or of memory storage on a NATS server that
			// restarted: nothing else tells the Broker until a
			// publish answers 503.
			l.b.renew(l.h)
		case noJetStream(err):
			// A NATS server back without JetStream: nothing else
			// tells an instance nobody publishes through, which
			// answered /readyz 200 while it delivered nothing. The
			// renewal says so, and ends once the stream answers.
			l.b.renew(l.h)
		}
		if !l.backOff(ctx, &limit, &wait, !refusedForItself(err)) {
			return
		}
	}
}

// refusedForItself reports whether err is JetStream's refusal of a
// consumer for what it asks, which a stream that answers does not end:
// an API error of a 4xx status (the stream's or the account's cap on
// consumers taken, say), but the stream not found. That the stream
// answers says nothing of it. A 5xx status is the server's state
// (temporarily unavailable, JetStream not enabled, still recovering),
// which a stream that answers may have left.
func refusedForItself(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.Code >= 400 && apiErr.Code < 500 && !errors.Is(err, jetstream.ErrStreamNotFound)
}

// backOff is remake's pause before it asks again, of *wait (then doubled,
// up to 10 s), or cut short by a reset (then *limit and *wait start
// over), or, when heed, cut to askEvery by streamAnswers; false once ctx
// ends. A refusal for a reason of the consumer's own (refusedForItself)
// does not heed streamAnswers: each publish stored cut every pause, and
// the instance asked again twice a second for as long as JetStream
// refused (TestConsumerRefusedForItsCapBacksOffThoughPublishesAreStored).
func (l *live) backOff(ctx context.Context, limit, wait *time.Duration, heed bool) bool {
	t, until := time.NewTimer(*wait), time.Now().Add(*wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-l.resets:
			*limit, *wait = createWait, askEvery
			return true
		case <-l.answers:
			if !heed {
				continue
			}
			*wait = askEvery
			if time.Until(until) > askEvery {
				t.Reset(askEvery)
				until = time.Now().Add(askEvery)
			}
		case <-t.C:
			*wait = min(2**wait, 10*time.Second)
			return true
		}
	}
}

// info is the current consumer's, asked of NATS; an error while it is
// being made again.
func (l *live) info(ctx context.Context) (*jetstream.ConsumerInfo, error) {
	l.mu.Lock()
	cons, ok := l.cons, l.cc != nil
	l.mu.Unlock()
	if !ok {
		return nil, errors.New("nats consumer being made again")
	}
	return cons.Info(ctx)
}

// halt stops run: no consumer is made again. It does not wait.
func (l *live) halt() { l.halted.Do(func() { close(l.stop) }) }

// retire halts l and deletes the current consumer, waiting at most wait
// for NATS to answer: Close's and renewFrom's, so that the server does
// not keep it for its InactiveThreshold once the instance is gone (many
// restarts left as many consumers for 5 minutes), or once its history
// has ended (made again by the stream's name, it may be on the stream
// that replaced it). It does not wait for l's lock, which a
// delivery may hold while it waits for NATS (Broker.same); a consumer
// that a reset under way makes meanwhile is deleted once run has
// returned, within wait (after it, the server removes it once idle), as
// is one whose creation was cut short (create). A current consumer whose
// creation was repeated is deleted twice (drop). Once run has returned,
// retire waits for every drop, each bounded by its own requests' waits
// and pause (1.5 s at most with wait askEvery): Close closes the
// connection once retire returns, and a deletion asked after it was
// never sent. Bounded by wait instead, a drop whose goroutine a busy
// machine ran late was cut off before its second deletion, and the
// consumer a repeat had made again was left to the server
// (TestCloseDuringARemakeDeletesAConsumerMadeAgainByARepeat).
func (l *live) retire(wait time.Duration) {
	l.halt()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	select {
	case <-l.done:
	case <-ctx.Done():
	}
	switch c := l.current.Load(); {
	case c == nil:
	case c.repeated:
		// Its second deletion, askEvery after the first, is waited
		// for too (below).
		l.drop(context.Background(), c.name, wait, true)
	default:
		if err := l.h.stream.DeleteConsumer(ctx, c.name); err != nil {
			l.b.opts.Logger.Debug("nats consumer not deleted", "err", err)
		}
	}
	select {
	case <-l.done: // no drop starts any more
		l.drops.Wait()
	default:
	}
}

// close stops the consumer for good, and returns once no message of it
// is being delivered and none will be. It is idempotent.
func (l *live) close() {
	l.closed.Do(func() {
		l.halt()
		<-l.done
		l.drops.Wait()
		l.mu.Lock()
		cc := l.cc
		l.serial++
		l.mu.Unlock()
		if cc != nil {
			cc.Stop()
			<-cc.Closed()
		}
	})
}

// deliver hands one message of the stream, with metadata md, to h's
// local broker with the id of its sequence. A message the hub cannot take
// (published by another client to a subject that is no topic) is skipped:
// its id has no event. Only h's live consumer calls it, one message at a
// time (live.take holds its lock).
//
// The first message of each consumer (live makes a new one after a
// reconnect or a deletion) waits until the stream is known to be h's
// still: a consumer made again by the stream's name may be reading a
// stream created again, and an event of that one is never delivered with
// h's ids.
func (b *Broker) deliver(h *history, m jetstream.Msg, md *jetstream.MsgMetadata) {
	if h.foreign {
		return
	}
	if md.Consumer != h.consumer {
		if !b.same(h) {
			h.foreign = true
			b.renew(h)
			return
		}
		h.consumer = md.Consumer
	}
	if d := h.lastStored(); d != nil && md.Sequence.Stream <= d.seq {
		// A consumer made again starts at the last sequence delivered,
		// or before the first at the stream's last as h began, where a
		// purged stream holds none (create, lastStored). Another
		// message under it is another history: a
		// NATS server that restarted with a store that lost its last
		// writes, or a stream restored from a backup, stores new events
		// under sequences delivered with others, and its last sequence
		// (same) no longer tells once new events passed them. Taken
		// for h's, the events under those sequences never reached the
		// local broker, whose ids stood for the lost ones. The same
		// one tells resumes that the stream is h's up to it (compared).
		switch {
		case md.Sequence.Stream < d.seq:
		case md.Timestamp.Equal(d.at):
			h.compared.Store(true)
		default:
			b.opts.Logger.Warn("nats stream holds another event under a sequence this instance had passed (its store lost events, or was restored): its subscriptions end and resume from the stream",
				"stream", b.opts.Stream, "seq", d.seq)
			h.foreign = true
			h.rewritten.Store(true)
			b.renew(h)
		}
		return
	}
	h.lastDelivered.Store(&stamp{md.Sequence.Stream, md.Timestamp})
	h.compared.Store(true)
	b.lag.Store(md.NumPending)
	if last := h.seen.last(); md.Sequence.Stream > last+1 && b.lost(h, last) {
		// A consumer reads every sequence of the stream in order: those
		// it passed over were let go of before it read them (the
		// stream's limits while this instance lagged or was cut off, a
		// purge). The local broker must not take them as ids with no
		// event, which a resume crosses: its subscribers missed them.
		b.opts.Logger.Warn("nats stream let go of events before this instance read them: its subscriptions end, and their clients are reset",
			"stream", b.opts.Stream, "first_seq", last+1, "last_seq", md.Sequence.Stream-1)
		lost := fmt.Errorf("%w (stream %q, sequences %d to %d)", ErrEventsLost, b.opts.Stream, last+1, md.Sequence.Stream-1)
		if err := h.mem.Lose(h.ids.id(md.Sequence.Stream), lost); err != nil {
			b.opts.Logger.Debug("nats lost events", "err", err)
		}
	}
	defer h.seen.advance(md.Sequence.Stream)
	topic, ok := b.topic(m.Subject())
	if !ok {
		return
	}
	if _, err := h.mem.Deliver(h.ids.id(md.Sequence.Stream), topic, eventTypeOf(m.Headers()), string(m.Data())); err != nil {
		b.opts.Logger.Debug("nats event skipped", "seq", md.Sequence.Stream, "subject", m.Subject(), "err", err)
	}
}

// lost reports whether the sequences after last that h's consumer passed
// over are events lost to h's local broker: it has delivered an event or
// has a subscription, and the stream may have let them go (letGo). Before
// either, the local history starts at the next event, as it does
// anyway (stream.Memory.Deliver), and nobody missed anything: so at start
// with a stream at its limit, which lets go of the tail's first events
// as events are stored while the instance starts.
func (b *Broker) lost(h *history, last uint64) bool {
	if s := h.mem.Stats(); s.Published == 0 && s.Subscribers == 0 {
		return false
	}
	return b.letGo(h, last)
}

// letGo reports whether the sequences after last that h's consumer passed
// over may have been let go of from the stream's oldest end (its limits,
// a purge of all of it or up to a sequence), asking the stream. They were
// not when its first sequence is still at last or below: the stream lets
// go of its events oldest first, so those were deleted from within it (a
// subject purged, a message removed, one whose TTL ran out), and are ids
// with no event, as a resume from the stream (resume.go) and the tail
// loaded at start take them. Ended for them, every subscription came back
// and resumed across them all the same, and the tail loaded at start kept
// only what followed the last deletion in it.
//
// A question that fails is asked again, each ReconnectWait, and one left
// unanswered each askEvery (streamInfo), for PublishTimeout: a request
// in flight as the connection broke, or sent while it reconnects, was
// taken for events lost, and every subscription of the instance ended
// for a brief network fault. A stream that cannot tell by then is taken
// to have let them go. It gives up when h ends (renewed, or the Broker
// closed): the delivery holds the consumer's lock, which h's end waits
// for, and Close waited up to PublishTimeout.
func (b *Broker) letGo(h *history, last uint64) bool {
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.PublishTimeout)
	defer cancel()
	go func() {
		select {
		case <-h.ended:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		info, err := streamInfo(ctx, h.stream)
		if err == nil {
			return !h.is(info, last) || info.State.FirstSeq > last
		}
		b.opts.Logger.Debug("nats stream info", "err", err)
		if pause(ctx, b.opts.ReconnectWait) != nil {
			return !h.over()
		}
	}
}

// check asks, on a goroutine of its own, whether h's stream is still
// there as h's, and renews h when it is not. The consumer calls it when
// it missed two heartbeats: its stream may have been deleted with the
// notice lost (nats-server queues it on the stream's send loop and then
// stops that loop), and then nothing else tells the instance until the
// next publish or event; and each time it is made again (remake), as
// after a reconnect. Unlike renew it leaves h ready while it asks, so
// a consumer merely slow to hear does not make publishes fail. Without a
// connection it does nothing: that explains the silence, and the
// consumer made again after the reconnect calls it.
//
// The question is asked again every askEvery that NATS leaves it
// unanswered (streamInfo), until PublishTimeout: asked once, a question
// lost while the stream elected a leader left a stream created again
// unnoticed (the consumer made again meanwhile on the new one, its own
// check skipped while this one waited), and the old history's
// subscribers waited for events until the next publish
// (TestStreamCreatedAgainWhileItsInfoIsUnansweredWithItsConsumersNoticeLost).
//
// A check asked while one runs is asked once that one is answered, for
// the history current then (a renewal may have replaced the one it was
// for meanwhile): the consumer made again after a NATS restart skipped
// its check while one begun before the restart waited, and that one,
// asked with the events delivered then, took a stream restored from a
// backup that lost the later ones for h's (TestResumeFromAnIdlePositionAfterARestore, 1 run
// in 30 to 100; TestCheckAskedWhileOneWaitsIsAskedOnceItIsAnswered).
// Asked while a renewal runs, it has that one ask again as it ends, for
// the current history: should it find the stream h's still, or have just
// made h current (renew). Dropped, the check of the consumer made again
// after a restart was lost while a renewal whose question was answered
// before the restore took the restored stream for h's
// (TestCheckAskedWhileARenewalWaitsIsAskedOnceItEnds).
//
// The stream's last sequence is compared with every event h handed out
// (reached), those a resume's pages read ahead of the consumer included:
// the consumer made again at the last sequence it delivered gets nothing
// from a restored stream that does not hold it (an event removed there
// before the backup), and with the consumer's alone, a restore that lost
// the events handed out ahead went unnoticed; the new events stored under
// their sequences were then delivered under their ids
// (TestCheckCountsTheEventsHandedOutAheadOfTheConsumer).
func (b *Broker) check(h *history) {
	if !b.nc.IsConnected() {
		return
	}
	b.renewMu.Lock()
	defer b.renewMu.Unlock()
	if b.pendingAsk(h) {
		// Not current yet: asked (as a renewal) once it is.
		return
	}
	if b.renewing && !b.shut && b.cur.Load() == h {
		// The renewal running asks again, of h's stream, as it ends
		// (renew): its question may have been answered before, as
		// this one's would be after, or been of the history h
		// replaced.
		h.renewAgain.Store(true)
		return
	}
	if b.checking && !b.shut && !b.renewing && b.cur.Load() == h {
		// Asked again once the one running is answered: its question,
		// asked before (before a NATS restart, with fewer events
		// delivered), may tell nothing of the stream as it is now.
		b.recheck = true
		return
	}
	if b.shut || b.renewing || b.checking || b.cur.Load() != h {
		return
	}
	b.checking = true
	b.renewals.Add(1)
	go func() {
		defer b.renewals.Done()
		ctx, cancel := context.WithTimeout(context.Background(), b.opts.PublishTimeout)
		go func() {
			select {
			case <-b.closed: // Close waits for this goroutine
				cancel()
			case <-ctx.Done():
			}
		}()
		delivered := h.reached()
		info, err := streamInfo(ctx, h.stream)
		cancel()
		if answered := h.checkAnswered.Load(); answered != nil {
			(*answered)()
		}
		gone := errors.Is(err, jetstream.ErrStreamNotFound) || err == nil && !h.is(info, delivered)
		b.renewMu.Lock()
		b.checking = false
		again := b.recheck
		b.recheck = false
		cur := b.cur.Load()
		b.renewMu.Unlock()
		switch {
		case gone && cur == h:
			// Its question, asked after, answers the checks asked
			// meanwhile.
			b.renew(h)
		case again:
			// For the current history, not h: a renewal (which does
			// not wait for a check) may have put another in h's
			// place meanwhile, and the check asked since may be for
			// that one, its consumer made again after a NATS restart.
			// Asked for h, no longer current, it was dropped, and the
			// instance went on with a stream restored under it
			// (TestCheckAskedForTheNewHistoryWhileAnOldOneWaitsIsAsked,
			// TestCheckAskedForTheNewHistoryWhileAnOldOneFoundItsStreamGoneIsAsked).
			b.check(cur)
		}
	}()
}
