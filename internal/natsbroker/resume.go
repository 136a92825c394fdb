package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/ssehub/ssehub/internal/stream"
)

// A resume older than the local history replays from the stream a page
// at a time: its subscription holds a position in the stream and at most
// one page of events not yet handed out, as the local broker's holds a
// position in its history. A client that resumes from far back and does
// not read holds a page, not its whole replay (up to the stream's bytes).
const (
	// replayPageBytes bounds the frames of a page; the event that
	// crosses it is the page's last. It is four of the handler's steps
	// (64 KiB), so each round of requests to NATS (stream info, consumer,
	// pulls) serves about four writes, and 20 idle deep resumes hold
	// about 5 MiB rather than 20 times the replay.
	replayPageBytes = 256 << 10
	// replayBatch bounds the stream messages a page reads, those that do
	// not match included (patterns that overlap are matched here): a
	// page of small events, or of few matches, ends there too.
	replayBatch = 512
	// replayPull is how many messages a page first asks NATS for at
	// once. Its next requests ask for as many as the rest of the page
	// takes at the size of those read so far (pullSize): what arrives
	// past the page's end is dropped, read for nothing, so a request
	// asks for little more than a page's bytes, and 10,000 small events
	// take 20 pages of 2 requests, not 20 of 16.
	replayPull = 32
)

// Subscribe opens a subscription to the events whose topic matches one of
// patterns, resuming after lastEventID ("" for live only).
//
// The local broker registers it first, so it queues every live event from
// then on. A resume within the local history is the local broker's. An
// older one reads the stream after lastEventID up to its last sequence at
// that moment: that is the replay. Subscribe reads its first page here and
// Replay each next one once the one held is handed out; Take drops the
// live events the replay covers, exactly, by id. The live events that
// would overflow the local one's queue meanwhile (a busy topic) do not
// drop it: the queue lets go of them (stream.Memory.Spill) and the
// replay reads on from the stream to the newest of them before it hands
// over to live (caughtUp), or ends as a slow subscriber once that takes
// it more than HistorySize sequences past its first end. An id from another
// history, below the stream's first retained event or above its last
// starts with a Reset; an id of the history before the current one (its
// stream was deleted, as this instance saw or another wrote in the
// stream's metadata: metadata.go) resumes from the current stream's
// start, and an id of an event the stream lost (restored, or its
// last writes lost: history.lost) starts with a Reset at the last event it
// kept, then replays the events stored after that one. Reading the
// stream fails with an error wrapping stream.ErrUnavailable while NATS is
// unreachable, and with one wrapping stream.ErrBusy when the instance's
// reads from the stream are all taken (or the server's consumers of the
// stream) for longer than PublishTimeout (reads.go): Subscribe then
// returns it, and Replay ends the subscription with it.
func (b *Broker) Subscribe(patterns []string, lastEventID string) (stream.Subscription, error) {
	return b.SubscribeContext(context.Background(), patterns, lastEventID)
}

// SubscribeContext is Subscribe for a client that may go away: its waits
// for the stream (a read slot, NATS's answers), at Subscribe and at each
// later page, end once ctx ends, the request's context. A client gone
// while it waited for a slot no longer has a page read for it after.
func (b *Broker) SubscribeContext(ctx context.Context, patterns []string, lastEventID string) (stream.Subscription, error) {
	return b.subscribe(ctx, nil, patterns, lastEventID)
}

// Resubscribe is SubscribeContext in place of old, a subscription of b
// that ended with stream.ErrResumeOvertaken, overtaken by the local
// history or by the stream: the new one takes over the place old keeps
// among the local broker's MaxSubscribers until it is closed. With any
// other old, it is SubscribeContext.
func (b *Broker) Resubscribe(ctx context.Context, old stream.Subscription, patterns []string, lastEventID string) (stream.Subscription, error) {
	if s, ok := old.(*subscription); ok {
		old = s.Subscription // the local one, which holds the place
	}
	return b.subscribe(ctx, old, patterns, lastEventID)
}

// subscribe is SubscribeContext, in place of old when old is a local
// subscription that keeps its place (Resubscribe); old may be nil.
func (b *Broker) subscribe(ctx context.Context, old stream.Subscription, patterns []string, lastEventID string) (stream.Subscription, error) {
	// A resume the local broker does not replay itself spills from the
	// moment it is registered: what would overflow live's queue before
	// its replay is read is read from the stream too (caughtUp).
	subscribeLocal := (*stream.Memory).Resubscribe
	if lastEventID != "" {
		subscribeLocal = (*stream.Memory).ResubscribeSpilling
	}
	h := b.cur.Load()
	local := h.localID(lastEventID)
	live, err := subscribeLocal(h.mem, ctx, old, patterns, local)
	for errors.Is(err, stream.ErrClosed) && h != b.cur.Load() {
		// h ended meanwhile (renew): subscribe to the history after it.
		// (old, of h's local broker, held no place in the next one's.)
		h = b.cur.Load()
		local = h.localID(lastEventID)
		live, err = subscribeLocal(h.mem, ctx, nil, patterns, local)
	}
	if err != nil || lastEventID == "" || local != "" && live.Reset() == "" {
		return live, err
	}
	// live holds a place among the local broker's MaxSubscribers: it is
	// closed unless the resume is handed out, also on a panic.
	resumed := false
	defer func() {
		if !resumed {
			live.Close()
		}
	}()
	if b.subscribed != nil {
		b.subscribed()
	}
	s, err := b.resume(ctx, h, live, patterns, lastEventID)
	if err != nil {
		return nil, err
	}
	resumed = true
	return s, nil
}

