package natsbroker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/ssehub/ssehub/internal/stream"
)

// ErrStreamDeleted ends the subscriptions of a history whose stream was
// deleted while the instance ran: the client should reconnect and resume
// from its last event id, which the new history answers from its start.
var ErrStreamDeleted = errors.New("nats stream deleted: its history ended")

// ErrEventsLost ends the subscriptions of an instance whose consumer found
// that the stream let go of events before it read them (the stream's
// limits, while the instance lagged behind or was cut off): they missed
// them. The client reconnects and is reset.
var ErrEventsLost = errors.New("nats stream let go of events before this instance read them")

// history is the stream as this instance reads it from one creation to
// its deletion: the stream, the ids made from its creation time, the
// local broker that caches its tail and the consumer that feeds it. The
// Broker holds the current one (Broker.cur); a stream deleted and created
// again, by an operator or by another instance, is another history, which
// renew puts in its place without a restart.
type history struct {
	stream  jetstream.Stream
	created time.Time // the stream's, as read when the history began
	ids     ids
	// prevFrom is the id offset of the history before this one (of
	// another creation time: a restore is the same), or 0: ids from it
	// up to this one's offset resume from this history's start
	// (resume.go). Learnt as the instance takes the stream, or from the
	// stream's metadata (metadata.go).
	prevFrom atomic.Uint64
	// lost are the ids of events that the stream, restored from a backup
	// or put back with its last writes lost, no longer holds, while it
	// keeps its creation time and so its ids: new events are stored
	// under their sequences (lost.go).
	lost atomic.Pointer[[]lostRange]
	// unshared is set once share failed to write the stream's metadata
	// (the NATS user may not update the stream): watch does not ask
	// again (shareAgain).
	unshared atomic.Bool
	// shareAt is the time (Unix nanoseconds) before which share does not
	// write, once a write went unanswered (metadata.go).
	shareAt atomic.Int64
	mem     *stream.Memory // the local layer: fan-out and a cache of the tail
	first   uint64         // the id of mem's first event
	live    *live          // the consumer that feeds mem
	seen    delivered      // how far live has fed mem
	// stale is set while the stream may be gone: Publish answers
	// ErrUnavailable until renew has checked it (once its wait for the
	// check is over), and Ready does once the check is no longer fresh
	// (checkFresh).
	stale atomic.Bool
	// noJetStream is set while renew's last check of a stale history
	// found no JetStream (a NATS server back without it): Publish and
	// Ready say so rather than that the stream was deleted.
	noJetStream atomic.Bool
	// gone is set while renew's last check of a stale history found no
	// stream of its name: Publish and Ready say the stream was deleted,
	// not only that it is being checked.
	gone atomic.Bool
	// checkedSince is when renew began its check of h's stream (stale
	// set), and told is set once that check had an answer other than
	// NATS's silence or an election's (unanswered, electing): a stream
	// not found, no JetStream, another stream of its name that does not
	// fit, a question the NATS user may not ask. Ready takes a check
	// with neither, younger than PublishTimeout, for the false alarm it
	// usually is (checkFresh).
	checkedSince atomic.Pointer[time.Time]
	told         atomic.Bool
	ended        chan struct{} // closed by end: renewed, or the Broker closed

	// consumer is the name of the consumer that delivered the last
	// message, and foreign is set once the stream it reads is found to be
	// another; only deliver uses them, under live's lock.
	consumer string
	foreign  bool
	// lastDelivered is the sequence and stored time of the last message
	// the consumer delivered, nil before the first; rewritten is set once
	// the stream held another message under that sequence (deliver).
	lastDelivered atomic.Pointer[stamp]
	rewritten     atomic.Bool
	// readOut is the sequence and stored time of the last message that a
	// resume's replay read from the stream's pages (readPage) for its
	// client, nil before the first: past lastDelivered while the consumer
	// lags. The checks for a restore (is, keptUpTo, storedAsDelivered)
	// take the later one.
	readOut atomic.Pointer[stamp]
	// answeredAhead is the last sequence of an event whose publish was
	// answered with its id before h's consumer delivered it (the stream
	// asked instead: confirmStream), 0 before the first: reached counts
	// it.
	answeredAhead atomic.Uint64
	// compared is set once h's consumer, since it was last made, has
	// delivered a message under the last sequence delivered (lastStored)
	// or after it: deliver has compared the stream's message there with
	// the one delivered, and the stream is h's up to it. Cleared as the
	// consumer is made again (after a reconnect, a deletion: a restore
	// comes with one); a resume read from the stream meanwhile compares
	// that message itself (storedAsDelivered).
	compared atomic.Bool
	// start is the sequence before the history's first and its stored
	// time when that is the stream's last as the history begins (it
	// holds no event, or none past it: newHistory), else nil. A live
	// subscription's position is its id before the consumer has
	// delivered anything: handed out, with no message delivered, it is
	// the one lastHanded tells a restore by, and the one a consumer made
	// again starts at (lastStored).
	start *stamp
	// checkAnswered, when set (by tests), is called by check once NATS
	// has answered its question, before check acts on the answer.
	checkAnswered atomic.Pointer[func()]
	// renewAnswered, when set (by tests), is called by renewFrom once
	// next has answered, before renewFrom acts on the answer.
	renewAnswered atomic.Pointer[func()]
	// renewSwapped, when set (by tests), is called by renewFrom once it
	// has made the new history current, before the renewal ends.
	renewSwapped atomic.Pointer[func()]
	// renewMade, when set (by tests), is called by renewFrom once next
	// has made the new history, its consumer running, before it is made
	// current (swap).
	renewMade atomic.Pointer[func()]
	// renewAgain is set when renew, or check, is called for h, the
	// current history, while a renewal runs: of h, or the one that has
	// just made h current. The renewal, should it find the stream h's
	// still, or having made h current, asks again, for h (renew). It is
	// set too when they are called for h before it is current (pending):
	// the renewal that made it, or start, asks once h is.
	renewAgain atomic.Bool
}

