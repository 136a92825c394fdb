package stream

// Subscription is one subscriber of a Memory broker: the events it missed
// (Replay, or why they cannot be replayed: Reset) and a channel of live
// events. C, Err and Close are safe for concurrent use; Replay and Reset are
// set before Subscribe returns and never change.
type Subscription struct {
	// Replay holds the retained events after the requested last event id
	// that match the subscription, oldest first. Send them before reading C:
	// C starts with the first event after the last one in Replay.
	Replay []*Message
	// Reset, when not empty, says in words why the requested last event id
	// could not be resumed from; Replay is then empty and C carries live
	// events only.
	Reset string

	broker   *Memory
	ch       chan *Message
	patterns []string // distinct, validated

	// Guarded by broker.mu.
	slots    []slot // one per pattern: the group holding this subscription
	lastSent uint64 // id of the last message queued, so one topic is sent once
	mark     uint64 // scratch for Topics, to count a subscription once
	closed   bool   // ch is closed
	err      error  // why ch was closed
}

// slot places a subscription in a group: g.subs[i] is the subscription.
type slot struct {
	g *group
	i int
}

// C returns the channel of live events. It is closed when the subscription
// ends: the subscriber was too slow, Close was called, or the broker was
// closed; Err then says which. Every Message is shared: do not modify it.
func (s *Subscription) C() <-chan *Message { return s.ch }

// Err returns why C was closed: ErrSlowConsumer, ErrClosed (the broker was
// closed), or nil when Close was called or C is still open.
func (s *Subscription) Err() error {
	s.broker.mu.Lock()
	defer s.broker.mu.Unlock()
	return s.err
}

// Close ends the subscription and closes C. It is idempotent and safe to
// call concurrently with Publish and with closing the broker.
func (s *Subscription) Close() {
	b := s.broker
	b.mu.Lock()
	defer b.mu.Unlock()
	if !s.closed {
		b.end(s, nil)
	}
}

// matches reports whether topic matches one of the subscription's patterns.
func (s *Subscription) matches(topic string) bool {
	for _, p := range s.patterns {
		if Match(p, topic) {
			return true
		}
	}
	return false
}

// setSlot records that s now sits at index i of g. The caller holds
// broker.mu.
func (s *Subscription) setSlot(g *group, i int) {
	for k := range s.slots {
		if s.slots[k].g == g {
			s.slots[k].i = i
			return
		}
	}
}