// localID is lastEventID as h's local broker is to be asked for it: none
// for an id before the local broker's first one, which only the stream
// may hold (the local broker would take it for an id from before its
// restart, and replay what it holds), nor for the id of an event the
// stream lost (lost.go; the local broker would resume after it).
func (h *history) localID(lastEventID string) string {
	id, ok := stream.ParseID(lastEventID)
	if !ok {
		return lastEventID
	}
	if _, lost := h.lostAt(id); lost || id+1 < h.first {
		return "" // resume asks the stream
	}
	return lastEventID
}

// resume is Subscribe for an id the local history of h does not hold;
// live is registered already, for live events only, and spills
// (stream.Memory.Spill).
func (b *Broker) resume(client context.Context, h *history, live stream.Subscription, patterns []string, lastEventID string) (*subscription, error) {
	s := &subscription{Subscription: live, client: client, from: lastEventID, b: b, h: h, patterns: patterns}
	// With a Reset, the replay is only what live lets go of meanwhile:
	// from where its queue starts, its position (a stream id).
	pos, _ := stream.ParseID(live.Position())
	start, _ := h.ids.seq(pos)
	s.queuedFrom = pos + 1
	s.next, s.end, s.spilling = start+1, start+1, true
	id, ok := stream.ParseID(lastEventID)
	if !ok {
		s.reset = "the last event id is not an event id of this hub; events may have been missed"
		return s, nil
	}
	seq, ok := h.ids.seq(id)
	prev := h.prevFrom.Load()
	previous := !ok && prev != 0 && id >= prev
	if !ok && !previous {
		s.reset = fmt.Sprintf("last event id %d is from another history of this hub; events may have been missed", id)
		return s, nil
	}
	ctx, cancel := context.WithTimeout(client, b.opts.PublishTimeout)
	defer cancel()
	info, err := b.info(ctx, h)
	if err != nil {
		return nil, err
	}
	first, last := info.State.FirstSeq, info.State.LastSeq
	if previous {
		// The history before h: every event of h's stream is after it,
		// from the stream's first sequence on, which is past 1 when it
		// was created with a first_seq (the sequence before it, not 0:
		// that was taken for an id older than the history, and reset).
		// One that no longer holds it let events go: a reset.
		seq = max(info.Config.FirstSeq, 1) - 1
	}
	if kept, lost := h.lostAt(id); lost {
		// The stream lost the event of id, and may hold another under
		// its sequence: the replay starts after the last one it kept,
		// with a reset at its id.
		seq, _ = h.ids.seq(kept)
		s.reset = fmt.Sprintf("last event id %d is of an event the stream lost (restored from a backup, or its last writes lost): the events stored after id %d, the last one it kept, follow", id, kept)
		s.resetAt = kept
	}
	switch {
	case seq > last:
		s.reset, s.resetAt = fmt.Sprintf("last event id %d is unknown: the newest event id is %d", id, h.ids.id(last)), 0
		return s, nil
	case seq+1 < first:
		s.reset, s.resetAt = fmt.Sprintf("last event id %d is older than the retained history (oldest id %d); events were missed", id, h.ids.id(first)), 0
		return s, nil
	}
	// Every event after last reaches live: it was stored after live was
	// registered. Those up to last that reach it too (the local consumer
	// may lag) are dropped by Take.
	s.after = h.ids.id(last)
	s.next, s.end = seq+1, last+1
	if seq == last {
		return s, nil
	}
	// The first page is read here: a stream NATS cannot read now is a
	// 503, before the client's stream starts.
	switch err := s.read(ctx); {
	case errors.Is(err, stream.ErrSlowConsumer):
		// The stream evicted events after id since it was asked above.
		s.reset = fmt.Sprintf("last event id %d is older than the retained history; events were missed", id)
		s.next, s.end, s.after, s.resetAt = start+1, start+1, 0, 0
	case err != nil:
		return nil, err
	}
	return s, nil
}

