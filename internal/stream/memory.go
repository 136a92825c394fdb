package stream

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults used for zero (or negative) MemoryOptions fields.
const (
	DefaultHistorySize      = 10000
	DefaultHistoryMaxBytes  = 64 << 20
	DefaultSubscriberBuffer = 256
	DefaultMaxSubscribers   = 20000
)

// MemoryOptions configures a Memory broker. A zero or negative field means
// its default.
type MemoryOptions struct {
	// HistorySize is how many of the newest events, across all topics,
	// are kept for replay.
	HistorySize int
	// HistoryMaxBytes bounds the memory the history keeps: beyond it the
	// oldest events are dropped, as they are beyond HistorySize. An event
	// counts its encoded frame as allocated, its id and topic and a fixed
	// 64 bytes; the newest event is kept even if it alone is larger.
	HistoryMaxBytes int
	// SubscriberBuffer is how many events may wait in a subscription's
	// queue; a subscription whose queue is full when an event arrives is
	// dropped, unless its replay is still being handed out and the
	// history still holds its rest (the replay then reads on to that
	// event: see Subscribe). The queue grows to it only while the
	// subscriber is behind.
	SubscriberBuffer int
	// MaxSubscribers caps the open subscriptions.
	MaxSubscribers int
	// FirstID is the id of the first event published. Zero means the
	// current Unix time in microseconds, so that ids of every earlier run
	// (which published fewer than one event per microsecond on average)
	// are below it and are recognised as from before a restart. Such ids
	// have 16 digits and stay below 2^53, exact in JavaScript numbers.
	FirstID uint64
}

// Memory is the in-process broker: topics, subscriptions, a bounded history
// for replay, and the slow-consumer policy. Publishing never waits for a
// subscriber, and the broker starts no goroutine and no timer. All methods
// are safe for concurrent use.
type Memory struct {
	bufSize int
	maxSubs int
	done    chan struct{}

	mu         sync.Mutex
	closed     bool
	hist       *history
	topics     map[string]*topicEntry // published-to or exactly subscribed
	topicsPeak int                    // the most entries topics held since it was made (shrunk)
	wild       map[string]*group      // wildcard pattern → subscriptions
	wildPeak   int                    // the most entries wild held since it was made (shrunk)
	wildIdx    wildIndex              // the groups of wild, by their patterns' segments
	matched    []*group               // scratch for Publish and Topics: wildIdx.match's
	dropped    []*memorySubscription  // scratch for Publish, reused
	markSeq    uint64                 // scratch for Topics and loseFromReplays
	// replaying holds the open subscriptions whose replay is unfinished
	// (memorySubscription.replayAt), in no order: while there are none,
	// what the history evicts needs no look at the subscriptions
	// (forget).
	replaying []*memorySubscription

	// topicsPaused, when set (by tests), is called between TopicsPage's
	// pieces, with the lock let go.
	topicsPaused func()
	// replaysMarked, when set (by tests), is called with b.mu held once
	// loseFromReplays went through the unfinished replays for the evicted
	// id, with the mark it gave the groups it looked for.
	replaysMarked func(id, mark uint64)

	subscribers atomic.Int64
	published   atomic.Uint64
	delivered   atomic.Uint64
	dropCount   atomic.Uint64
	replayed    atomic.Uint64
	histBytes   atomic.Int64 // hist.bytes, for Stats
}

// group is the set of subscriptions sharing one pattern: an exact topic
// (embedded in its topicEntry) or a wildcard pattern.
type group struct {
	pattern string
	subs    []*memorySubscription
	topic   *topicEntry // the entry embedding this group; nil for wildcards
	// The counts are 32 bits, beside mark: a group takes 64 bytes, a
	// topicEntry 80, as before mark.
	multi   int32  // how many of subs have more than one pattern
	replays int32  // how many of subs have an unfinished replay (replayAt)
	mark    uint64 // scratch for loseFromReplays: among the groups it looks at
}

// topicEntry is an active topic: it has retained events or exact
// subscriptions. It exists only while one of the two is true.
type topicEntry struct {
	group
	lastID   uint64 // newest event published to it, 0 for none
	retained int    // its events in the history
}

