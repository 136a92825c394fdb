package main

import (
	"strconv"
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
	if !ok {
		d.other.Add(1)
		return false
	}
	if s.mark(seq) {
		d.duplicates.Add(1)
		return false
	}
	d.delivered.Add(1)
	d.latency.Record(now.Sub(time.Unix(0, ts)))
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
	var s subState
	c.parser.OnComment = func(string) { d.heartbeats.Add(1) }
	for {
		ev, err := c.Next()
		if err != nil {
			return err
		}
		d.onEvent(&s, ev, time.Now())
	}
}

// Report returns the delivery figures for expected events.
func (d *delivery) Report(expected int64, elapsed time.Duration) *DeliveryReport {
	r := &DeliveryReport{
		Expected:   expected,
		Delivered:  d.delivered.Load(),
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