// info returns the state of h's stream, and has h learn what another
// instance wrote in its metadata (metadata.go). A stream of the same name that
// is not h's (deleted and created again, and h not yet renewed: NATS
// finds streams by name) makes it renew h and return an error wrapping
// stream.ErrUnavailable, as Publish does meanwhile.
func (b *Broker) info(ctx context.Context, h *history) (*jetstream.StreamInfo, error) {
	if err := b.readyOnceChecked(ctx, h); err != nil {
		return nil, err
	}
	delivered := h.reached()
	info, err := askThroughElection(ctx, func(ctx context.Context) (*jetstream.StreamInfo, error) { return h.stream.Info(ctx) })
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		b.renew(h)
		return nil, b.unavailable("stream info", fmt.Errorf("%w: %w", ErrStreamDeleted, err))
	case err != nil:
		return nil, b.unavailable("stream info", err)
	case !h.is(info, delivered):
		b.renew(h)
		return nil, b.unavailable("stream info", fmt.Errorf("stream %q created again at %s (last sequence %d): %w", b.opts.Stream, info.Created, info.State.LastSeq, ErrStreamDeleted))
	}
	h.learnShared(info.Config.Metadata) // another instance's (metadata.go)
	return info, nil
}

// storedAsDelivered returns nil when h's stream holds, under the last
// sequence h's consumer delivered (or before the first its start:
// lastStored), or under the last one a resume's page read from the
// stream when that is later (readOut), the message h had there, or
// cannot tell: none (let go of, deleted), a question that fails or is
// left unanswered for restWait (a NATS user that may not get messages is
// not answered: getMsg). It asks only while the consumer, made again, has
// not compared it itself (history.compared). Another message there is the
// stream restored, or its last writes lost, with new events stored past
// that sequence before the consumer delivered again: its last sequence
// did not tell (info), and a replay read from it passed over those stored
// under the sequences h handed out with other events. Not the consumer's
// last alone: a backup that kept it, but not the events the pages had
// handed out ahead of the consumer, was taken for h's stream. (New events
// short of the later one leave the stream's last sequence below it: info
// tells.) It marks h rewritten and renews it, which takes the stream as
// another history (next), and returns an error wrapping
// stream.ErrUnavailable, as info does for a stream created again.
func (b *Broker) storedAsDelivered(ctx context.Context, h *history) error {
	d := h.lastStored()
	if r := h.readOut.Load(); r != nil && (d == nil || r.seq > d.seq) {
		d = r
	}
	if d == nil || h.compared.Load() {
		return nil
	}
	m, err := b.getMsg(ctx, h, d.seq)
	if err != nil || m.Time.Equal(d.at) {
		return nil
	}
	h.rewritten.Store(true)
	b.renew(h)
	return b.unavailable("replay", fmt.Errorf("stream %q holds another event than this instance's under sequence %d, the last it had passed (restored, or its last writes lost): %w", b.opts.Stream, d.seq, ErrStreamDeleted))
}

// readPage reads the events of h's stream from sequence from, before
// sequence end, whose topic matches one of patterns, oldest first, until
// their frames take replayPageBytes or it has read replayBatch messages.
// It returns them and the sequence to read next: end once nothing is
// left, from when the stream gave nothing (read checks why).
//
// It asks the page's consumer for at most pullSize of the messages the
// consumer counted when created, in requests the server answers at once
// with what it has: no request waits for a message (fetchNoWait), nor
// takes more than pullBytes (pull). A request that stops at that bound
// returns fewer messages than asked for, and the page asks again; only
// one that returns none ends it. nats.go's
// pull iterator (Messages), asked for 32 at a time, sometimes waited after
// the first 32 until the page's deadline in this package's tests under
// -race: as far as its code shows, it does not ask for more while its
// previous request is still being sent, and nothing makes it ask again.
func (b *Broker) readPage(ctx context.Context, h *history, patterns []string, from, end uint64) ([]*stream.Message, uint64, error) {
	cons, err := b.pageConsumer(ctx, h, patterns, from)
	if err != nil {
		return nil, 0, err
	}
	// Deleted once read: a client reading fast, or a scan through pages
	// with no match, would otherwise keep hundreds alive on the server
	// for PublishTimeout each. One that cannot be deleted (NATS away) goes
	// when idle. Its answer is waited for within pageDeleteWait, also
	// once ctx has ended (the deletion is sent then too).
	defer b.deletePage(ctx, h, cons)
	pending := cons.CachedInfo().NumPending // the matches from from on
	if pending == 0 {
		return nil, b.rest(ctx, h, patterns, from, end), nil
	}
	var page []*stream.Message
	bytes, next, data := 0, from, 0 // data: of every message read
	for read := uint64(0); read < pending; {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		msgs, err := b.fetchNoWait(ctx, cons, pullSize(read, pending, data, bytes))
		if err != nil {
			return nil, 0, err
		}
		for _, m := range msgs {
			read++
			md, err := m.Metadata()
			if err != nil {
				return nil, 0, err
			}
			data += len(m.Data)
			if md.Sequence.Consumer != read {
				return nil, 0, fmt.Errorf("stream message %d delivered as the consumer's %d, not %d", md.Sequence.Stream, md.Sequence.Consumer, read)
			}
			seq := md.Sequence.Stream
			if seq >= end {
				return page, end, nil
			}
			if msg := b.message(h.ids.id(seq), m, patterns); msg != nil {
				h.readFromPage(seq, md.Timestamp)
				page = append(page, msg)
				bytes += len(msg.Frame)
			}
			next = seq + 1
			switch {
			case next == end:
				// Every match up to the stream's last sequence, which
				// is end-1 or later, has been read.
				return page, end, nil
			case read == pending:
				return page, b.rest(ctx, h, patterns, next, end), nil
			case bytes >= replayPageBytes || read == replayBatch:
				return page, next, nil
			}
		}
		if len(msgs) == 0 {
			break // gone since it was counted: evicted, or deleted
		}
	}
	return page, next, nil
}

