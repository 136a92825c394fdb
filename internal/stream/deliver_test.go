package stream

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestDeliverKeepsTheGivenIDsAndSkipsGaps(t *testing.T) {
	b := NewMemory(MemoryOptions{HistorySize: 4, FirstID: 100})
	defer b.Close()
	live, err := b.Subscribe([]string{">"}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{100, 101, 103, 104} {
		if m, err := b.Deliver(id, "a", "", "x"); err != nil || m.ID != id || m.IDString() == "" {
			t.Fatalf("Deliver(%d) = %+v, %v", id, m, err)
		}
	}
	if _, err := b.Deliver(104, "a", "", "again"); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("a repeated id: %v, want ErrOutOfOrder", err)
	}
	got, _ := live.Take(nil, 0)
	if ids := idsOf(got); !slices.Equal(ids, []uint64{100, 101, 103, 104}) {
		t.Fatalf("live ids %v", ids)
	}
	// A resume across the skipped id 102 loses nothing: it had no event.
	s, err := b.Subscribe([]string{"a"}, "101")
	if err != nil || s.Reset() != "" {
		t.Fatalf("resume from 101: %v, reset %q", err, s.Reset())
	}
	if ids := idsOf(replayAll(s)); !slices.Equal(ids, []uint64{103, 104}) {
		t.Fatalf("replayed %v, want 103 104", ids)
	}
	// A gap wider than the ring forgets every retained event and topic.
	if _, err := b.Deliver(200, "b", "", "y"); err != nil {
		t.Fatal(err)
	}
	if topics := b.Topics(); len(topics) != 2 || topics[0].Topic != "a" || topics[0].LastEventID != "104" {
		t.Fatalf("topics %+v: a has a subscription, b the one event", topics)
	}
	s2, _ := b.Subscribe([]string{"x"}, "150")
	if s2.Reset() == "" {
		t.Fatal("resume from 150: retained history starts at 197, want a reset")
	}
	s3, _ := b.Subscribe([]string{">"}, "196")
	if ids := idsOf(replayAll(s3)); s3.Reset() != "" || !slices.Equal(ids, []uint64{200}) {
		t.Fatalf("resume from 196: %v, reset %q", ids, s3.Reset())
	}
}

func TestNewMessageValidatesAndEncodes(t *testing.T) {
	m, err := NewMessage(7, "a.b", "up", "1\n2")
	if err != nil || string(m.Frame) != "id: 7\nevent: up\ndata: 1\ndata: 2\n\n" || m.IDString() != "7" {
		t.Fatalf("NewMessage = %+v, %v", m, err)
	}
	if _, err := NewMessage(7, "a b", "", ""); !errors.Is(err, ErrInvalidTopic) {
		t.Fatalf("bad topic: %v", err)
	}
	if _, err := NewMessage(7, "a", "x\ny", ""); !errors.Is(err, ErrInvalidEventType) {
		t.Fatalf("bad event type: %v", err)
	}
}

func idsOf(msgs []*Message) []uint64 {
	var ids []uint64
	for _, m := range msgs {
		ids = append(ids, m.ID)
	}
	return ids
}

// Skipping ids evicts what no longer fits the ring and keeps the byte count
// of what stays exact, holes included.
func TestDeliverGapKeepsTheHistoryAccounts(t *testing.T) {
	b := NewMemory(MemoryOptions{HistorySize: 4, FirstID: 1})
	defer b.Close()
	for _, id := range []uint64{1, 2, 4, 7, 8} {
		if _, err := b.Deliver(id, "a", "", "x"); err != nil {
			t.Fatalf("Deliver(%d): %v", id, err)
		}
	}
	h := b.hist
	want := 0
	var kept []uint64
	for id := h.oldest; id < h.next; id++ {
		if m := h.ring[id%uint64(len(h.ring))].msg; m != nil {
			want += retainedBytes(m)
			kept = append(kept, m.ID)
		}
	}
	if h.oldest != 5 || !slices.Equal(kept, []uint64{7, 8}) || h.bytes != want {
		t.Fatalf("oldest %d, kept %v, bytes %d; want 5, [7 8], %d", h.oldest, kept, h.bytes, want)
	}
	if topics := b.Topics(); len(topics) != 1 || topics[0].LastEventID != "8" {
		t.Fatalf("topics %+v", topics)
	}
}