// NewMemory returns an open Memory broker configured by opts.
func NewMemory(opts MemoryOptions) *Memory {
	first := opts.FirstID
	if first == 0 {
		first = uint64(max(time.Now().UnixMicro(), 1))
	}
	return &Memory{
		bufSize: positiveOr(opts.SubscriberBuffer, DefaultSubscriberBuffer),
		maxSubs: positiveOr(opts.MaxSubscribers, DefaultMaxSubscribers),
		done:    make(chan struct{}),
		hist:    newHistory(positiveOr(opts.HistorySize, DefaultHistorySize), positiveOr(opts.HistoryMaxBytes, DefaultHistoryMaxBytes), first),
		topics:  make(map[string]*topicEntry),
		wild:    make(map[string]*group),
	}
}

func positiveOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// Publish validates p's topic, type (empty means the default "message";
// at most MaxEventTypeLen bytes, no CR, LF or NUL) and key, gives the
// event the next id, encodes it once, keeps it in the history and queues
// it to every subscription with a matching pattern, once each. It never
// waits: a subscription whose queue is full is dropped, ended with
// ErrSlowConsumer, unless its replay is still being handed out (see
// Subscribe) or it spills (Spill). After Close it returns ErrClosed.
//
// A publish whose p.Key its topic saw within IdempotencyWindow, with an
// event the history still retains, stores nothing: it returns that
// event's Message and replayed true when p is the same event (type and
// data), else an error wrapping ErrKeyReused. Two publishes with one key
// at once store one event.
func (b *Memory) Publish(p Publication) (msg *Message, replayed bool, err error) {
	if p.Key != "" {
		if err := ValidateIdempotencyKey(p.Key); err != nil {
			return nil, false, err
		}
	}
	return b.publish(0, p)
}

// publish is Publish with the event's id given (Deliver) or, when id is
// 0, the next one.
func (b *Memory) publish(id uint64, p Publication) (*Message, bool, error) {
	if err := ValidateTopic(p.Topic); err != nil {
		return nil, false, err
	}
	if err := validateEventType(p.Type); err != nil {
		return nil, false, err
	}
	buf := make([]byte, 0, frameSize(p.Type, p.Data))

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, false, ErrClosed
	}
	var now time.Time
	if p.Key != "" {
		now = time.Now()
		if first := b.hist.lookup(p.Topic, p.Key, now); first != nil {
			if !sameEvent(first, p.Type, p.Data, buf) {
				return nil, false, KeyReused(p.Topic, p.Key)
			}
			return first, true, nil
		}
	}
	if id == 0 {
		id = b.hist.next
	} else if err := b.skipTo(id); err != nil {
		return nil, false, err
	}
	msg, err := encodeMessage(buf, id, p.Topic, p.Type, p.Data)
	if err != nil { // unreachable: every field was validated
		return nil, false, err
	}

	t := b.topic(p.Topic)
	t.lastID = msg.ID
	t.retained++
	b.forget(b.hist.add(msg, t, p.Key, now))
	b.published.Add(1)
	b.fanOut(msg, t)
	return msg, false, nil
}

// fanOut queues msg to every subscription of t and of a matching wildcard
// group, then unlinks the subscriptions it dropped. The caller holds b.mu.
func (b *Memory) fanOut(msg *Message, t *topicEntry) {
	var n uint64
	for _, s := range t.subs {
		n += b.send(s, msg)
	}
	b.matched = b.wildIdx.match(msg.Topic, b.matched[:0])
	for i, g := range b.matched {
		for _, s := range g.subs {
			n += b.send(s, msg)
		}
		b.matched[i] = nil
	}
	if n > 0 {
		b.delivered.Add(n)
	}
	for i, s := range b.dropped {
		b.unlink(s)
		b.dropped[i] = nil
	}
	if cap(b.dropped) > keptDroppedCap {
		b.dropped = nil
	} else {
		b.dropped = b.dropped[:0]
	}
}

// forget forgets the messages the history evicted: their topics count
// them no more, and a replay that had yet to read one that matches it has
// lost it (memorySubscription.lost). The caller holds b.mu.
func (b *Memory) forget(evicted []evictedEntry) {
	for _, e := range evicted {
		if len(b.replaying) > 0 {
			b.loseFromReplays(e)
		}
		e.topic.retained--
		b.pruneTopic(e.topic)
	}
	b.histBytes.Store(int64(b.hist.bytes))
}

