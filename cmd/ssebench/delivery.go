package main

import (
	"math/bits"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

// delivery counts what the subscribers received, across all of them. Its
// methods are safe for concurrent use; each subscriber keeps its own
// subState.
type delivery struct {
	// event is the name the events are published under (-event): with
	// one, they arrive as that type, not as message.
	event string

	delivered  atomic.Int64
	duplicates atomic.Int64
	outOfOrder atomic.Int64
	resets     atomic.Int64
	other      atomic.Int64
	heartbeats atomic.Int64
	latency    Histogram
	lastAt     atomic.Int64 // Unix ns of the latest first arrival of an event
	// seqLimit is above the sequence number of every event the run
	// published so far: an event with a higher one is another's.
	seqLimit atomic.Int64

	mu     sync.Mutex
	states []*subState // every subscriber's, for the count of missing events
}

// newState returns a new subscriber's state, kept for Report.
func (d *delivery) newState() *subState {
	s := &subState{}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.states = append(d.states, s)
	return s
}

// subState is one subscriber's view of its stream: the last id, to check
// order, and which sequence numbers it has seen, to find duplicates. The
// bitmap grows with the highest sequence number: one bit per published
// event per subscriber.
type subState struct {
	lastID  uint64
	haveID  bool
	lastSeq int64
	seen    []uint64
}

// onEvent accounts for one event received at now and reports whether it
// was a published event seen for the first time.
//
// Order is checked on the hub's ids when they are numbers (ids increase
// in publish order, whatever order the publishers' requests took);
// otherwise on the sequence numbers, which is exact only with one
// publisher.
func (d *delivery) onEvent(s *subState, ev stream.Event, now time.Time) (fresh bool) {
	switch ev.Type {
	case "reset":
		d.resets.Add(1)
		return false
	case "position": // a live-only stream's first event, or an idle one's heartbeat
		return false
	case "", "message", d.event:
	default:
		d.other.Add(1)
		return false
	}
	seq, ts, ok := parsePayload(ev.Data)
	if !ok || seq >= d.seqLimit.Load() {
		d.other.Add(1)
		return false
	}
	if s.mark(seq) {
		d.duplicates.Add(1)
		return false
	}
	d.delivered.Add(1)
	d.latency.Record(now.Sub(time.Unix(0, ts)))
	for at := now.UnixNano(); ; {
		last := d.lastAt.Load()
		if at <= last || d.lastAt.CompareAndSwap(last, at) {
			break
		}
	}
	if id, err := strconv.ParseUint(ev.ID, 10, 64); err == nil {
		if s.haveID && id <= s.lastID {
			d.outOfOrder.Add(1)
		}
		s.lastID, s.haveID = id, true
		return true
	}
	if seq < s.lastSeq {
		d.outOfOrder.Add(1)
	}
	s.lastSeq = seq
	return true
}

// mark records seq as seen and reports whether it was seen before.
func (s *subState) mark(seq int64) bool {
	if seq < 0 {
		return false
	}
	w, bit := int(seq/64), uint64(1)<<(seq%64)
	if w >= len(s.seen) {
		s.seen = append(s.seen, make([]uint64, w+1-len(s.seen))...)
	}
	if s.seen[w]&bit != 0 {
		return true
	}
	s.seen[w] |= bit
	return false
}

// readEvents reads c until it ends, accounting for each event in d.
func (d *delivery) readEvents(c *sseConn) error {
	s := d.newState()
	c.parser.OnComment = func(string) { d.heartbeats.Add(1) }
	for {
		ev, err := c.Next()
		if err != nil {
			return err
		}
		d.onEvent(s, ev, time.Now())
	}
}

// arrivedWithin returns the time from start to the latest first arrival
// of an event, 0 when none arrived: the span the delivery rate is over,
// which a wait for events that never came does not stretch.
func (d *delivery) arrivedWithin(start time.Time) time.Duration {
	last := d.lastAt.Load()
	if last == 0 {
		return 0
	}
	return max(time.Unix(0, last).Sub(start), 0)
}

// seqSet is a set of sequence numbers, in the layout of subState.seen. It
// is safe for concurrent use.
type seqSet struct {
	mu   sync.Mutex
	bits []uint64
}

func (a *seqSet) add(seq int64) {
	if seq < 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	w := int(seq / 64)
	if w >= len(a.bits) {
		a.bits = append(a.bits, make([]uint64, w+1-len(a.bits))...)
	}
	a.bits[w] |= 1 << (seq % 64)
}

// countIn returns how many of the set's numbers seen holds.
func (a *seqSet) countIn(seen []uint64) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	var n int
	for w := range min(len(a.bits), len(seen)) {
		n += bits.OnesCount64(a.bits[w] & seen[w])
	}
	return int64(n)
}

// Report returns the delivery figures for expected events. With accepted,
// the sequence numbers whose publish the server accepted, Delivered and
// Missing count those alone, subscriber by subscriber: an event a
// subscriber got although its publish failed does not make up for an
// accepted one another lacks. Call it once the subscribers' reads ended.
func (d *delivery) Report(expected int64, accepted *seqSet, elapsed time.Duration) *DeliveryReport {
	delivered := d.delivered.Load()
	var unaccepted int64
	if accepted != nil {
		d.mu.Lock()
		var got int64
		for _, s := range d.states {
			got += accepted.countIn(s.seen)
		}
		d.mu.Unlock()
		delivered, unaccepted = got, delivered-got
	}
	r := &DeliveryReport{
		Expected:   expected,
		Delivered:  delivered,
		Unaccepted: unaccepted,
		Duplicates: d.duplicates.Load(),
		OutOfOrder: d.outOfOrder.Load(),
		Resets:     d.resets.Load(),
		Other:      d.other.Load(),
		Heartbeats: d.heartbeats.Load(),
	}
	r.Missing = max(expected-r.Delivered, 0)
	if elapsed > 0 {
		r.PerSecond = float64(r.Delivered) / elapsed.Seconds()
	}
	if d.latency.Count() > 0 {
		l := d.latency.Summary()
		r.Latency = &l
	}
	return r
}
