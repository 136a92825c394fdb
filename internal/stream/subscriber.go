package stream

import "strconv"

// keptQueueCap is the largest queue capacity a subscription keeps once Take
// has emptied it: at most 512 bytes, whatever MemoryOptions.SubscriberBuffer
// allows. A queue that grew past it while the subscriber fell behind is let
// go. A smaller bound (16) made BenchmarkFanout10k, whose subscribers lag
// by up to 64 events, allocate about ten times as often and run slower.
const keptQueueCap = 64

// memorySubscription is a Subscription of a Memory broker. Subscribe sets
// the fields above the guarded group before it returns; they never change
// after that.
//
// Its queue is a slice that Publish appends to under the broker's lock,
// which it holds anyway, and grows only when the subscriber falls behind:
// an idle or keeping-up subscriber holds 0 or 1 events. A preallocated
// channel would hold SubscriberBuffer pointers (2 KiB by default) for every
// subscription; see BenchmarkIdleSubscription.
type memorySubscription struct {
	reset string // see Subscription.Reset
	from  uint64 // see Subscription.Position

	broker   *Memory
	ready    chan struct{} // capacity 1; closed when the subscription ends
	patterns []string      // distinct, validated

	// Guarded by broker.mu.
	queue    []*Message // queued, not yet taken
	slots    []slot     // one per pattern: the group holding this subscription
	lastSent uint64     // id of the last message queued, so one topic is sent once
	mark     uint64     // scratch for Topics, to count a subscription once
	err      error      // why it ended
	// The rest of the replay is the retained ids [replayNext, replayEnd)
	// whose messages match: a position in the history, not a copy of it,
	// so what the history evicts is freed even while a slow subscriber
	// is still being sent its replay. Equal once the replay is done.
	replayNext, replayEnd uint64
	// queuedFrom is the first id of the queue, the replay's first end:
	// the replay's events from it on were counted as delivered when they
	// were queued, before the queue was let go of (send).
	queuedFrom uint64
	// spilled is the id of the newest event let go of while spill is
	// set (Memory.Spill).
	spilled uint64
	// replayAt is, while it is open with its replay unfinished, its
	// place in Memory.replaying plus one, and it is counted in the
	// replays of each of its groups; 0 otherwise.
	replayAt int

	// The flags, together: apart, each would take a word of its own.
	closed bool // ended; ready is closed
	// kept marks a subscription that ended with ErrResumeOvertaken and
	// still counts among MaxSubscribers: until Close, or until the
	// subscription that replaces it (Resubscribe) takes its place over.
	kept      bool
	handedOut bool // Replay has handed out an event
	// spill makes a full queue let go of what it holds rather than end
	// the subscription (Memory.Spill).
	spill bool
	// whole marks the replay of every retained event, of a resume from
	// before a restart: its start is the oldest retained event when
	// Replay reads it, not a fixed id.
	whole bool
	// lost is set when the history evicted an event of the unread
	// replay that matches, or a queued one before the queue was let go
	// of for the replay to read on (send): the replay cannot go on
	// without a gap. Ids evicted that match none of the patterns are
	// passed over.
	lost bool
	// slid marks a queue that Take left the rest of in its array, past
	// the events it took: its capacity is what is left of the array from
	// there, not the array's (letQueueGo).
	slid bool
}

// slot places a subscription in a group: g.subs[i] is the subscription.
type slot struct {
	g *group
	i int
}

// Reset says why the requested last event id could not be resumed from, or
// is empty.
func (s *memorySubscription) Reset() string { return s.reset }

// Position returns the id the subscription's first event comes after.
func (s *memorySubscription) Position() string { return strconv.FormatUint(s.from, 10) }

// Idle returns the broker's newest id while the subscription is open with
// its queue empty and its replay done: every event up to it that matches
// was handed out, under the lock Publish queues with.
func (s *memorySubscription) Idle() (id uint64, ok bool) {
	b := s.broker
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.closed || len(s.queue) > 0 || s.replayNext < s.replayEnd {
		return 0, false
	}
	return b.hist.next - 1, true
}

// Ready returns the channel that is signalled when events were queued to an
// empty queue and closed when the subscription ends.
func (s *memorySubscription) Ready() <-chan struct{} { return s.ready }