// loseFromReplays marks the subscriptions whose patterns match e's topic
// and whose unread replay holds e's id as having lost it. Those whose
// patterns match none of what the history evicts before they read it lose
// nothing: their replay goes on past the evicted ids. It looks only at
// the groups of e's topic that hold an unfinished replay, and goes through
// their subscriptions or through the unfinished replays, whichever are
// fewer: a resume reading slowly does not make each publish that evicts
// an event of a crowd's topic go through the crowd. Through the
// unfinished replays, it marks those groups and looks at each replay's
// own groups for the mark, rather than compare them with each of those
// groups: stalled resumes of many patterns, among many groups that the
// topic matches, would otherwise cost each such eviction their patterns
// times those groups. The caller holds b.mu and is not iterating
// b.matched.
func (b *Memory) loseFromReplays(e evictedEntry) {
	t := e.topic
	b.matched = b.wildIdx.match(t.pattern, append(b.matched[:0], &t.group))
	groups, subs := b.matched[:0], 0
	for _, g := range b.matched {
		if g.replays > 0 {
			groups = append(groups, g)
			subs += len(g.subs)
		}
	}
	clear(b.matched[len(groups):])
	if len(b.replaying) < subs {
		b.markSeq++
		mark := b.markSeq
		for _, g := range groups {
			g.mark = mark
		}
		for _, s := range b.replaying {
			if s.holds(e.id) && s.inMarkedGroup(mark) {
				s.lost = true
			}
		}
		if b.replaysMarked != nil {
			b.replaysMarked(e.id, mark)
		}
	} else {
		for _, g := range groups {
			for _, s := range g.subs {
				s.loseFromReplay(e.id)
			}
		}
	}
	clear(groups)
}

// keptDroppedCap is the largest capacity of the dropped scratch slice
// that the broker keeps from one publish to the next: one that dropped a
// crowd of slow subscribers at once grew it to a pointer each.
const keptDroppedCap = 64

// send queues msg to s without blocking and returns 1 if it did. A full
// queue ends s with ErrSlowConsumer; it is unlinked by the caller, after
// the fan-out, so the groups do not change while they are iterated. The
// caller holds b.mu.
func (b *Memory) send(s *memorySubscription, msg *Message) uint64 {
	if s.closed || s.lastSent == msg.ID {
		return 0
	}
	sent := s.lastSent
	s.lastSent = msg.ID
	if s.push(msg, b.bufSize) {
		return 1
	}
	replaying := s.replayNext < s.replayEnd
	if replaying && len(s.queue) > 0 && s.queue[0].ID < b.hist.oldest {
		// The history evicted queued events (oldest first, so the first
		// one): let go of for the replay to read on, they would be lost.
		// loseFromReplay did not see them, above the replay's end then.
		s.lost = true
	}
	switch {
	case replaying && (!s.lost || !s.handedOut):
		// Its replay is still being read: the queue, which is to follow
		// it, is let go of, and the replay reads on to msg, which the
		// history holds, as it does the rest. A subscriber that takes its
		// replay at once is not dropped for the live events published
		// meanwhile; one whose replay lost an event to the history is,
		// here (its stream may be blocked in a write, and call Replay no
		// more) or by Replay. One handed out nothing yet is left to
		// Replay, which tells it it was overtaken. msg is counted as
		// delivered, as those let go of were once queued: Replay does
		// not count them again.
		s.letQueueGo()
		s.replayEnd = msg.ID + 1
		return 1
	case s.spill:
		// Its replay, read from elsewhere, reads these too (Spill), and
		// does not count them as delivered again.
		s.letQueueGo()
		s.spilled = msg.ID
		return 1
	}
	s.lastSent = sent // not sent: LastSent is the last one counted
	b.closeSub(s, ErrSlowConsumer)
	b.dropCount.Add(1)
	b.dropped = append(b.dropped, s)
	return 0
}