// pageDeleteWait bounds deletePage's wait for the answer to a page
// consumer's deletion.
const pageDeleteWait = 500 * time.Millisecond

// deletePage deletes cons, a page's consumer read (or whose read failed),
// waiting for the server's answer within pageDeleteWait, not ctx: the
// page is read, and its deletion only frees a place under the server's cap
// on the stream's consumers. Waited for within ctx, the page's, a
// deletion whose request or answer was lost (a server that dropped its
// backlog of API requests, a reconnect) held the page until ctx ended,
// and the resume then failed, its time spent: "context deadline exceeded"
// (4 of 128 resumes of TestResumeStormWaitsForConsumers, after 121 s;
// TestResumeWhosePageConsumersDeletionGoesUnanswered). One left undeleted
// goes once idle for its InactiveThreshold.
func (b *Broker) deletePage(ctx context.Context, h *history, cons jetstream.Consumer) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pageDeleteWait)
	defer cancel()
	_ = h.stream.DeleteConsumer(ctx, cons.CachedInfo().Name)
}

// rest is where a replay goes on once a page's consumer has delivered all
// it counted, up to sequence next: end when the stream holds no message
// of the consumer's filters from next on, before end; next when it does.
// On a cluster the consumer counts what its server's copy of the stream
// holds, which may lag behind the stream's leader: trusted, the count ended
// a replay early without a word (7 of 19 events, once in the cluster
// tests). The stream's leader is asked instead, once per filter, and
// reading from next again finds what the count left out. A question left
// unanswered for restWait (a NATS user without the permission to get
// messages is not answered at all) leaves the count trusted: failing
// there ended every such replay, and the client's next resume too.
func (b *Broker) rest(ctx context.Context, h *history, patterns []string, next, end uint64) uint64 {
	for _, f := range b.filters(patterns) {
		m, err := b.getMsg(ctx, h, next, jetstream.WithGetMsgSubject(f))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return end
		case m.Sequence < end:
			return next
		}
	}
	return end
}

// restWait bounds each of getMsg's questions.
const restWait = 500 * time.Millisecond

// getDeniedFor is how long getMsg does not ask again once its question
// was found denied to the NATS user: a permission an operator grants
// since is used after that long.
const getDeniedFor = time.Minute

// errGetDenied is getMsg's error while it does not ask.
var errGetDenied = errors.New("nats: the user may not get the stream's messages (a permissions violation within the last minute)")

// getMsg is the message of h's stream at seq (with opts), asked within
// restWait (rest's and storedAsDelivered's questions, which each trust
// the stream when they are not answered). A NATS user that may not get
// messages ($JS.API.STREAM.MSG.GET or DIRECT.GET of the stream) is never
// answered: once the server has told of that violation, getMsg returns
// errGetDenied at once for getDeniedFor, rather than wait restWait for
// nothing at each question. Asked before each page of a replay while the
// consumer, made again, had not delivered (storedAsDelivered), with the
// event under its last sequence deleted and no event since, each page of
// every replay waited 0.5 s more.
//
// While JetStream answers that it is temporarily unavailable, or the
// stream offline, as a cluster's servers answer while the stream elects a
// leader (only its leader answers), getMsg asks again each askEvery until
// ctx ends, and returns that last answer then. Taken at once, the answer
// left rest trusting the count of a page's consumer, which on a cluster
// may lag behind the stream's leader: the replay ended short, without a
// word (TestResumeAsksTheRestThroughAnElection); and storedAsDelivered
// did not compare.
func (b *Broker) getMsg(ctx context.Context, h *history, seq uint64, opts ...jetstream.GetMsgOpt) (*jetstream.RawStreamMsg, error) {
	for {
		m, err := b.getMsgOnce(ctx, h, seq, opts...)
		if !electing(err) || pause(ctx, askEvery) != nil {
			return m, err
		}
	}
}