// readFromPage records that a resume's replay read the message of seq,
// stored at at, from h's stream for its client (readOut). Safe for
// concurrent use.
func (h *history) readFromPage(seq uint64, at time.Time) {
	for {
		p := h.readOut.Load()
		if p != nil && p.seq >= seq {
			return
		}
		if h.readOut.CompareAndSwap(p, &stamp{seq, at}) {
			return
		}
	}
}

// reached returns the last sequence whose event h handed out: delivered
// by its consumer (seen), read from the stream's pages by a resume ahead
// of it (readOut), or whose id a publish was answered with ahead of it
// (answeredAhead).
func (h *history) reached() uint64 {
	last := max(h.seen.last(), h.answeredAhead.Load())
	if p := h.readOut.Load(); p != nil {
		last = max(last, p.seq)
	}
	return last
}

// answerAhead records that a publish is answered with the id of the event
// of seq, which h's consumer may not have delivered yet (answeredAhead).
// Safe for concurrent use.
func (h *history) answerAhead(seq uint64) {
	for {
		last := h.answeredAhead.Load()
		if last >= seq || h.answeredAhead.CompareAndSwap(last, seq) {
			return
		}
	}
}

// lastHanded returns the sequence and stored time of the last message h
// handed out, by its consumer or a resume's page (reached), or as a
// position before either (start), nil before the first.
func (h *history) lastHanded() *stamp {
	last := h.start
	for _, p := range []*stamp{h.lastDelivered.Load(), h.readOut.Load()} {
		if p != nil && (last == nil || p.seq > last.seq) {
			last = p
		}
	}
	return last
}

// lastStored returns the sequence and stored time of the last message h's
// consumer delivered, or before the first its start (the stream's last
// as h began), nil with neither: a consumer made again starts there, and
// deliver compares the message it finds under that sequence (another one
// is another history, its store restored or its last writes lost).
func (h *history) lastStored() *stamp {
	if d := h.lastDelivered.Load(); d != nil {
		return d
	}
	return h.start
}

// stamp is a stream message's sequence and stored time.
type stamp struct {
	seq uint64
	at  time.Time
}

