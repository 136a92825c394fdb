package stream

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// Idempotency keys: a publish that carries one (Publication.Key) and
// repeats a key of its topic within IdempotencyWindow is not stored again.
// The same event is answered with the first one's Message, marked
// replayed; another event is refused with ErrKeyReused. So a client that
// retries a publish whose answer it lost (a timeout, a 503 or 504 though
// the event was stored) does not store it twice. The HTTP side is the
// Idempotency-Key header (IETF draft "The Idempotency-Key HTTP Header
// Field").
const (
	// IdempotencyWindow is how long a broker remembers a key: JetStream's
	// default duplicate window, which the NATS broker's stream keeps. The
	// memory broker also forgets a key once its event has left the
	// history.
	IdempotencyWindow = 2 * time.Minute
	// MaxIdempotencyKeyLen is the longest key, in bytes.
	MaxIdempotencyKeyLen = 128
)

var (
	// ErrInvalidIdempotencyKey reports a key that is empty, longer than
	// MaxIdempotencyKeyLen or has a byte outside visible ASCII.
	ErrInvalidIdempotencyKey = errors.New("invalid Idempotency-Key")
	// ErrKeyReused refuses a publish whose key its topic saw within the
	// window with another event: nothing was stored.
	ErrKeyReused = errors.New("a new event needs a new key")
)

// ValidateIdempotencyKey checks a publish's key: 1 to MaxIdempotencyKeyLen
// bytes of visible ASCII (0x21-0x7E), so that it fits a header of every
// protocol it travels in. It is safe for concurrent use.
func ValidateIdempotencyKey(key string) error {
	const rule = "must be 1 to 128 bytes of visible ASCII (0x21-0x7E)"
	switch {
	case key == "":
		return fmt.Errorf("%w: %s, not empty", ErrInvalidIdempotencyKey, rule)
	case len(key) > MaxIdempotencyKeyLen:
		return fmt.Errorf("%w: %s, not %d bytes", ErrInvalidIdempotencyKey, rule, len(key))
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("%w: %s: byte %d is 0x%02X", ErrInvalidIdempotencyKey, rule, i, c)
		}
	}
	return nil
}

// KeyReused returns the error that refuses a publish to topic repeating
// key with another event: it wraps ErrKeyReused.
func KeyReused(topic, key string) error {
	return fmt.Errorf("Idempotency-Key %s was used for a different event on topic %s within the last %v: nothing was stored: %w",
		Quote(key), Quote(topic), IdempotencyWindow, ErrKeyReused)
}

// sameEvent reports whether msg is the event of eventType and data: its
// frame is the one they encode with msg's id. It allocates only when the
// frame does not fit buf's capacity.
func sameEvent(msg *Message, eventType, data string, buf []byte) bool {
	frame, err := (&Event{ID: msg.id, Type: eventType, Data: data}).AppendTo(buf[:0])
	return err == nil && bytes.Equal(frame, msg.Frame)
}

// keyIndex maps the idempotency keys of the history's retained messages
// to them. A key is scoped to its topic. The history's owner guards it
// with its mutex; it is allocated at the first key.
type keyIndex map[topicKey]keyedMessage

// topicKey is a key within its topic.
type topicKey struct{ topic, key string }

// keyedMessage is the message a key was first published with, and when.
type keyedMessage struct {
	id uint64
	at time.Time
}

// keyOverhead is what the history charges for a key beside its bytes:
// its index entry, a topicKey and a keyedMessage (32 + 32 bytes), in a
// map that takes 105-150 bytes an entry (Go 1.26, 1,000 to 12,000
// entries).
const keyOverhead = 128

// lookup returns the message key was first published with on topic, while
// it is retained and younger than IdempotencyWindow at now, else nil.
func (h *history) lookup(topic, key string, now time.Time) *Message {
	k, ok := h.keys[topicKey{topic, key}]
	if !ok || now.Sub(k.at) >= IdempotencyWindow {
		return nil
	}
	// Retained: evictOldest drops the key with its message.
	if m := h.ring[k.id%uint64(len(h.ring))].msg; m != nil && m.ID == k.id {
		return m
	}
	return nil
}

// forget drops e's key from the index if it still names e's message: a
// key published again after the window names the newer one. The index is
// made again, smaller, once it holds half of its peak (see shrunk): the
// history's byte bound stops counting a key when its message is evicted,
// and a burst of keyed publishes would hold the memory of the map's peak
// (some 100 bytes a key) for the broker's life.
func (h *history) forget(e *historyEntry) {
	k := topicKey{e.topic.pattern, e.key}
	if h.keys[k].id == e.msg.ID {
		delete(h.keys, k)
		h.keys = shrunk(h.keys, &h.keysPeak)
	}
}
