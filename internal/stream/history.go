package stream

import (
	"fmt"
	"strconv"
	"time"
)

// history is a fixed-size ring of the most recent messages of one broker
// boot, bounded by count (the ring's size) and by bytes (maxBytes of
// retainedBytes). Ids are contiguous from first, so the message with id x,
// while it is retained, sits in slot x % len(ring): finding a resume point
// is index arithmetic. The retained ids are [oldest, next); evicting, by
// either bound, only advances oldest and empties the slot, so the message
// can be freed. The idempotency keys of the retained messages are indexed
// (keys), so a key is forgotten once its message is evicted. The owner
// guards it with its mutex.
type history struct {
	ring     []historyEntry
	start    uint64 // the first id this boot gives: ids below are from before it
	first    uint64 // id of the first message of this boot
	oldest   uint64 // id of the oldest retained message; next when none is
	next     uint64 // id the next message gets
	bytes    int    // entryBytes of the retained entries
	maxBytes int
	keys     keyIndex // nil until a message with a key is added
	keysPeak int      // the most keys held since keys was made

	evicted []evictedEntry // scratch for add, reused
}

// evictedEntry is a message the history let go of: its id and the topic
// entry that counted it.
type evictedEntry struct {
	id    uint64
	topic *topicEntry
}

// historyEntry is one retained message, the topic entry that counts it
// and its idempotency key, if it was published with one.
type historyEntry struct {
	msg   *Message
	topic *topicEntry
	key   string
}

// messageOverhead is what a retained message costs beside its frame and
// its id and topic strings: the Message struct itself (an 8-byte id and
// two string and one slice headers: 64 bytes on a 64-bit platform).
const messageOverhead = 64

// retainedBytes is what the history charges for keeping msg: the memory
// its frame was allocated with (see allocBytes), its id and topic strings
// and the Message struct.
func retainedBytes(msg *Message) int {
	return allocBytes(cap(msg.Frame)) + len(msg.id) + len(msg.Topic) + messageOverhead
}

// entryBytes is what the history charges for e: its message's
// retainedBytes, and its key with the key's index entry.
func entryBytes(e *historyEntry) int {
	if e.key == "" {
		return retainedBytes(e.msg)
	}
	return retainedBytes(e.msg) + len(e.key) + keyOverhead
}

// allocBytes is the heap memory the Go allocator takes for an object of n
// bytes, as far as it matters here: an object above 32 KiB takes whole
// 8 KiB pages (a 65.5 KB frame takes 72 KiB). Smaller objects are rounded up
// to a size class, at most 1/8 more; that is not counted.
func allocBytes(n int) int {
	const largeObject, page = 32 << 10, 8 << 10
	if n > largeObject {
		return (n + page - 1) &^ (page - 1)
	}
	return n
}

// keptEvictedCap is the largest capacity of the evicted scratch slice that
// the history keeps from one call to the next. One event that evicts a
// whole history of small ones by bytes, or a Lose, grows it to one entry
// per evicted message (160 MB after a history of 10,000,000): it is let go
// rather than kept for the broker's life, beside a ring that is 32 bytes a
// slot.
const keptEvictedCap = 64

// resetEvicted empties the evicted scratch slice for the next call, letting
// it go if it grew past keptEvictedCap.
func (h *history) resetEvicted() {
	if cap(h.evicted) > keptEvictedCap {
		h.evicted = nil
		return
	}
	clear(h.evicted)
	h.evicted = h.evicted[:0]
}

// newHistory returns an empty history of size messages and at most
// maxBytes whose first message gets id first.
func newHistory(size, maxBytes int, first uint64) *history {
	return &history{ring: make([]historyEntry, size), maxBytes: maxBytes, start: first, first: first, oldest: first, next: first}
}

// add stores msg, whose id must be h.next, then evicts the oldest messages
// while more than len(ring) are retained or they take more than maxBytes.
// The newest message always stays, even one above maxBytes alone. A
// non-empty key is indexed as published at now (see lookup) until msg is
// evicted. It returns the id and topic entry of each message it evicted,
// oldest first, in a slice valid until the next call.
func (h *history) add(msg *Message, topic *topicEntry, key string, now time.Time) []evictedEntry {
	h.resetEvicted()
	if h.next-h.oldest == uint64(len(h.ring)) {
		h.evictOldest() // frees msg's slot
	}
	e := &h.ring[msg.ID%uint64(len(h.ring))]
	*e = historyEntry{msg: msg, topic: topic, key: key}
	if key != "" {
		if h.keys == nil {
			h.keys = make(keyIndex)
		}
		h.keys[topicKey{topic.pattern, key}] = keyedMessage{id: msg.ID, at: now}
		h.keysPeak = max(h.keysPeak, len(h.keys))
	}
	h.next = msg.ID + 1
	h.bytes += entryBytes(e)
	for h.bytes > h.maxBytes && h.oldest < msg.ID {
		h.evictOldest()
	}
	return h.evicted
}