// newHistory returns the history of st, whose local consumer is to start
// at sequence from; its local broker starts after from-1. It does not
// start the consumer (Broker.consume).
func (b *Broker) newHistory(st jetstream.Stream, from uint64) *history {
	info := st.CachedInfo()
	h := &history{stream: st, created: info.Created, ids: newIDs(info.Created), ended: make(chan struct{})}
	h.learnShared(info.Config.Metadata)
	h.seen.advance(from - 1)
	if state := info.State; from > 1 && from-1 == state.LastSeq && !state.LastTime.IsZero() {
		// The stream's last sequence is the position handed out before
		// the consumer delivers anything (start).
		h.start = &stamp{state.LastSeq, state.LastTime}
	}
	h.first = h.ids.id(from)
	h.mem = stream.NewMemory(stream.MemoryOptions{
		HistorySize:      b.opts.HistorySize,
		HistoryMaxBytes:  int(b.opts.HistoryMaxBytes),
		SubscriberBuffer: b.opts.SubscriberBuffer,
		MaxSubscribers:   b.opts.MaxSubscribers,
		FirstID:          h.first,
	})
	return h
}

// end ends the history's subscriptions with err and stops its consumer; a
// Publish waiting for its consumer gives up. Only renew and Close call it,
// once per history.
func (h *history) end(err error) {
	close(h.ended)
	h.mem.CloseWith(err)
	if h.live != nil {
		h.live.close()
	}
}

// over reports whether h has ended.
func (h *history) over() bool {
	select {
	case <-h.ended:
		return true
	default:
		return false
	}
}

// is reports whether info is of h's stream: its creation time, and a
// last sequence at or past delivered, the last one h had handed out when
// info was asked (h.reached() read before the request: the consumer goes
// on delivering events stored after the answer), by its consumer, by a
// resume's page read ahead of it, or as a publish's answer. A stream
// restored from a backup (`nats stream restore`, or a store put back
// while NATS was stopped) keeps the creation time of the one backed up:
// with events of h's delivered after the backup, it is another history
// all the same. Taken for h's, its consumer was made again after the last
// sequence delivered, and the events the restored stream stored up to it
// never reached the local broker. A member of a cluster's stream group
// answers for it while it has no leader (ClusterInfo.Leader empty), with
// its own copy, which may lag behind: its last sequence is not trusted.
func (h *history) is(info *jetstream.StreamInfo, delivered uint64) bool {
	if !info.Created.Equal(h.created) {
		return false
	}
	leaderless := info.Cluster != nil && info.Cluster.Leader == ""
	return leaderless || info.State.LastSeq >= delivered
}

// same reports whether the stream is still h's, asking NATS until it
// answers or h ends; only deliver calls it, when the consumer changed. A
// consumer made again (live) is made on the stream of h's name, after the
// last sequence it delivered: only the stream's creation time tells that
// it is another. It asks again every askEvery that NATS leaves it
// unanswered, as while the stream elects a leader (streamInfo):
// deliveries wait for it.
//
// A stream not found is not taken for another one: a JetStream that has
// not yet taken the stream back (a server restarting, a cluster's new
// meta leader) may answer so for one that is there. It has renew check
// the stream, and asks again until the stream is found or renew has put
// another history in h's place. Taken for another, the stream that was
// h's all along had every event of h's consumer dropped from then on.
//
// Its questions wait PublishTimeout for an answer, then twice as long
// each time they all went unanswered, up to 4 times PublishTimeout: each
// dropped after PublishTimeout, the questions to a server that answered
// later than that (busy, or with the consumer's events queued ahead of
// its answers on the connection) were never heard, and the instance
// delivered nothing for as long as it answered so
// (TestFirstDeliveryWaitsForAStreamThatAnswersPastPublishTimeout).
// Between rounds it pauses ReconnectWait, or until the connection is
// back: a round lost with the connection waited out the pause however
// soon NATS answered again (TestFirstDeliveryAsksAgainOnceNATSIsBack).
func (b *Broker) same(h *history) bool {
	wait := b.opts.PublishTimeout
	for {
		back := b.reconnected()
		// Ended by h's end too: a renewal ending h (end) waits for the
		// consumer's lock, which the delivery holds, and Close for the
		// renewal, PublishTimeout on a hung server.
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		go func() {
			select {
			case <-h.ended:
				cancel()
			case <-ctx.Done():
			}
		}()
		delivered := h.reached()
		info, err := streamInfo(ctx, h.stream)
		cancel()
		switch {
		case err == nil:
			return h.is(info, delivered)
		case errors.Is(err, jetstream.ErrStreamNotFound):
			b.renew(h)
		case unanswered(err):
			wait = min(2*wait, 4*b.opts.PublishTimeout)
		}
		select {
		case <-h.ended:
			return false
		case <-back:
		case <-time.After(b.opts.ReconnectWait):
		}
	}
}