// Retained finds a delivered message by its id while the history keeps
// it, and nothing for an id skipped, evicted or not yet used.
func TestRetainedFindsWhatTheHistoryKeeps(t *testing.T) {
	b := NewMemory(MemoryOptions{HistorySize: 2, FirstID: 10})
	for _, id := range []uint64{10, 12, 13} {
		if _, err := b.Deliver(id, "a", "", "x"); err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range map[uint64]bool{10: false, 11: false, 12: true, 13: true, 14: false} {
		if m := b.Retained(id); (m != nil) != want || m != nil && m.ID != id {
			t.Errorf("Retained(%d) = %v, want found %v", id, m, want)
		}
	}
	b.Close()
	if m := b.Retained(13); m != nil {
		t.Errorf("Retained after Close = %v", m)
	}
}

// CloseWith ends the open subscriptions with its error, which tells them
// from a shutdown, and closes the broker as Close does.
func TestCloseWithEndsSubscriptionsWithItsError(t *testing.T) {
	b := NewMemory(MemoryOptions{})
	s, err := b.Subscribe([]string{"a"}, "")
	if err != nil {
		t.Fatal(err)
	}
	gone := errors.New("history ended")
	b.CloseWith(gone)
	b.Close() // no effect: the first one counts
	if _, open := s.Take(nil, 0); open || !errors.Is(s.Err(), gone) {
		t.Fatalf("after CloseWith: open %v, Err %v, want %v", open, s.Err(), gone)
	}
	if _, err := b.Subscribe([]string{"a"}, ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after CloseWith: %v, want ErrClosed", err)
	}
}

// Before its first event, a history that Deliver skips starts at the id
// delivered: the ids below were never seen, so a resume from one of them
// resets, with no replay, rather than claim they had no event. (The id
// just below the first delivered is a position after them: it resumes.
// An id from before FirstID resets too, with everything retained.)
func TestDeliverBeforeTheFirstEventStartsTheHistory(t *testing.T) {
	b := NewMemory(MemoryOptions{HistorySize: 8, FirstID: 100})
	defer b.Close()
	for _, id := range []uint64{104, 105} {
		if _, err := b.Deliver(id, "a", "", "x"); err != nil {
			t.Fatalf("Deliver(%d): %v", id, err)
		}
	}
	for _, tt := range []struct {
		last  string
		reset bool
		want  []uint64
	}{
		{"98", true, []uint64{104, 105}},
		{"99", true, nil},
		{"100", true, nil},
		{"102", true, nil},
		{"103", false, []uint64{104, 105}},
		{"104", false, []uint64{105}},
	} {
		s, _ := b.Subscribe([]string{"a"}, tt.last)
		if ids := idsOf(replayAll(s)); (s.Reset() != "") != tt.reset || !slices.Equal(ids, tt.want) {
			t.Errorf("resume from %s: replay %v, reset %q; want %v, reset %v", tt.last, ids, s.Reset(), tt.want, tt.reset)
		}
		s.Close()
	}
}

// Lose ends every subscription with the error given and lets the history
// go, so that a resume from before the lost ids resets, where one across
// skipped ids (Deliver) resumes; from just before the new id, and after
// it, resumes go on as before.
func TestLoseEndsSubscriptionsAndResumesAcrossIt(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{FirstID: 10})
	for _, id := range []uint64{10, 11} {
		if _, err := b.Deliver(id, "a", "", "kept"); err != nil {
			t.Fatal(err)
		}
	}
	exact := mustSubscribe(t, b, "", "a")
	wild := mustSubscribe(t, b, "", "a", ">")
	lost := errors.New("lost")
	if err := b.Lose(15, lost); err != nil {
		t.Fatal(err)
	}
	for _, s := range []Subscription{exact, wild} {
		if _, open := s.Take(nil, 0); open || !errors.Is(s.Err(), lost) {
			t.Errorf("after Lose: open %v, Err %v, want ended with %v", open, s.Err(), lost)
		}
	}
	if n := b.Stats().Subscribers; n != 0 {
		t.Errorf("%d subscribers after Lose, want 0", n)
	}
	if got := b.Topics(); len(got) != 0 {
		t.Errorf("topics %+v after Lose, want none", got)
	}
	if _, err := b.Deliver(15, "a", "", "after"); err != nil {
		t.Fatal(err)
	}
	if s := mustSubscribe(t, b, "11", "a"); s.Reset() == "" {
		t.Error("resume from 11, before the lost ids: no reset")
	}
	if s := mustSubscribe(t, b, "14", "a"); s.Reset() != "" {
		t.Errorf("resume from 14, just before the new id: reset %q", s.Reset())
	} else if got, _ := s.Replay(nil, 1<<20); fmt.Sprint(ids(got)) != "[15]" {
		t.Errorf("resume from 14 replays %v, want [15]", ids(got))
	}
	if err := b.Lose(15, lost); !errors.Is(err, ErrOutOfOrder) {
		t.Errorf("Lose of a used id: %v, want ErrOutOfOrder", err)
	}
}