// Take appends the queued events to dst, oldest first, until their
// frames take maxBytes or more (all of them for maxBytes 0 or less), and
// removes them from the queue, letting it go once empty if it grew past
// keptQueueCap or was taken in pieces. What it leaves stays queued, counted against
// SubscriberBuffer, and Ready is signalled for it. A subscription that
// has ended hands out its whole queue at once: its subscriber stops after
// that, rather than take the queue piece by piece. open is false once the
// subscription has ended and the queue is empty. Only the subscriber may
// call it, from one goroutine at a time.
func (s *memorySubscription) Take(dst []*Message, maxBytes int) (msgs []*Message, open bool) {
	b := s.broker
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(s.queue) == 0 {
		return dst, !s.closed
	}
	if n := takeCount(s.queue, maxBytes); n < len(s.queue) && !s.closed {
		// The rest stays where it is: moved down, it would be copied
		// again at each piece, under the lock Publish needs. Push's
		// append moves it into an array of its own once this one is
		// used up.
		dst = append(dst, s.queue[:n]...)
		clear(s.queue[:n])
		s.queue = s.queue[n:]
		s.slid = true
		if !s.closed {
			select {
			case s.ready <- struct{}{}:
			default: // a wake-up is pending already
			}
		}
		return dst, true
	}
	dst = append(dst, s.queue...)
	s.letQueueGo() // the Messages belong to the subscriber now
	return dst, true
}

// letQueueGo empties the queue, letting it go if it grew past
// keptQueueCap, or if Take left its rest in its array (slid): the
// capacity left from there may be small while the array is not, and the
// queue kept would keep it. The caller holds broker.mu.
func (s *memorySubscription) letQueueGo() {
	if cap(s.queue) > keptQueueCap || s.slid {
		s.queue, s.slid = nil, false
	} else {
		clear(s.queue)
		s.queue = s.queue[:0]
	}
}

// takeCount returns how many of queue, from the oldest, have frames that
// take maxBytes or more (all of them for maxBytes 0 or less; at least
// one).
func takeCount(queue []*Message, maxBytes int) int {
	if maxBytes <= 0 {
		return len(queue)
	}
	size := 0
	for i, m := range queue {
		if size += len(m.Frame); size >= maxBytes {
			return i + 1
		}
	}
	return len(queue)
}

// push queues msg and wakes the subscriber if the queue was empty. It
// reports false, queuing nothing, when the queue holds bufSize events
// already. The caller holds broker.mu.
func (s *memorySubscription) push(msg *Message, bufSize int) bool {
	if len(s.queue) >= bufSize {
		return false
	}
	if len(s.queue) == 0 {
		select {
		case s.ready <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
	s.queue = append(s.queue, msg)
	return true
}

// Err returns why the subscription ended: ErrSlowConsumer,
// ErrResumeOvertaken, ErrClosed (the broker was closed), or nil when Close
// was called or it is still open.
func (s *memorySubscription) Err() error {
	s.broker.mu.Lock()
	defer s.broker.mu.Unlock()
	return s.err
}

// Close ends the subscription and closes Ready, and frees the place among
// MaxSubscribers that an overtaken one keeps. It is idempotent and safe
// to call concurrently with Publish, Take and closing the broker.
func (s *memorySubscription) Close() {
	b := s.broker
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case !s.closed:
		b.end(s, nil)
	case s.kept:
		s.kept = false
		b.subscribers.Add(-1)
	}
}

// loseFromReplay marks the replay as having lost id, an id of a message
// it matches that the history evicts, if it had yet to read it. The
// caller holds broker.mu.
func (s *memorySubscription) loseFromReplay(id uint64) {
	if s.holds(id) {
		s.lost = true
	}
}

// holds reports whether id is in the unread rest of the replay. The
// caller holds broker.mu.
func (s *memorySubscription) holds(id uint64) bool {
	return s.replayNext <= id && id < s.replayEnd
}

// inMarkedGroup reports whether s is in a group marked with mark. The
// caller holds broker.mu.
func (s *memorySubscription) inMarkedGroup(mark uint64) bool {
	for _, sl := range s.slots {
		if sl.g.mark == mark {
			return true
		}
	}
	return false
}

// matches reports whether topic matches one of the subscription's patterns.
func (s *memorySubscription) matches(topic string) bool {
	for _, p := range s.patterns {
		if Match(p, topic) {
			return true
		}
	}
	return false
}

// setSlot records that s now sits at index i of g. The caller holds
// broker.mu.
func (s *memorySubscription) setSlot(g *group, i int) {
	for k := range s.slots {
		if s.slots[k].g == g {
			s.slots[k].i = i
			return
		}
	}
}