// renew checks, on a goroutine of its own, whether the stream of history
// old, the current one, was deleted, and if so puts a new history in its
// place. It returns at once, and does nothing when old is no longer
// current or the Broker is closing. Called by the consumer (its error
// handler, deliver) and by Publish on a publish no stream took.
//
// Called while a renewal runs, it has that one ask again, for the
// current history, as it ends (renewAgain): a renewal of old that ends
// as a false alarm asked its question before, which may tell nothing of
// what this call is for, and one that has just made old current asked
// nothing of old. Dropped, the call of a consumer that, made again after
// a NATS restart, found another event under the last sequence delivered
// (a stream restored from a backup, new events stored past it) was lost
// while a renewal whose question was answered before the restore ended
// as a false alarm: the consumer, having taken the stream for another,
// dropped every event from then on
// (TestRenewalAskedWhileOneWaitsIsAskedOnceItEnds).
func (b *Broker) renew(old *history) {
	b.renewMu.Lock()
	defer b.renewMu.Unlock()
	if b.pendingAsk(old) || b.shut || b.cur.Load() != old {
		return
	}
	if b.renewing {
		old.renewAgain.Store(true)
		return
	}
	b.renewing = true
	old.beginCheck()
	b.renewals.Add(1)
	go func() {
		defer b.renewals.Done()
		for h := old; ; {
			b.renewFrom(h)
			b.renewMu.Lock()
			// Asked for between renewFrom's last look and now, for the
			// current history: h's, a false alarm, or the new one
			// renewFrom swapped in, whose consumer (made again after a
			// NATS restart, finding another event under the last
			// sequence delivered) or a publish no stream took may have
			// asked before this renewal ended. Only h's looked at, a
			// renewal or check asked for the new history was lost, and
			// the instance went on with a stream restored under it
			// (TestRenewalAskedForTheNewHistoryBeforeTheRenewalEndsIsAsked,
			// TestCheckAskedForTheNewHistoryBeforeTheRenewalEndsIsAsked).
			cur := b.cur.Load()
			again := cur.renewAgain.Swap(false) && !b.shut
			b.renewing = again
			b.renewMu.Unlock()
			if !again {
				return
			}
			h = cur
			h.beginCheck()
		}
	}()
}

// beginCheck marks h's stream in doubt (stale) as renew begins to check
// it, with no answer yet: gone and told cleared, checkedSince now.
func (h *history) beginCheck() {
	h.gone.Store(false)
	h.told.Store(false)
	now := time.Now()
	h.checkedSince.Store(&now)
	h.stale.Store(true)
}

// checkFresh reports whether h's stream is in doubt only as renew's check
// began less than bound ago, with no answer yet but NATS's silence or an
// election's (told): a stream's leader that crashed in a 3-node cluster
// has every instance that was publishing check its stream at once, for
// 0.5 to 6.5 s, and the stream is found there. Ready said unready for
// all of it: every instance unready together, a load balancer left with
// none, over a false alarm.
func (h *history) checkFresh(bound time.Duration) bool {
	since := h.checkedSince.Load()
	return h.stale.Load() && !h.told.Load() && since != nil && time.Since(*since) < bound
}

