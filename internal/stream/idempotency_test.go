package stream

import (
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// publishKeyed publishes data to topic with key and fails the test on an
// error.
func publishKeyed(t testing.TB, b *Memory, topic, key, eventType, data string) (*Message, bool) {
	t.Helper()
	m, replayed, err := b.Publish(Publication{Topic: topic, Type: eventType, Data: data, Key: key})
	if err != nil {
		t.Fatalf("Publish(%q, key %q, %q, %q): %v", topic, key, eventType, data, err)
	}
	return m, replayed
}

func TestValidateIdempotencyKey(t *testing.T) {
	for _, tt := range []struct {
		key string
		ok  bool
	}{
		{"a", true},
		{"!~", true},
		{"4f1c2e7a-9b3d-4c55-8e21-0d6f7a9b1c3e", true},
		{strings.Repeat("k", MaxIdempotencyKeyLen), true},
		{"", false},
		{strings.Repeat("k", MaxIdempotencyKeyLen+1), false},
		{"a b", false},
		{"a\tb", false},
		{"a\x00", false},
		{"a\x7f", false},
		{"clé", false},
	} {
		err := ValidateIdempotencyKey(tt.key)
		if (err == nil) != tt.ok || err != nil && !errors.Is(err, ErrInvalidIdempotencyKey) {
			t.Errorf("ValidateIdempotencyKey(%q) = %v, want ok %v", tt.key, err, tt.ok)
		}
	}
}

// A repeat of a topic's key with the same event stores nothing and is
// answered with the first event; with another event it is refused. A key
// is its topic's: the same key on another topic is another.
func TestPublishKeyRepeats(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{})
	s := mustSubscribe(t, b, "", ">")
	first, replayed := publishKeyed(t, b, "a", "k1", "e", "one")
	if replayed {
		t.Fatal("the first publish of a key is replayed")
	}
	again, replayed := publishKeyed(t, b, "a", "k1", "e", "one")
	if !replayed || again != first {
		t.Fatalf("repeat: %v replayed %v, want event %d replayed", again.ID, replayed, first.ID)
	}
	for _, other := range []Publication{
		{Topic: "a", Type: "e", Data: "two", Key: "k1"},
		{Topic: "a", Type: "f", Data: "one", Key: "k1"},
		{Topic: "a", Data: "one", Key: "k1"},
	} {
		m, replayed, err := b.Publish(other)
		if !errors.Is(err, ErrKeyReused) || m != nil || replayed {
			t.Errorf("%+v: %v, replayed %v, %v; want ErrKeyReused", other, m, replayed, err)
		} else if !strings.Contains(err.Error(), `Idempotency-Key "k1" was used for a different event on topic "a"`) {
			t.Errorf("ErrKeyReused says %q", err)
		}
	}
	// No type and "message" are the one type to an EventSource, but not
	// the same frame: the README says they make another event.
	if _, _, err := b.Publish(Publication{Topic: "c", Data: "one", Key: "k2"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Publish(Publication{Topic: "c", Type: "message", Data: "one", Key: "k2"}); !errors.Is(err, ErrKeyReused) {
		t.Errorf(`"message" after no type with one key: %v, want ErrKeyReused`, err)
	}
	onB, replayed := publishKeyed(t, b, "b", "k1", "e", "one")
	if replayed || onB.ID != first.ID+2 {
		t.Errorf("key k1 on topic b: event %d replayed %v, want a new event", onB.ID, replayed)
	}
	plain := mustPublish(t, b, "a", "e", "one")
	if got := queued(s); len(got) != 4 || got[0] != first.ID || got[3] != plain.ID {
		t.Errorf("the subscriber got %v, want %d, c's, %d and %d once each", got, first.ID, onB.ID, plain.ID)
	}
	if got := b.Stats().Published; got != 4 {
		t.Errorf("Published = %d, want 4", got)
	}
}

// A key is remembered for IdempotencyWindow after its first publish: a
// repeat after that is a new event, and the key then names the new one,
// even once the older event leaves the history.
func TestPublishKeyWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newTestMemory(t, MemoryOptions{HistorySize: 3})
		first, _ := publishKeyed(t, b, "a", "k", "", "x")
		time.Sleep(IdempotencyWindow - time.Nanosecond)
		if m, replayed := publishKeyed(t, b, "a", "k", "", "x"); !replayed || m != first {
			t.Fatalf("a repeat just within the window: event %d replayed %v, want %d replayed", m.ID, replayed, first.ID)
		}
		time.Sleep(time.Nanosecond)
		second, replayed := publishKeyed(t, b, "a", "k", "", "x")
		if replayed || second == first {
			t.Fatalf("a repeat at the window's end: event %d replayed %v, want a new event", second.ID, replayed)
		}
		mustPublish(t, b, "a", "", "y")
		mustPublish(t, b, "a", "", "z") // evicts first
		if b.Retained(first.ID) != nil {
			t.Fatal("the first event is still retained")
		}
		if m, replayed := publishKeyed(t, b, "a", "k", "", "x"); !replayed || m != second {
			t.Fatalf("after the first event left the history: event %d replayed %v, want %d replayed", m.ID, replayed, second.ID)
		}
	})
}