// getMsgOnce is getMsg's question, asked once within restWait.
func (b *Broker) getMsgOnce(ctx context.Context, h *history, seq uint64, opts ...jetstream.GetMsgOpt) (*jetstream.RawStreamMsg, error) {
	if at := b.getDenied.Load(); at != 0 && time.Since(time.Unix(0, at)) < getDeniedFor {
		return nil, errGetDenied
	}
	asked := time.Now()
	ask, cancel := context.WithTimeout(ctx, restWait)
	m, err := h.stream.GetMsg(ask, seq, opts...)
	cancel()
	if err != nil {
		for _, subject := range []string{msgGetSubject, directGetSubject} {
			if errors.Is(b.denied(err, subject+b.opts.Stream, asked), nats.ErrPermissionViolation) {
				b.getDenied.Store(time.Now().UnixNano())
				break
			}
		}
	}
	return m, err
}

// pullSize is how many messages a page asks for next, having read read
// of the pending ones its consumer counted, with data bytes of data, and
// kept frames of bytes: replayPull at first, then as many as fill the
// page at the mean size so far, within replayBatch and pending.
func pullSize(read, pending uint64, data, bytes int) int {
	n := uint64(replayPull)
	if read > 0 {
		mean := max(uint64(data)/read, 1)
		n = max(uint64(max(replayPageBytes-bytes, 0))/mean, 1)
	}
	return int(max(min(n, replayBatch-min(read, replayBatch), pending-read), 1))
}

// pageConsumer creates the consumer a page is read through: an
// ephemeral one on h's stream from sequence from, filtered on the
// subjects of patterns, without acknowledgements. readPage deletes it;
// should that fail, the server removes it once it has been idle for
// PublishTimeout, the most a page's read takes, rather than after the 5
// minutes nats.go gives an ordered consumer (which replays used before
// pages).
func (b *Broker) pageConsumer(ctx context.Context, h *history, patterns []string, from uint64) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: b.opts.PublishTimeout,
		MemoryStorage:     true,
		Replicas:          1,
	}
	if f := b.filters(patterns); len(f) == 1 {
		cfg.FilterSubject = f[0]
	} else {
		cfg.FilterSubjects = f
	}
	return b.createConsumer(ctx, h, cfg)
}

// message is the event of stream message m with id id, or nil when its
// subject is no topic matching one of patterns.
func (b *Broker) message(id uint64, m *nats.Msg, patterns []string) *stream.Message {
	topic, ok := b.topic(m.Subject)
	if !ok || !slices.ContainsFunc(patterns, func(p string) bool { return stream.Match(p, topic) }) {
		return nil
	}
	msg, err := stream.NewMessage(id, topic, eventTypeOf(m.Header), string(m.Data))
	if err != nil {
		return nil
	}
	return msg
}

// filters are the subjects of patterns for a consumer's filter. A
// pattern another covers is left out ("a.x" beside "a.*"). NATS refuses
// filters that overlap, so patterns that still do ("a.*" and "*.x") are
// read through the stream's whole subject and matched here.
func (b *Broker) filters(patterns []string) []string {
	ps := slices.Clone(patterns)
	slices.Sort(ps)
	ps = slices.Compact(ps)
	ps = slices.DeleteFunc(ps, func(p string) bool {
		return slices.ContainsFunc(ps, func(q string) bool { return q != p && stream.Covers(q, p) })
	})
	out := make([]string, 0, len(ps))
	for i, p := range ps {
		for _, q := range ps[:i] {
			if overlap(p, q) {
				return []string{b.subject(">")}
			}
		}
		out = append(out, b.subject(p))
	}
	return out
}

// overlap reports whether some topic matches both patterns a and b.
func overlap(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(at) && i < len(bt); i++ {
		if at[i] == ">" || bt[i] == ">" {
			return true
		}
		if at[i] != bt[i] && at[i] != "*" && bt[i] != "*" {
			return false
		}
	}
	return len(at) == len(bt)
}

