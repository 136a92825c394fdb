package stream

import (
	"fmt"
	"strconv"
)

// history is a fixed-size ring of the most recent messages of one broker
// boot. Ids are contiguous from first, so the message with id x, while it is
// retained, sits in slot x % len(ring): finding a resume point is index
// arithmetic. The owner guards it with its mutex.
type history struct {
	ring  []historyEntry
	first uint64 // id of the first message of this boot
	next  uint64 // id the next message gets
}

// historyEntry is one retained message and the topic entry that counts it.
type historyEntry struct {
	msg   *Message
	topic *topicEntry
}

func newHistory(size int, first uint64) *history {
	return &history{ring: make([]historyEntry, size), first: first, next: first}
}

// add stores msg, whose id must be h.next, and returns the entry it
// evicted, whose msg is nil when the ring was not yet full.
func (h *history) add(msg *Message, topic *topicEntry) historyEntry {
	slot := &h.ring[msg.ID%uint64(len(h.ring))]
	old := *slot
	*slot = historyEntry{msg: msg, topic: topic}
	h.next = msg.ID + 1
	return old
}

// oldest returns the id of the oldest retained message, which equals
// h.next when nothing is retained.
func (h *history) oldest() uint64 {
	if n := uint64(len(h.ring)); h.next-h.first > n {
		return h.next - n
	}
	return h.first
}

// resumePoint parses lastEventID and reports whether every message after
// it is still retained. It returns the id to replay after, or a reason,
// meant for the client, why the broker cannot resume from it.
func (h *history) resumePoint(lastEventID string) (after uint64, reason string) {
	id, err := strconv.ParseUint(lastEventID, 10, 64)
	switch {
	case err != nil:
		return 0, "the last event id is not an event id of this hub; events may have been missed"
	case id < h.first:
		return 0, fmt.Sprintf("last event id %d is from before the hub restarted; events may have been missed", id)
	case id >= h.next && h.next == h.first:
		return 0, fmt.Sprintf("last event id %d is unknown: no event has been published since the hub started", id)
	case id >= h.next:
		return 0, fmt.Sprintf("last event id %d is unknown: the newest event id is %d", id, h.next-1)
	case id+1 < h.oldest():
		return 0, fmt.Sprintf("last event id %d is older than the retained history (oldest id %d); events were missed", id, h.oldest())
	}
	return id, ""
}

// since returns the retained messages with an id above after, in id order.
// after must be a resume point returned by resumePoint.
func (h *history) since(after uint64) []*Message {
	if after+1 >= h.next {
		return nil
	}
	out := make([]*Message, 0, h.next-after-1)
	n := uint64(len(h.ring))
	for id := after + 1; id < h.next; id++ {
		if m := h.ring[id%n].msg; m != nil { // nil: an id Deliver skipped
			out = append(out, m)
		}
	}
	return out
}