// renewFrom is renew's goroutine: it retries until the stream is found to
// be old's still, or a new history is current, or the Broker closes. It
// does not create a stream of file storage deleted and not created again:
// publishing answers 503 until an operator creates it, or an instance
// that starts (Open) does (one of memory storage it creates: next). In tests with nats-server 2.15, instances creating it
// together just after the deletion sometimes left a stream that held the
// deleted one's messages and acknowledged no publish.
func (b *Broker) renewFrom(old *history) {
	ctx, cancel := b.untilClose()
	defer cancel()
	wait, start, logged := b.opts.ReconnectWait, time.Now(), false
	for {
		// Taken before the question: a reconnect while it is asked
		// cuts the pause after it short.
		back := b.reconnected()
		// The calls of renew and check before this question are
		// answered by it.
		old.renewAgain.Store(false)
		h, err := b.next(ctx, old)
		if answered := old.renewAnswered.Load(); answered != nil {
			(*answered)()
		}
		switch {
		case err == nil && h == nil && old.renewAgain.Load():
			continue // asked for again while this question was asked
		case err == nil && h == nil:
			old.noJetStream.Store(false)
			old.gone.Store(false)
			old.told.Store(false)
			old.stale.Store(false) // a false alarm: the consumer alone was deleted
			// Its consumer, refused for a stream not found, need not wait
			// out its back-off.
			old.live.streamAnswers()
			// Nor, having taken the stream for another meanwhile, drop
			// its events from now on (trustAgain).
			old.live.trustAgain()
			return
		case err == nil:
			if made := old.renewMade.Load(); made != nil {
				(*made)()
			}
			b.swap(old, h)
			if swapped := old.renewSwapped.Load(); swapped != nil {
				(*swapped)()
			}
			// old's consumer, made again by the stream's name, may be
			// on the new stream: deleted, not left to the server for
			// its InactiveThreshold.
			old.live.retire(askEvery)
			b.opts.Logger.Warn("nats stream deleted and created again: its subscriptions end and resume from the new stream",
				"stream", b.opts.Stream, "created_before", old.created, "created", h.created)
			old.end(fmt.Errorf("%w (stream %q)", ErrStreamDeleted, b.opts.Stream))
			return
		}
		if ctx.Err() != nil {
			return // Close: the connection may have ended first
		}
		if noJetStream(err) {
			err = fmt.Errorf("%w (%w)", errNoJetStream, err)
			old.noJetStream.Store(true)
		} else {
			old.noJetStream.Store(false)
		}
		old.gone.Store(errors.Is(err, jetstream.ErrStreamNotFound))
		if !unanswered(err) && !electing(err) {
			// An answer: Ready no longer waits for the next one.
			old.told.Store(true)
		}
		if !logged && time.Since(start) >= time.Second {
			logged = true
			// What publishes and Ready do meanwhile: a check with no
			// answer but NATS's silence or an election's is taken for
			// the false alarm it usually is for a while (checkFresh,
			// readyOnceChecked).
			if old.told.Load() {
				b.opts.Logger.Error("nats stream gone or unusable: publishing answers 503 and /readyz says unready until the stream is found again (an instance that starts creates a missing one)", "stream", b.opts.Stream, "err", err)
			} else {
				b.opts.Logger.Error("nats stream not answering its check: each publish waits up to publish_timeout for the check's answer, then answers 503; /readyz stays ready until the check is publish_timeout old, then says unready until the stream answers",
					"stream", b.opts.Stream, "publish_timeout", b.opts.PublishTimeout, "err", err)
			}
		}
		pause := wait
		if unanswered(err) || electing(err) {
			// next asked every askEvery for askWait: it goes on at that
			// pace, not the back-off's (up to renewWaitMax), to see the stream
			// within about askEvery of its new leader. So it does through
			// an election's answers that JetStream is temporarily
			// unavailable (10008) or the stream offline (10118), as
			// askThroughElection does: paused ReconnectWait, doubled up
			// to renewWaitMax, the check (publishes waiting, then
			// refused, as being checked) went on up to 2 s past the
			// election's end (TestCheckAsksAgainThroughAnElection).
			pause = askEvery
		} else {
			wait = min(2*wait, b.renewWaitMax())
		}
		select {
		case <-ctx.Done():
			return
		case <-back:
			// Its pause grew while NATS was away: the stream may
			// answer now.
			wait = b.opts.ReconnectWait
		case <-time.After(pause):
		}
	}
}