// Subscribe opens a subscription to the events whose topic matches one of
// patterns (at least one, each a valid pattern; duplicates are ignored).
//
// An empty lastEventID asks for live events only. Otherwise, if the broker
// can resume after that id, the replay is every matching event with a
// larger id up to the newest one, in order, and the queue continues right
// after it: the subscription is registered in the same critical section
// that fixes the replay's range, so there is no gap and no duplicate even
// while others publish. The replay is not copied: Replay reads it from the
// history in pieces, and a subscriber that falls so far behind that the
// history evicts the rest of its replay is dropped (see
// Subscription.Replay). Live events that overflow the queue before the
// replay is handed out move its end on to the newest of them, the queue
// let go of: the replay reads them from the history too. If it cannot
// resume (not a number, older than the history, newer than the newest
// event), Reset says why and the queue
// carries live events only. An id from before a restart (below FirstID)
// has a Reset too, and then a replay of every retained event: all of them
// are after it. That replay starts at the oldest event retained when
// Replay reads it: it is never overtaken (ErrResumeOvertaken).
//
// It returns ErrTooManySubscribers when MaxSubscribers are open (or
// overtaken and not closed: see Resubscribe) and ErrClosed after Close.
func (b *Memory) Subscribe(patterns []string, lastEventID string) (Subscription, error) {
	return b.subscribe(nil, patterns, lastEventID, false)
}

// Resubscribe is Subscribe in place of old, a subscription of b that
// ended with ErrResumeOvertaken and is not closed yet: the new
// subscription takes over the place among MaxSubscribers that old keeps
// (see Subscription.Replay), so a broker holding MaxSubscribers does not
// refuse it, and closing old then frees nothing. With any other old (nil,
// open, closed, another broker's), it is Subscribe. b never waits: ctx
// is not used.
func (b *Memory) Resubscribe(_ context.Context, old Subscription, patterns []string, lastEventID string) (Subscription, error) {
	o, _ := old.(*memorySubscription)
	return b.subscribe(o, patterns, lastEventID, false)
}

// ResubscribeSpilling is Resubscribe for a broker that reads the replay
// of a resume from elsewhere (the NATS broker, from its stream) when b
// cannot give it: the subscription spills (Spill) from the moment it is
// registered, unless b replays it from its own history (lastEventID
// resumed from, with no Reset). Made first and told to spill after, the
// subscription could be dropped as too slow in between, by live events
// the replay read from elsewhere covers.
func (b *Memory) ResubscribeSpilling(_ context.Context, old Subscription, patterns []string, lastEventID string) (Subscription, error) {
	o, _ := old.(*memorySubscription)
	return b.subscribe(o, patterns, lastEventID, true)
}

// subscribe is Subscribe, in place of old when old is an overtaken
// subscription of b that keeps its place (Resubscribe); old may be nil.
// spill makes it spill from the start unless b replays it itself
// (ResubscribeSpilling).
func (b *Memory) subscribe(old *memorySubscription, patterns []string, lastEventID string, spill bool) (Subscription, error) {
	if len(patterns) == 0 {
		return nil, fmt.Errorf("no pattern: %w", ErrInvalidPattern)
	}
	distinct := make([]string, 0, len(patterns))
	for _, p := range patterns {
		if err := ValidatePattern(p); err != nil {
			return nil, err
		}
		if !slices.Contains(distinct, p) {
			distinct = append(distinct, p)
		}
	}
	s := &memorySubscription{
		broker:   b,
		ready:    make(chan struct{}, 1),
		patterns: distinct,
		slots:    make([]slot, 0, len(distinct)),
	}

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	instead := old != nil && old.broker == b && old.kept
	if !instead && b.subscribers.Load() >= int64(b.maxSubs) {
		b.mu.Unlock()
		return nil, fmt.Errorf("limit %d: %w", b.maxSubs, ErrTooManySubscribers)
	}
	s.from = b.hist.next - 1
	if lastEventID != "" {
		after, replay, reason := b.hist.resumePoint(lastEventID)
		s.reset = reason
		if replay {
			// The replay's range, fixed in the critical section that
			// registers s: the queue starts at b.hist.next.
			s.from, s.replayNext, s.replayEnd = after, after+1, b.hist.next
			s.queuedFrom = b.hist.next
			s.whole = reason != ""
			if s.replayNext < s.replayEnd {
				b.replaying = append(b.replaying, s)
				s.replayAt = len(b.replaying)
			}
		}
	}
	s.spill = spill && (lastEventID == "" || s.reset != "")
	if instead {
		// old's place is s's: link counts it again.
		old.kept = false
		b.subscribers.Add(-1)
	}
	b.link(s)
	b.mu.Unlock()
	return s, nil
}