// evictOldest forgets the oldest retained id, releasing its slot; the id
// may have no message (one skipTo skipped).
func (h *history) evictOldest() {
	slot := &h.ring[h.oldest%uint64(len(h.ring))]
	if slot.msg != nil {
		h.bytes -= entryBytes(slot)
		h.evicted = append(h.evicted, evictedEntry{h.oldest, slot.topic})
		if slot.key != "" {
			h.forget(slot)
		}
	}
	*slot = historyEntry{}
	h.oldest++
}

// skipTo makes id, which must not be below h.next, the next id: the ids in
// between have no message, and a resume across them loses nothing. The
// oldest ids are evicted as far as needed for the retained range, id
// included, to fit the ring. Before the first message, though, the history
// starts at id instead: the ids below it were never seen, not seen empty
// (a NATS consumer started at a sequence the stream has let go of since
// delivers its first message above it), and a resume from one of them
// resets. It returns the id and topic entry of each message evicted, in a
// slice valid until the next call.
func (h *history) skipTo(id uint64) []evictedEntry {
	h.resetEvicted()
	if h.next == h.first {
		h.first, h.oldest, h.next = id, id, id
		return h.evicted
	}
	n := uint64(len(h.ring))
	for h.oldest < h.next && id-h.oldest >= n {
		h.evictOldest()
	}
	if h.oldest == h.next {
		// Nothing retained: the skipped ids that fit the ring are known
		// to have no message.
		h.oldest = max(h.next, id+1-min(id, n))
	}
	h.next = id
	return h.evicted
}

// loseTo makes id, which must not be below h.next, the next id, as skipTo
// does, when the ids in between are not known to have no message but were
// lost: it lets go of every retained message and starts the retained
// range at id, so that a resume from below id-1 is older than the history
// and resets. It returns the id and topic entry of each message evicted,
// in a slice valid until the next call.
func (h *history) loseTo(id uint64) []evictedEntry {
	h.resetEvicted()
	for h.oldest < h.next {
		h.evictOldest()
	}
	if h.next == h.first {
		h.first = id
	}
	h.oldest, h.next = id, id
	return h.evicted
}

// resumePoint parses lastEventID and reports whether every message after
// it is still retained. It returns the id to replay after, or a reason,
// meant for the client, why the broker cannot resume from it. The id
// before this boot's first one is the position of a subscription made
// before its first message: it resumes while nothing is evicted. An id
// below it is from before this boot (a restart): a reset, and also a
// replay (replay true) of every retained message, all of them after it,
// so a client reconnecting across a restart gets those published since.
func (h *history) resumePoint(lastEventID string) (after uint64, replay bool, reason string) {
	id, ok := ParseID(lastEventID)
	switch {
	case !ok:
		return 0, false, "the last event id is not an event id of this hub; events may have been missed"
	case id < h.start-1:
		return h.oldest - 1, true, fmt.Sprintf("last event id %d is from before the hub restarted; events may have been missed", id)
	case id >= h.next && h.next == h.first:
		return 0, false, fmt.Sprintf("last event id %d is unknown: no event has been published since the hub started", id)
	case id >= h.next:
		return 0, false, fmt.Sprintf("last event id %d is unknown: the newest event id is %d", id, h.next-1)
	case id+1 < h.oldest:
		return 0, false, fmt.Sprintf("last event id %d is older than the retained history (oldest id %d); events were missed", id, h.oldest)
	}
	return id, true, ""
}

// ParseID reads an event id as the brokers make them (a Message's, a
// Position): a decimal number in its one form, with no sign and no leading
// zero. It reports false for anything else. Ids are strings to clients:
// "0123" reads as the number 123, but no broker sent it, and it is not id
// 123 (as "04" is not line 4 of the ticker).
func ParseID(id string) (uint64, bool) {
	if len(id) > 1 && id[0] == '0' {
		return 0, false
	}
	n, err := strconv.ParseUint(id, 10, 64)
	return n, err == nil
}