// subscription is a subscription of the local broker that resumed from the
// stream: the replay read there a page at a time, or a reset of the
// Broker's, then the local live events minus those the replay covers.
type subscription struct {
	stream.Subscription // the local one: live events, Ready

	reset string
	// resetAt is the id the replay after a reset starts after (an event
	// the stream lost: history.lostAt), or 0 for a reset to live events.
	resetAt uint64

	// The rest of the replay is page, then the events of h's stream from
	// sequence next, before sequence end, whose topic matches one of
	// patterns; next == end once the stream has no more to read. Only
	// Replay and Take, on the subscriber's goroutine, use these, gap and
	// after; resume sets them before it returns.
	b        *Broker
	h        *history
	patterns []string
	// client is the context of the client's request: a page read waits
	// for it no longer than it lasts.
	client    context.Context
	from      string // the requested last event id (Position)
	next, end uint64
	page      []*stream.Message
	// hold gives back the instance's slot for the page held (holdSlot);
	// nil when none is. Under mu: Close may come from another goroutine.
	hold func()
	// gap is set when the subscription ended with the replay unfinished:
	// Take then hands out nothing, as what is queued would follow a gap.
	gap bool
	// handedOut is set once Replay has handed out an event.
	handedOut bool
	// after is the id of the last event of the stream that the replay
	// covers; Take drops live events up to it. Zero once passed.
	after uint64
	// queuedFrom is the id of the first event the local one gets: the
	// replay's events from it on are counted as delivered there.
	queuedFrom uint64
	// spilling is set while the local one lets go of its queue when full
	// rather than be dropped (stream.Memory.Spill): until the replay has
	// read past the newest event it let go of (caughtUp).
	spilling bool
	// firstEnd is the replay's end before caughtUp first moved it; zero
	// until then. caughtUp moves it no more than HistorySize past.
	firstEnd uint64

	mu     sync.Mutex
	closed bool  // Close was called, or Replay ended it
	err    error // why Replay ended it
	// ahead holds the ids, increasing, of the events Replay handed out
	// from queuedFrom on that the local one has not been sent yet (the
	// local consumer lags behind the stream): the local one counts each
	// as delivered when it is sent it, and endWith counts those it never
	// will be. Nil once endWith counted them (aheadCounted): Replay then
	// counts them itself.
	ahead        []uint64
	aheadCounted bool
}

// Replay appends the next events of the replay to dst, until their
// frames take maxBytes, and reports done once it has handed them all out.
// It reads at most one page from the stream per call, so it may return
// none and not be done: a page with no match.
// The events handed out are let go. Once the page it holds is handed out,
// it reads the next from the stream, within PublishTimeout. A page the
// stream no longer holds (the subscriber fell that far behind) ends the
// subscription with stream.ErrSlowConsumer, as the local broker ends a
// resumer its history overtook, or with stream.ErrResumeOvertaken (not
// counted as dropped) when no event of the replay was handed out yet; a
// page it cannot read (NATS away, the
// stream replaced) ends it with an error wrapping stream.ErrUnavailable,
// and one whose read could not start in time with stream.ErrBusy.
// Either way Replay is done, and the client reconnects with the last id
// it got. A subscription that has ended (its local one was dropped or
// closed, or Replay ended it) with the replay unfinished hands out
// neither the rest nor the queue.
func (s *subscription) Replay(dst []*stream.Message, maxBytes int) (msgs []*stream.Message, done bool) {
	if len(s.page) == 0 && s.next == s.end && s.caughtUp() {
		return dst, true
	}
	if s.ended() {
		s.abandon()
		return dst, true
	}
	n := len(dst)
	for bytes, read := 0, false; bytes < max(maxBytes, 1); {
		if len(s.page) == 0 {
			// One page read per call: a stretch of the stream with no
			// match (patterns read through the whole subject) may take
			// many, and the subscriber's loop must watch its client and
			// its heartbeat between them.
			if s.next == s.end && s.caughtUp() || read || !s.readNext() {
				break
			}
			read = true
			continue
		}
		dst = append(dst, s.page[0])
		bytes += len(s.page[0].Frame)
		s.handedOut = true
		s.page[0] = nil
		s.page = s.page[1:]
	}
	if len(s.page) == 0 {
		s.page = nil
		s.letPageGo()
	}
	s.handOut(dst[n:])
	return dst, s.page == nil && s.next == s.end && !s.spilling
}

// handOut keeps track of msgs, the events Replay has just handed out, for
// Stats().Delivered: those below queuedFrom were counted when read
// (replayedFirst); those from it on the local one counts when it is sent
// them, so the ones it has not been sent yet are kept in ahead, for
// countAhead. Once that has run (the local one closed), it counts them
// itself.
func (s *subscription) handOut(msgs []*stream.Message) {
	k := len(msgs)
	for k > 0 && msgs[k-1].ID >= s.queuedFrom {
		k--
	}
	if k == len(msgs) && len(s.ahead) == 0 {
		return
	}
	sent := s.h.mem.LastSent(s.Subscription)
	if s.b.handingOut != nil {
		s.b.handingOut()
	}
	s.mu.Lock()
	if s.aheadCounted {
		s.mu.Unlock()
		// The local one is closed: it counts none of them past what
		// it was sent, now for good, maybe more than sent said (the
		// local consumer delivered, and Close came, since).
		sent = s.h.mem.LastSent(s.Subscription)
		for _, m := range msgs[k:] {
			if m.ID > sent {
				s.b.replayedFirst.Add(1)
			}
		}
		return
	}
	defer s.mu.Unlock()
	for _, m := range msgs[k:] {
		s.ahead = append(s.ahead, m.ID)
	}
	i := 0
	for i < len(s.ahead) && s.ahead[i] <= sent {
		i++ // sent to the local one, which counted it
	}
	s.ahead = append(s.ahead[:0], s.ahead[i:]...)
}

