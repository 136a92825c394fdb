package stream

import (
	"cmp"
	"slices"
)

// A subscription's replay is a range of the history's ids, fixed by
// Subscribe, and Replay reads it in pieces: what the history evicts before
// it is read is freed, and the subscriber that fell that far behind is
// dropped rather than sent the replay with a gap.

// replayScan is how many history ids Replay looks at while it holds the
// broker's lock, at most; it takes the lock again for more. A resume
// matching few of the retained events thus does not hold up Publish for
// the whole history at once.
const replayScan = 512

// replayScanBytes bounds the pattern bytes that one step of Replay
// matches the ids it looks at against, replayScan ids of 64 bytes of
// patterns: a subscription whose patterns take more looks at fewer ids a
// step (one at least). Matching a topic costs up to a pattern's length,
// some 18 ns a byte for patterns of one-character segments, so a resume
// of 32 patterns of 253 bytes held the lock for tens of milliseconds a
// step of replayScan ids; it now holds it for under a millisecond.
const replayScanBytes = replayScan * 64

// scanIDs is how many ids a step of s's replay looks at: replayScan, or
// fewer for patterns of more than replayScanBytes in all (see there).
func (s *memorySubscription) scanIDs() uint64 {
	n := 0
	for _, p := range s.patterns {
		n += len(p)
	}
	return uint64(max(1, min(replayScan, replayScanBytes/max(n, 1))))
}

// replayCallScans is how many pieces of replayScan ids (or fewer: see
// replayScanBytes) one Replay call looks at, at most: a replay matching nothing in a long stretch of the
// history returns none and not done after them, so that its subscriber's
// loop watches its client and its heartbeat meanwhile.
const replayCallScans = 16

// Replay appends the next retained events of the replay that match the
// subscription to dst, until their frames take maxBytes, and reports done
// once none is left. It looks at replayCallScans pieces of replayScan
// ids at most (fewer for long patterns: replayScanBytes), so it may return fewer, or none, and not be done. When the
// history let go of an event of the rest of the replay (one that matches:
// the ids of others it passes over) before it read it, it ends the
// subscription with ErrSlowConsumer (counted as dropped), or with
// ErrResumeOvertaken (not counted) when it had handed out no event of the
// replay yet (a replay of every retained event, from before a restart,
// then starts at the oldest retained instead), and reports done; a
// subscription that has ended with its replay unfinished hands out
// neither its rest nor its queue. Only the subscriber may call it, from
// one goroutine at a time.
func (s *memorySubscription) Replay(dst []*Message, maxBytes int) (msgs []*Message, done bool) {
	bytes, n := 0, len(dst)
	maxBytes = max(maxBytes, 1) // one event at least: a frame is never empty
	for scans := 0; !done && bytes < maxBytes && scans < replayCallScans; scans++ {
		dst, bytes, done = s.replayScan(dst, bytes, maxBytes)
	}
	if k := uint64(len(dst) - n); k > 0 {
		s.broker.replayed.Add(k)
		// Those from queuedFrom on were counted when queued (send).
		queued := len(dst) - n - countBelow(dst[n:], s.queuedFrom)
		s.broker.delivered.Add(k - uint64(queued))
	}
	return dst, done
}

// replayScan is one step of Replay under the broker's lock: it appends the
// matching messages of at most scanIDs ids to dst while their frames
// take less than maxBytes, counting them in bytes.
func (s *memorySubscription) replayScan(dst []*Message, bytes, maxBytes int) ([]*Message, int, bool) {
	b := s.broker
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.replayNext == s.replayEnd {
		b.replayOver(s)
		return dst, bytes, true
	}
	if !s.closed && s.replayNext < b.hist.oldest {
		// The history evicted ids the replay had yet to read. Those that
		// match none of its patterns it needed not, and it goes on past
		// them. One that matches (lost) it cannot go on without: the
		// subscriber is dropped as one that fell behind is, unless it
		// was handed out nothing yet: it fell behind nothing, its last
		// event id is the one it resumed from, and a resume from there
		// is what to answer now (ErrResumeOvertaken). A replay of every
		// retained event (a resume from before a restart, told so by its
		// Reset) starts where the history now does: subscribing again
		// would answer the same, which the next publish would overtake
		// again.
		switch {
		case !s.lost || s.whole && !s.handedOut:
			s.replayNext, s.lost = min(b.hist.oldest, s.replayEnd), false
		case s.handedOut:
			b.end(s, ErrSlowConsumer)
			b.dropCount.Add(1)
		default:
			b.end(s, ErrResumeOvertaken)
		}
	}
	if s.closed {
		// Ended with the replay unfinished: the queue, which continues
		// after the replay, would follow a gap.
		s.replayNext, s.replayEnd = 0, 0
		s.queue = nil
		b.replayOver(s)
		return dst, bytes, true
	}
	ring := b.hist.ring
	stop := min(s.replayEnd, s.replayNext+s.scanIDs())
	for s.replayNext < stop && bytes < maxBytes {
		m := ring[s.replayNext%uint64(len(ring))].msg
		s.replayNext++
		if m != nil && s.matches(m.Topic) { // nil: an id Deliver skipped
			dst = append(dst, m)
			bytes += len(m.Frame)
			s.handedOut = true
		}
	}
	if s.replayNext == s.replayEnd {
		b.replayOver(s)
		return dst, bytes, true
	}
	return dst, bytes, false
}

// replayOver takes s out of the unfinished replays, the broker's list and
// its groups' counts, if it is in them: its replay is done, or it has
// ended (before it is unlinked). The list is made again once it holds a
// quarter of its capacity or less, as a group's is (removeSub): a crowd of
// resumes would otherwise hold its memory for the broker's life. The
// caller holds b.mu.
func (b *Memory) replayOver(s *memorySubscription) {
	if s.replayAt == 0 {
		return
	}
	for _, sl := range s.slots {
		sl.g.replays--
	}
	i := s.replayAt - 1
	var moved *memorySubscription
	if b.replaying, moved = removeSub(b.replaying, i); moved != nil {
		moved.replayAt = i + 1
	}
	s.replayAt = 0
}

// countBelow counts the messages of msgs, in increasing id order, whose
// id is below id.
func countBelow(msgs []*Message, id uint64) int {
	n, _ := slices.BinarySearchFunc(msgs, id, func(m *Message, id uint64) int { return cmp.Compare(m.ID, id) })
	return n
}