// The memory broker forgets a key once its event has left the history, by
// count or by bytes: its keys take no more room than the history allows.
func TestPublishKeyForgottenWithItsEvent(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{HistorySize: 2})
	first, _ := publishKeyed(t, b, "a", "k", "", "x")
	second, _ := publishKeyed(t, b, "a", "k2", "", "y")
	want := retainedBytes(first) + len("k") + keyOverhead + retainedBytes(second) + len("k2") + keyOverhead
	if got := b.Stats().HistoryBytes; got != int64(want) {
		t.Errorf("HistoryBytes = %d, want %d: the two events and their keys", got, want)
	}
	mustPublish(t, b, "a", "", "z") // evicts first
	if len(b.hist.keys) != 1 {
		t.Errorf("%d keys indexed, want the retained one", len(b.hist.keys))
	}
	if m, replayed := publishKeyed(t, b, "a", "k", "", "x"); replayed || m.ID == first.ID {
		t.Fatalf("a repeat of an evicted event's key: event %d replayed %v, want a new event", m.ID, replayed)
	}
	for range 2 {
		mustPublish(t, b, "a", "", "z")
	}
	if len(b.hist.keys) != 0 {
		t.Errorf("%d keys indexed, want none: no event with a key is retained", len(b.hist.keys))
	}

	small := newTestMemory(t, MemoryOptions{HistoryMaxBytes: 1})
	publishKeyed(t, small, "a", "k", "", "x")
	mustPublish(t, small, "a", "", "y") // the newest alone stays
	if m, replayed := publishKeyed(t, small, "a", "k", "", "x"); replayed {
		t.Fatalf("a repeat of an event evicted by bytes: event %d replayed", m.ID)
	}
}

// indexBytes returns what b's key index takes on the heap: the heap with
// it, less the heap without it. It ends the index.
func indexBytes(b *Memory) int64 {
	var with, without runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&with)
	b.mu.Lock()
	b.hist.keys = nil
	b.mu.Unlock()
	runtime.GC()
	runtime.ReadMemStats(&without)
	return int64(with.HeapAlloc) - int64(without.HeapAlloc)
}

// A burst of keyed publishes does not leave the key index at its size for
// good once the history has let go of their events: the index shrinks
// with the keys it holds, and goes when none is left.
func TestKeyIndexShrinksWithItsKeys(t *testing.T) {
	const keyed = 100000 // an index of some 10 MB
	for _, left := range []int{0, 10} {
		b := newTestMemory(t, MemoryOptions{HistorySize: keyed})
		for i := range keyed {
			publishKeyed(t, b, "a", "k"+strconv.Itoa(i), "", "x")
		}
		for range keyed - left { // evicts all but the last left keyed events
			mustPublish(t, b, "a", "", "x")
		}
		if got := len(b.hist.keys); got != left {
			t.Fatalf("%d keys indexed, want %d", got, left)
		}
		if got := indexBytes(b); got > 64<<10 {
			t.Errorf("with %d keys left of %d: the index takes %d bytes, want at most 64 KiB", left, keyed, got)
		}
	}
}

// Publishes with one key at once store one event, and every one of them
// is answered with it.
func TestPublishKeyConcurrent(t *testing.T) {
	const publishers = 16
	b := newTestMemory(t, MemoryOptions{})
	s := mustSubscribe(t, b, "", "a")
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ids      = map[uint64]int{}
		replayed int
	)
	start := make(chan struct{})
	for range publishers {
		wg.Go(func() {
			<-start
			m, r, err := b.Publish(Publication{Topic: "a", Data: "once", Key: "k"})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			ids[m.ID]++
			if r {
				replayed++
			}
		})
	}
	close(start)
	wg.Wait()
	if len(ids) != 1 || replayed != publishers-1 {
		t.Errorf("ids %v, %d replayed; want one id, all but one replayed", ids, replayed)
	}
	if got := queued(s); len(got) != 1 || b.Stats().Published != 1 {
		t.Errorf("the subscriber got %v, %d published; want one event", got, b.Stats().Published)
	}
}

// A publish without a key allocates what it did before keys: its frame,
// its message and its id string.
func TestPublishWithoutKeyAllocatesTheMessageOnly(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{HistorySize: 8, FirstID: 1e15})
	p := Publication{Topic: "a", Data: "x"}
	if n := testing.AllocsPerRun(100, func() {
		if _, _, err := b.Publish(p); err != nil {
			t.Fatal(err)
		}
	}); n != 3 {
		t.Errorf("%v allocations per publish, want 3: the frame, the message and its id", n)
	}
}