// countAhead counts as delivered the events Replay handed out that the
// local one, closed, was never sent, once. The caller has closed the
// local one.
func (s *subscription) countAhead() {
	sent := s.h.mem.LastSent(s.Subscription)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aheadCounted {
		return
	}
	s.aheadCounted = true
	for _, id := range s.ahead {
		if id > sent {
			s.b.replayedFirst.Add(1)
		}
	}
	s.ahead = nil
}

// caughtUp reports whether the replay, read up to sequence end, covers
// every live event the local subscription let go of while it was read
// (its queue full: stream.Memory.Spill), and then hands over to live: a
// full queue from then on drops the subscription. If it does not, it
// moves end past the newest let go of, so that the replay reads on to
// it from the stream, and Take drops what is queued up to it; past
// HistorySize sequences beyond the replay's first end, it ends the
// subscription with stream.ErrSlowConsumer instead (counted as dropped)
// and reports true, the replay done.
func (s *subscription) caughtUp() bool {
	if !s.spilling {
		return true
	}
	spilled, stopped := s.h.mem.StopSpill(s.Subscription, s.h.ids.id(s.end-1))
	if stopped {
		s.spilling = false
		return true
	}
	seq, _ := s.h.ids.seq(spilled)
	if s.firstEnd == 0 {
		s.firstEnd = s.end
	}
	if seq+1-s.firstEnd > uint64(s.b.opts.HistorySize) {
		// It has read on past its first end by more than the stream
		// holds and still not caught up: its topics get more than its
		// queue holds while a page is read, and it would read a page
		// per queue's worth for as long as they do. Dropped as slow,
		// as without Spill; its client resumes from where it got to.
		s.b.overtaken.Add(1)
		s.endWith(stream.ErrSlowConsumer)
		s.abandon()
		return true
	}
	s.end, s.after = seq+1, max(s.after, spilled)
	return false
}

// holdPage records hold as the slot of the page just read; a subscription
// closed meanwhile gives it back at once.
func (s *subscription) holdPage(hold func()) {
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.hold = hold
	}
	s.mu.Unlock()
	if closed {
		hold()
	}
}

// letPageGo gives back the slot of the page held, if any.
func (s *subscription) letPageGo() {
	s.mu.Lock()
	hold := s.hold
	s.hold = nil
	s.mu.Unlock()
	if hold != nil {
		hold()
	}
}

// readNext reads the next page within PublishTimeout. It reports false
// when the subscription has ended, or the page could not be read and it
// ends it.
func (s *subscription) readNext() bool {
	if s.ended() {
		s.abandon()
		return false
	}
	ctx, cancel := context.WithTimeout(s.client, s.b.opts.PublishTimeout)
	defer cancel()
	if err := s.read(ctx); err != nil {
		switch {
		case errors.Is(err, stream.ErrSlowConsumer) && !s.handedOut && s.reset == "":
			// Nothing handed out yet: it fell behind nothing, as the
			// local broker tells a resume it overtook so.
			err = stream.ErrResumeOvertaken
		case errors.Is(err, stream.ErrSlowConsumer):
			s.b.overtaken.Add(1) // a drop, as the local broker counts its own
		}
		s.endWith(err)
		s.abandon()
		return false
	}
	return true
}