// renewWaitMax bounds renewFrom's pause between questions answered "not
// found" (or by no JetStream). At 10 s, an instance whose NATS server
// restarted, JetStream answering "not found" for its stream for some
// seconds while it recovered its store (longer on a loaded machine),
// stayed unready, publishes answered 503, up to 10 s after the stream
// was back. A question of stream info every 2 s is little for a server.
const renewWaitMax = 2 * time.Second

func (b *Broker) renewWaitMax() time.Duration {
	if b.opts.renewMax > 0 {
		return b.opts.renewMax
	}
	return renewWaitMax
}

// next returns the history to take over from old: nil when old's stream
// is still there (its creation time the same), else the stream of the
// same name that replaced it (checked by findStream; created if missing
// with memory storage, by ensureStream) with its consumer started at its
// first sequence.
func (b *Broker) next(ctx context.Context, old *history) (*history, error) {
	delivered := old.reached()
	info, err := streamInfo(ctx, old.stream)
	if err == nil && old.is(info, delivered) && !old.rewritten.Load() {
		return nil, nil
	}
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, err
	}
	find := b.findStream
	if b.opts.Storage == "memory" {
		// A NATS server that restarted keeps no stream of memory
		// storage, and nothing else would create it until an instance
		// starts. There is no store of a deleted stream to race with.
		find = b.ensureStream
	}
	st, err := find(ctx)
	if err != nil {
		return nil, err
	}
	if old.is(st.CachedInfo(), delivered) && !old.rewritten.Load() {
		// old's stream after all: a JetStream that has not yet taken it
		// back (a server restarting, a cluster's new meta leader) may
		// answer that it is not found. Taken for another, it ended every
		// subscription, and the consumer read all of it again.
		return nil, nil
	}
	// Its first sequence, not 1: one created with a first_seq, or emptied
	// by a purge before this instance took it, holds nothing below, and a
	// consumer started at 1 passed over those sequences as events let go
	// of (deliver): the first event stored ended every subscription.
	h := b.newHistory(st, firstSeq(st.CachedInfo().State))
	h.learnPrevious(old.ids.offset)
	// Its consumer's calls of renew and check are kept until h is
	// current (pendingAsk).
	b.setPending(h)
	made := false
	defer func() {
		if !made {
			b.setPending(nil)
		}
	}()
	if h.ids == old.ids {
		// The same creation time: the stream restored, or put back
		// with its last writes lost. Its ids are old's, and those of
		// the events it lost stand for others (lostRange); the history
		// before it is old's (with old's, ids of a stream deleted
		// before were reset as another history's).
		h.learnPrevious(old.prevFrom.Load())
		h.learnLost(old.lostRanges()...)
		// Found before h serves: a resume from a lost id meanwhile
		// would pass over the events stored in their place.
		if kept := b.keptUpTo(ctx, st, old, delivered); kept < delivered {
			h.learnLost(lostRange{after: h.ids.id(kept), upTo: h.ids.id(delivered)})
			b.opts.Logger.Warn("nats stream lost events this instance delivered: a resume from one of them is reset and replays the events stored since",
				"stream", b.opts.Stream, "first_seq", kept+1, "last_seq", delivered)
		}
	}
	// Here, not once h serves: renew drops the calls made while the
	// renewal runs, such as the one for a stream restored meanwhile.
	b.share(ctx, h)
	if err := b.consume(ctx, h); err != nil {
		h.mem.Close()
		return nil, err
	}
	made = true
	return h, nil
}

// setPending makes h the pending history (nil: none), whose consumer runs
// before h is current.
func (b *Broker) setPending(h *history) {
	b.renewMu.Lock()
	defer b.renewMu.Unlock()
	b.pending = h
}