// Overtake ends sub, an open subscription of b, with ErrResumeOvertaken,
// as Replay ends one whose replay the history overtook before it handed
// out an event: for a broker that reads a subscription's replay from
// elsewhere (the NATS broker, from its stream) and found it overtaken
// there. Like that one, it keeps its place among MaxSubscribers until it
// is closed or replaced (Resubscribe), and what it queued is let go: it
// would follow a gap. Any other sub is left as it is.
func (b *Memory) Overtake(sub Subscription) {
	s, ok := sub.(*memorySubscription)
	if !ok || s.broker != b {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !s.closed {
		s.queue = nil
		b.end(s, ErrResumeOvertaken)
	}
}

// Spill makes sub, an open subscription of b, let go of its queue and
// the event to queue when it is full, rather than be dropped as too slow:
// for a broker that reads sub's replay from elsewhere (the NATS broker,
// from its stream), where the events let go of are too, and that reads
// on past the replay's first end to the newest of them (StopSpill)
// before it hands out the queue. Any other sub is left as it is.
func (b *Memory) Spill(sub Subscription) {
	s, ok := sub.(*memorySubscription)
	if !ok || s.broker != b {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s.spill = !s.closed
}

// StopSpill ends Spill for sub once the events it let go of are all in
// the replay read for it, whose newest id is through: it reports stopped
// when none was let go of with an id above through (sub then queues
// and is dropped as any other), else it returns the id of the newest let
// go of, up to which the replay is to be read on, and sub goes on
// spilling. A sub that does not spill (any longer), or is another
// broker's, is stopped.
func (b *Memory) StopSpill(sub Subscription, through uint64) (spilled uint64, stopped bool) {
	s, ok := sub.(*memorySubscription)
	if !ok || s.broker != b {
		return 0, true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !s.spill || s.closed || s.spilled <= through {
		s.spill = false
		return 0, true
	}
	return s.spilled, false
}

// LastSent returns the id of the newest event b sent sub, a subscription
// of b, queued or let go of (Spill, or for its replay), each counted as
// delivered then; 0 for none, or for any other sub. Once sub has ended,
// b sends it nothing more: for a broker that hands out events of sub's
// range itself (a replay read from elsewhere), the ones above it are
// those b never counted.
func (b *Memory) LastSent(sub Subscription) uint64 {
	s, ok := sub.(*memorySubscription)
	if !ok || s.broker != b {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return s.lastSent
}

// link adds s to the group of each of its patterns, creating groups as
// needed. The caller holds b.mu.
func (b *Memory) link(s *memorySubscription) {
	for _, p := range s.patterns {
		var g *group
		if IsWildcard(p) {
			if g = b.wild[p]; g == nil {
				g = &group{pattern: p}
				b.wild[p] = g
				b.wildPeak = max(b.wildPeak, len(b.wild))
				b.wildIdx.add(g)
			}
		} else {
			g = &b.topic(p).group
		}
		g.subs = append(g.subs, s)
		if len(s.patterns) > 1 {
			g.multi++
		}
		if s.replayAt != 0 {
			g.replays++
		}
		s.slots = append(s.slots, slot{g: g, i: len(g.subs) - 1})
	}
	b.subscribers.Add(1)
}

// closeSub ends s with err and closes its Ready channel; what is queued
// can still be taken. It frees s's place among MaxSubscribers, unless
// err is ErrResumeOvertaken: that one is kept for the resume that
// replaces s (Resubscribe) until s is closed. The caller holds b.mu and
// unlinks s.
func (b *Memory) closeSub(s *memorySubscription, err error) {
	s.closed = true
	s.err = err
	close(s.ready)
	b.replayOver(s)
	if errors.Is(err, ErrResumeOvertaken) {
		s.kept = true
		return
	}
	b.subscribers.Add(-1)
}

// end closes s with err and removes it from its groups. The caller holds
// b.mu.
func (b *Memory) end(s *memorySubscription, err error) {
	b.closeSub(s, err)
	b.unlink(s)
}

// keptGroupCap is the largest capacity of a group's list of subscriptions
// (or of Memory.replaying) that removeSub keeps once it holds a quarter of
// it or fewer: a topic that stays active (its events retained) after a
// crowd of subscribers left would otherwise hold 8 bytes for each of them
// for the broker's life. Made again at a quarter, a list costs one copy
// per removed subscription at most, on average.
const keptGroupCap = 64

// removeSub removes subs[i], in no order: the last one takes its place,
// and is returned as moved (nil when subs[i] was the last), for the caller
// to record its new place. A list a crowd left is made again
// (keptGroupCap).
func removeSub(subs []*memorySubscription, i int) (rest []*memorySubscription, moved *memorySubscription) {
	last := len(subs) - 1
	if i != last {
		moved = subs[last]
		subs[i] = moved
	}
	subs[last] = nil
	subs = subs[:last]
	if cap(subs) > keptGroupCap && last <= cap(subs)/4 {
		subs = slices.Clone(subs) // a crowd left: its list is let go of
	}
	return subs, moved
}

// unlink removes s from every group it is in, dropping groups left empty.
// The caller holds b.mu.
func (b *Memory) unlink(s *memorySubscription) {
	for _, sl := range s.slots {
		g := sl.g
		var moved *memorySubscription
		if g.subs, moved = removeSub(g.subs, sl.i); moved != nil {
			moved.setSlot(g, sl.i)
		}
		if len(s.patterns) > 1 {
			g.multi--
		}
		if len(g.subs) == 0 {
			b.dropGroup(g)
		}
	}
	s.slots = nil
}

// dropGroup forgets an empty group. The map of wildcard groups is made
// again, smaller, once it holds half of its peak (see shrunk), and their
// index with it, whose maps of segments keep their peak's memory as
// well: wildcard patterns of their own (one per user, say) would
// otherwise hold it for the broker's life. The scratch list of matching
// groups is let go of once it could hold four times the groups a topic
// can match now (keptGroupCap at least): a publish to a topic that a
// crowd's patterns matched grew it to a pointer each. The caller holds
// b.mu and does not range over b.wild or b.matched.
func (b *Memory) dropGroup(g *group) {
	if g.topic != nil {
		b.pruneTopic(g.topic)
		return
	}
	delete(b.wild, g.pattern)
	b.wildIdx.remove(g)
	if c := cap(b.matched); c > keptGroupCap && c > 4*(len(b.wild)+1) {
		b.matched = nil // holds no pointer: each use clears what it put in
	}
	peak := b.wildPeak
	if b.wild = shrunk(b.wild, &b.wildPeak); b.wildPeak != peak { // made again
		b.wildIdx = wildIndex{}
		for _, w := range b.wild {
			b.wildIdx.add(w)
		}
	}
}

// topic returns the entry of topic, creating it if needed. The caller
// holds b.mu.
func (b *Memory) topic(topic string) *topicEntry {
	t := b.topics[topic]
	if t == nil {
		t = newTopicEntry(topic)
		b.topics[topic] = t
		b.topicsPeak = max(b.topicsPeak, len(b.topics))
	}
	return t
}

// pruneTopic forgets t once it has neither retained events nor exact
// subscriptions, and makes the map of topics again, smaller, once it holds
// half of its peak (see shrunk): a burst of topics (one per user, say)
// would otherwise hold the memory of the map's peak for the broker's
// life. The caller holds b.mu and does not range over b.topics.
func (b *Memory) pruneTopic(t *topicEntry) {
	if t.retained == 0 && len(t.subs) == 0 {
		delete(b.topics, t.pattern)
		b.topics = shrunk(b.topics, &b.topicsPeak)
	}
}

// minShrinkPeak is the fewest entries a map must have held for shrunk to
// make it again: below it, what it keeps is a few KiB.
const minShrinkPeak = 64

// shrunk returns m, or, once it holds half of *peak or fewer, a copy of m
// made for the entries it holds, with *peak set to their number. A Go map
// keeps the memory of the most entries it ever held, whatever is deleted;
// made again this way, it keeps the memory of about twice the entries it
// holds at most, and the copying costs one copy per deleted entry at most,
// on average.
func shrunk[K comparable, V any](m map[K]V, peak *int) map[K]V {
	if *peak < minShrinkPeak || len(m) > *peak/2 {
		return m
	}
	c := make(map[K]V, len(m))
	maps.Copy(c, m)
	*peak = len(c)
	return c
}

func newTopicEntry(topic string) *topicEntry {
	t := &topicEntry{}
	t.pattern = topic
	t.topic = t
	return t
}

// Done returns a channel that is closed when the broker is closed. A
// subscription needs no other signal: the broker's Close ends it, which
// closes its Ready channel.
func (b *Memory) Done() <-chan struct{} { return b.done }

// Close closes the broker: every open subscription is ended with
// ErrClosed, the history is released, Done is closed, and later Publish and
// Subscribe calls fail with ErrClosed. It is idempotent.
func (b *Memory) Close() { b.CloseWith(ErrClosed) }

// CloseWith is Close with err, not ErrClosed, as the Err of the
// subscriptions it ends: for a broker whose history ends for another
// reason than a shutdown (a NATS stream deleted), whose subscribers should
// reconnect. Only the first Close or CloseWith has an effect.
func (b *Memory) CloseWith(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	closeAll := func(g *group) {
		for _, s := range g.subs {
			if !s.closed {
				b.closeSub(s, err)
			}
			s.slots = nil
		}
	}
	for _, t := range b.topics {
		closeAll(&t.group)
	}
	for _, g := range b.wild {
		closeAll(g)
	}
	b.topics, b.wild, b.wildIdx, b.matched = nil, nil, wildIndex{}, nil
	b.hist.ring, b.hist.keys = nil, nil
	b.histBytes.Store(0)
	close(b.done)
}

// topicsScan is how many topics TopicsPage looks at while it holds the
// broker's lock; it takes the lock again for more.
const topicsScan = 512

// topicsWork bounds the groups and subscriptions that TopicsPage's walk
// of its entries goes through while it holds the broker's lock: it lets
// the lock go after topicsScan topics or once it went through that many,
// whichever comes first. A topic that many wildcard patterns match costs
// them all (2048 patterns of 64 subscriptions: 512 such topics held the
// lock for some 70 ms of CPU); most topics cost a few.
const topicsWork = 8 * topicsScan

// Topics lists the active topics, sorted by name: TopicsPage without
// a bound.
func (b *Memory) Topics() []TopicInfo {
	list, _ := b.TopicsPage("", 0)
	return list
}

// TopicsPage lists the active topics whose names sort after after, by
// name, limit of them at most (all for limit 0). When more follow, next
// is the name to give as after for the next page, the page's last ("" on
// the last page). A topic is active while the history retains at
// least one of its events or a subscription names it exactly (without
// wildcards); topics that only a wildcard subscription would match are
// not listed. Each entry counts the subscriptions receiving the topic,
// through any pattern, once each.
//
// It goes through the topics twice: once for the names of the page,
// keeping the limit+1 that sort first (and no more than twice that
// between two sorts), and once for those names' entries. Once it keeps
// limit+1 names it passes over any name after the last of them at the
// cost of a comparison, so a page of a broker with many topics sorts a
// few hundred names, not one piece of the walk after another.
// Each entry takes the broker's lock for its few wildcard lookups
// (wildIndex), and goes through its subscriptions one by one only when one
// of them has several patterns that match it. Both walks let the lock go
// after every topicsScan topics (the second sooner, after topicsWork
// groups and subscriptions), and the sort of more names than that
// goes on without it, so that a broker with many topics (one
// per user, say) does not hold up Publish for all of them at once, and the
// list is not one moment's: a topic that is active throughout is listed,
// one that became active or inactive meanwhile may or may not be, and each
// entry is as it stood when it was looked at. A page may then hold fewer
// than limit topics though more follow, and next names a topic it does
// not list.
func (b *Memory) TopicsPage(after string, limit int) (page []TopicInfo, next string) {
	keep := -1 // names kept: limit+1, to know whether more follow
	if limit > 0 {
		keep = limit + 1
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var names []string
	if keep < 0 {
		names = make([]string, 0, len(b.topics))
	}
	n := 0
	bound := "" // once keep names are kept, the last of them: a name past it is not on the page
	// Once the lock was let go, b.topics may have been made again
	// (shrunk): the walk goes on over the map it started with, which
	// nothing changes any more, and skips what is no longer active.
	for name, t := range b.topics {
		if n++; n%topicsScan == 0 && !b.pauseTopics() {
			return nil, ""
		}
		if name <= after || bound != "" && name >= bound || b.topics[name] != t {
			continue
		}
		names = append(names, name)
		if keep > 0 && len(names) >= 2*keep {
			slices.Sort(names)
			if names = slices.Compact(names); len(names) >= keep {
				names = names[:keep]
				bound = names[keep-1]
			}
		}
	}
	if len(names) > topicsScan {
		// The whole list's names: sorted with the lock let go, as the
		// walk looks at them, not in one hold.
		b.mu.Unlock()
		slices.Sort(names)
		if b.topicsPaused != nil {
			b.topicsPaused()
		}
		b.mu.Lock()
		if b.closed {
			return nil, ""
		}
	} else {
		slices.Sort(names)
	}
	// A topic dropped and made again after it was looked at may come up
	// again in the walk.
	names = slices.Compact(names)
	if keep > 0 && len(names) >= keep {
		names, next = names[:limit], names[limit-1]
	}
	page = make([]TopicInfo, 0, len(names))
	scanned, work := 0, 0 // since the lock was taken
	for _, name := range names {
		if scanned == topicsScan || work >= topicsWork {
			if !b.pauseTopics() {
				return nil, ""
			}
			scanned, work = 0, 0
		}
		scanned++
		t := b.topics[name]
		if t == nil {
			continue
		}
		b.matched = b.wildIdx.match(name, append(b.matched[:0], &t.group))
		n, walked := b.countSubscribers(b.matched)
		work += len(b.matched) + walked
		info := TopicInfo{Topic: name, Subscribers: n}
		clear(b.matched)
		if t.lastID != 0 {
			info.LastEventID = strconv.FormatUint(t.lastID, 10)
		}
		page = append(page, info)
	}
	return page, next
}

// pauseTopics lets the broker's lock go for a moment during
// TopicsPage's walks, and says whether the broker is still open. The
// caller holds b.mu.
func (b *Memory) pauseTopics() bool {
	b.mu.Unlock()
	if b.topicsPaused != nil {
		b.topicsPaused()
	}
	b.mu.Lock()
	return !b.closed
}

// countSubscribers counts the subscriptions of groups, once each. A
// subscription is in a group at most once, so only one with several
// patterns can be in two of them: without such, the count is a sum. It
// also returns how many subscriptions it went through one by one (0 for
// a sum). The caller holds b.mu.
func (b *Memory) countSubscribers(groups []*group) (count, walked int) {
	n, multi := 0, 0
	for _, g := range groups {
		n += len(g.subs)
		multi += int(g.multi)
	}
	if multi == 0 || len(groups) == 1 {
		return n, 0
	}
	b.markSeq++
	mark := b.markSeq
	walked, n = n, 0
	for _, g := range groups {
		for _, s := range g.subs {
			if s.mark != mark {
				s.mark = mark
				n++
			}
		}
	}
	return n, walked
}

// Stats returns the broker's running totals. It reads atomics only.
func (b *Memory) Stats() Stats {
	return Stats{
		Subscribers:  int(b.subscribers.Load()),
		Published:    b.published.Load(),
		Delivered:    b.delivered.Load(),
		Dropped:      b.dropCount.Load(),
		Replayed:     b.replayed.Load(),
		HistoryBytes: b.histBytes.Load(),
	}
}

// validateEventType checks an event type against the broker's rules and
// the encoder's.
func validateEventType(eventType string) error {
	if len(eventType) > MaxEventTypeLen {
		return fmt.Errorf("event type longer than %d bytes: %w", MaxEventTypeLen, ErrInvalidEventType)
	}
	if err := (&Event{Type: eventType}).Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidEventType, err)
	}
	return nil
}

// frameSize returns an upper bound of the encoded size of an event with the
// largest id, eventType and data, so the frame is allocated once.
func frameSize(eventType, data string) int {
	const idLine = len("id: ") + 20 + 1
	n := idLine + len(data) + 1
	if eventType != "" {
		n += len("event: ") + len(eventType) + 1
	}
	lines := 1 + strings.Count(data, "\n") + strings.Count(data, "\r")
	return n + lines*len("data: \n")
}