// read reads the page at next into page. It returns an error wrapping
// stream.ErrUnavailable when NATS or the stream cannot be read
// (stream.ErrClosed after Close), one wrapping stream.ErrBusy when the
// read could not start in time (reads.go), and stream.ErrSlowConsumer when the
// stream no longer holds sequence next: events of the replay were evicted
// before they were read.
//
// It waits within ctx for one of the instance's read slots (reads.go),
// which it holds until the page's consumer is deleted, and reads within a
// PublishTimeout of its own from then on: a read that waited its turn
// does not fail for the time it waited.
func (s *subscription) read(ctx context.Context) error {
	b, h, from := s.b, s.h, s.next
	if err := b.readyOnceChecked(ctx, h); err != nil {
		return err
	}
	hold, err := b.holdSlot(ctx)
	if err != nil {
		return err
	}
	held := false
	defer func() {
		if !held {
			hold()
		}
	}()
	release, err := b.readSlot(ctx)
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.opts.PublishTimeout)
	defer cancel()
	// Before the read: the page, read from a stream that is not h's,
	// would count as handed out (history.readOut) with another stream's
	// stored times, and the restore's lost range be found short (keptUpTo).
	if err := b.storedAsDelivered(ctx, h); err != nil {
		return err
	}
	page, next, err := b.readPage(ctx, h, s.patterns, from, s.end)
	for errors.Is(err, errPullLost) && ctx.Err() == nil {
		// Read again from its start, through a new consumer: the one
		// read went past what the lost answer held.
		b.opts.Logger.Debug(pageReadAgain, "stream", b.opts.Stream, "seq", from)
		page, next, err = b.readPage(ctx, h, s.patterns, from, s.end)
	}
	switch {
	case errors.Is(err, stream.ErrBusy) && !b.nc.IsClosed():
		return err
	case err != nil:
		return b.unavailable("replay", err)
	}
	// Asked after the read: the stream may have been replaced meanwhile
	// (the events read would be another stream's under h's ids), or have
	// evicted sequence from before the consumer started, which then
	// started at the first it held (a silent gap). A stream's first
	// sequence only grows: one up to from now was up to it at the read.
	info, err := b.info(ctx, h)
	if err != nil {
		return err
	}
	switch {
	case info.State.FirstSeq > from:
		return stream.ErrSlowConsumer
	case next == from:
		return b.unavailable("replay", fmt.Errorf("stream messages from sequence %d counted but not delivered", from))
	}
	s.page, s.next = page, next
	if len(page) > 0 {
		s.holdPage(hold)
		held = true
	}
	// Counted as read, not as sent as the local broker counts its
	// replays: Stats().Replayed mixes the two. Those from queuedFrom on
	// reach the local subscription, which counts them as delivered.
	b.replayed.Add(uint64(len(page)))
	first := 0
	for first < len(page) && page[first].ID < s.queuedFrom {
		first++
	}
	b.replayedFirst.Add(uint64(first))
	return nil
}

// pageReadAgain is read's log line for a page read again, its pull's
// answer lost with the connection (errPullLost).
const pageReadAgain = "nats replay: page read again, its pull's answer lost as the connection reconnected"

// abandon lets go of the rest of the replay, which the subscription,
// ended, does not hand out; neither does Take its queue.
func (s *subscription) abandon() {
	s.page, s.next, s.gap, s.spilling = nil, s.end, true, false
	s.letPageGo()
}

// ended reports whether the subscription has ended: its local one was
// dropped or closed, or Replay ended it.
func (s *subscription) ended() bool {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	return closed || s.Subscription.Err() != nil
}

// endWith ends the subscription with err (nil for Close), unless it has
// ended already, and closes the local one: its Ready is closed, and its
// place among the local broker's subscribers is freed. err is set first,
// so that a subscriber woken by Ready finds it. With
// stream.ErrResumeOvertaken the local one ends with it instead and keeps
// its place, for the resume that replaces it (Resubscribe), until Close.
func (s *subscription) endWith(err error) {
	s.mu.Lock()
	if !s.closed {
		s.closed, s.err = true, err
	}
	s.mu.Unlock()
	s.letPageGo()
	if errors.Is(err, stream.ErrResumeOvertaken) {
		s.h.mem.Overtake(s.Subscription)
	} else {
		s.Subscription.Close()
	}
	s.countAhead()
}

// Err returns why the subscription ended: the local one's error if it
// was dropped or its history ended, else the error Replay ended it with;
// nil while it is open and after Close. Safe for concurrent use.
func (s *subscription) Err() error {
	if err := s.Subscription.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the subscription; a replay not yet handed out is not read
// on. It is idempotent and safe for concurrent use.
func (s *subscription) Close() { s.endWith(nil) }

// Reset says why the last event id could not be resumed from, or is empty.
func (s *subscription) Reset() string { return s.reset }

// Position is the requested last event id, or after a Reset where the
// replay starts, or with none the local subscription's position: where its
// live events start.
func (s *subscription) Position() string {
	if s.resetAt != 0 {
		return strconv.FormatUint(s.resetAt, 10)
	}
	if s.reset != "" {
		return s.Subscription.Position()
	}
	return s.from
}

// Idle is the local subscription's once the replay is handed out. (It may
// be below the replay's last id while the instance has not delivered the
// newest events locally yet: the subscriber keeps the larger one.)
func (s *subscription) Idle() (id uint64, ok bool) {
	if s.gap || len(s.page) > 0 || s.next != s.end || s.spilling {
		return 0, false
	}
	return s.Subscription.Idle()
}

// Take appends the live events queued, without those the replay covers.
func (s *subscription) Take(dst []*stream.Message, maxBytes int) ([]*stream.Message, bool) {
	if s.gap {
		return dst, false
	}
	n := len(dst)
	dst, open := s.Subscription.Take(dst, maxBytes)
	if s.after == 0 || len(dst) == n {
		return dst, open
	}
	kept := dst[:n]
	for _, m := range dst[n:] {
		if m.ID > s.after {
			kept = append(kept, m)
		}
	}
	if len(kept) > n {
		s.after = 0 // ids increase: nothing later is a duplicate
	}
	clear(dst[len(kept):])
	return kept, open
}
