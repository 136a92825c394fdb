package stream

// memorySubscription is a Subscription of a Memory broker. Subscribe sets
// the fields above the guarded group before it returns; they never change
// after that.
type memorySubscription struct {
	replay []*Message // see Subscription.Replay
	reset  string     // see Subscription.Reset

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

// Replay returns the retained events after the requested last event id that
// match the subscription, oldest first.
func (s *memorySubscription) Replay() []*Message { return s.replay }

// Reset says why the requested last event id could not be resumed from, or
// is empty.
func (s *memorySubscription) Reset() string { return s.reset }

// C returns the channel of live events. It is closed when the subscription
// ends: the subscriber was too slow, Close was called, or the broker was
// closed; Err then says which. Every Message is shared: do not modify it.
func (s *memorySubscription) C() <-chan *Message { return s.ch }

// Err returns why C was closed: ErrSlowConsumer, ErrClosed (the broker was
// closed), or nil when Close was called or C is still open.
func (s *memorySubscription) Err() error {
	s.broker.mu.Lock()
	defer s.broker.mu.Unlock()
	return s.err
}

// Close ends the subscription and closes C. It is idempotent and safe to
// call concurrently with Publish and with closing the broker.
func (s *memorySubscription) Close() {
	b := s.broker
	b.mu.Lock()
	defer b.mu.Unlock()
	if !s.closed {
		b.end(s, nil)
	}
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