// pendingAsk reports whether h is the pending history, whose consumer
// runs before h is current (start's first history, or the one a renewal
// has made and not yet swapped in), and if so has renew or check asked
// for it once h is current (renewAgain): start asks as it makes h
// current, a renewal as it ends. Dropped as of a history not current, a
// call of the consumer that found its stream deleted meanwhile (another
// created in its place) was lost, and the instance went on with the new
// stream as h's, its events delivered under h's ids
// (TestRenewalAskedForAHistoryBeingMadeIsAsked,
// TestRenewalAskedAtStartBeforeTheHistoryIsCurrentIsAsked). Called
// under renewMu.
func (b *Broker) pendingAsk(h *history) bool {
	if b.shut || h == nil || h != b.pending {
		return false
	}
	h.renewAgain.Store(true)
	return true
}

// firstSeq is the sequence of the first event a stream in state holds,
// or of the next one stored when it holds none.
func firstSeq(state jetstream.StreamState) uint64 {
	if state.Msgs == 0 {
		return state.LastSeq + 1
	}
	return max(state.FirstSeq, 1)
}

// streamInfo is st's info, asked again every askEvery that NATS leaves it
// unanswered (askAgain), until ctx ends (askWait without a deadline).
// While an R3 stream elects a leader after its leader's node crashed (4
// to 9 s), its followers answer no info, and a request sent meanwhile is
// never answered. The publish that no stream took then (Publish) starts a
// renewal, whose one request waited nats.go's 5 s, and the next one 5 s
// more: with the leader crashed in TestClusterNodeStopsWhilePublishing,
// publishing answered 503 for 2.4 to 4.4 s after the test saw the new
// leader, in 5 runs of 6; asking again, the renewal ended 0.1 to 0.7 s
// before the test saw it, in 10 runs of 10.
func streamInfo(ctx context.Context, st jetstream.Stream) (*jetstream.StreamInfo, error) {
	return askAgain(ctx, func(ctx context.Context) (*jetstream.StreamInfo, error) { return st.Info(ctx) })
}

// swap makes h the current history in old's place, and keeps old's
// counters for Stats.
func (b *Broker) swap(old, h *history) {
	b.renewMu.Lock()
	defer b.renewMu.Unlock()
	s := old.mem.Stats()
	b.retired.Delivered += s.Delivered
	b.retired.Dropped += s.Dropped
	b.retired.Replayed += s.Replayed
	b.cur.Store(h)
	// renew's goroutine, as it ends, asks for h when its consumer asked
	// before (renewAgain, pendingAsk).
	b.pending = nil
}

// confirm returns nil when msg, just stored by the stream (not a
// duplicate: see confirmReplay), is the event h's consumer delivered with
// its id: an acknowledgement from a stream created again, before the
// consumer learnt of the deletion, carries a sequence h's consumer may
// have passed with another event. Only when h no longer retains the id
// does it ask the stream. The one case it cannot tell: the old stream's
// event under that id had the same topic, type and data.
//
// The stream is asked with sameSettled: taken for another on one answer
// that it is not found, the publish of an event that h's stream stored
// was answered 503, and a client's retry stored it twice.
func (b *Broker) confirm(ctx context.Context, h *history, msg *stream.Message) error {
	got := h.mem.Retained(msg.ID)
	if got == nil {
		return b.confirmStream(ctx, h, msg)
	}
	if got.Topic == msg.Topic && bytes.Equal(got.Frame, msg.Frame) {
		return nil
	}
	return b.storedByAnother(h, msg)
}

// confirmStream returns nil when the stream is still h's, asked with
// sameSettled: msg, just stored by a stream of its name, is then h's event
// under its id. It is confirm for an event that h's consumer has not
// delivered yet (behind, as after a reconnect), or no longer retains:
// an acknowledgement from a stream created again, before the consumer
// learnt of the deletion, carries a sequence of the new stream, and
// answered with h's ids it was an id of the old stream.
//
// The id it confirms counts as handed out (answeredAhead): the stream
// restored from a backup that lacks the event, before the consumer
// delivered it, was taken for h's, and the new event stored under its
// sequence delivered under the id its publisher had been told was its
// event's (TestResumeFromAPublishedEventTheRestoreLostBeforeItsDelivery).
func (b *Broker) confirmStream(ctx context.Context, h *history, msg *stream.Message) error {
	same, err := b.sameSettled(ctx, h)
	switch {
	case err != nil:
		return err
	case same:
		if seq, ok := h.ids.seq(msg.ID); ok {
			h.answerAhead(seq)
		}
		return nil
	}
	return b.storedByAnother(h, msg)
}

// storedByAnother is confirm's error for msg, stored under its sequence by
// a stream of h's name that is not h's (created again): the id msg has in
// h names no event of that stream. It renews h.
func (b *Broker) storedByAnother(h *history, msg *stream.Message) error {
	b.renew(h)
	return fmt.Errorf("sequence %d stored by another stream %q: %w", msg.ID-h.ids.offset, b.opts.Stream, ErrStreamDeleted)
}

// sameSettled is same for confirm and confirmReplay: it reports whether
// the stream of h's name is still h's (history.is), false for one not
// found, and returns the error of a stream that did not answer. A stream
// not found is not taken for another one at once (see same): it is asked
// again each ReconnectWait until it answers, h ends (the consumer learnt
// of a deletion) or ctx does.
func (b *Broker) sameSettled(ctx context.Context, h *history) (bool, error) {
	delivered := h.reached()
	info, err := h.stream.Info(ctx)
	for errors.Is(err, jetstream.ErrStreamNotFound) && !h.over() && pause(ctx, b.opts.ReconnectWait) == nil {
		info, err = h.stream.Info(ctx)
	}
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return h.is(info, delivered), nil
}

// msgGetSubject is the subject, before the stream's name, of JetStream's
// API request for a stream's message by its sequence.
const msgGetSubject = "$JS.API.STREAM.MSG.GET."

// directGetSubject is msgGetSubject's for a stream that allows direct
// gets (allow_direct), which nats.go then asks.
const directGetSubject = "$JS.API.DIRECT.GET."

// confirmReplay returns nil when msg, the event of a publish with p.Key
// that the stream acknowledged as a duplicate, is the event the key was
// first stored with, under msg's id: the publish is a replay. Another
// event under that id means here that the key was used for another event
// (an error wrapping stream.ErrKeyReused), not, as in confirm, that the
// stream was created again; that is told by the stream's creation time,
// asked whenever h does not retain the same event. An event the local
// history no longer retains is read from the stream; one the stream let
// go of too, or that the NATS user may not read, is taken as a replay:
// the key, still in the stream's duplicate window, names it. The id of
// a replay counts as handed out, as confirmStream's does: the consumer
// may not have delivered it yet
// (TestResumeFromAReplayedPublishTheRestoreLostBeforeItsDelivery).
func (b *Broker) confirmReplay(ctx context.Context, h *history, msg *stream.Message, p stream.Publication) (err error) {
	got := h.mem.Retained(msg.ID)
	if got != nil && got.Topic == msg.Topic && bytes.Equal(got.Frame, msg.Frame) {
		return nil
	}
	seq, _ := h.ids.seq(msg.ID)
	defer func() {
		if err == nil {
			// Answered with its id, maybe before the consumer
			// delivered it (confirmStream).
			h.answerAhead(seq)
		}
	}()
	same, err := b.sameSettled(ctx, h)
	if err != nil {
		return err
	}
	if !same {
		b.renew(h)
		return fmt.Errorf("sequence %d acknowledged by another stream %q: %w", seq, b.opts.Stream, ErrStreamDeleted)
	}
	if got != nil {
		return stream.KeyReused(p.Topic, p.Key)
	}
	asked := time.Now()
	stored, err := h.stream.GetMsg(ctx, seq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return nil
	case errors.Is(b.denied(err, msgGetSubject+b.opts.Stream, asked), nats.ErrPermissionViolation):
		// A NATS user that may not read it: it cannot be compared, as
		// one the stream let go of. Taken for an error, each retry was
		// answered 503, "retry with the same key".
		return nil
	case err != nil:
		return err
	case stored.Subject != b.subject(p.Topic) || eventTypeOf(stored.Header) != p.Type || string(stored.Data) != p.Data:
		return stream.KeyReused(p.Topic, p.Key)
	}
	return nil
}
