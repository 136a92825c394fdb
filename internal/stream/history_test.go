package stream

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// TestHistoryRing walks a ring of 3 whose first id is not a multiple of
// its size through filling, wrapping and resuming at every boundary.
func TestHistoryRing(t *testing.T) {
	h := newHistory(3, 1<<20, 7)
	if h.oldest != 7 || h.since(6) != nil {
		t.Fatalf("empty history: oldest %d, since(6) %v", h.oldest, h.since(6))
	}
	topics := map[uint64]*topicEntry{}
	for id := uint64(7); id <= 14; id++ {
		topics[id] = newTopicEntry(strconv.FormatUint(id, 10))
		evicted := h.add(&Message{ID: id}, topics[id], "", time.Time{})
		if wantEvicted := id >= 10; (len(evicted) == 1) != wantEvicted || len(evicted) > 1 {
			t.Fatalf("add(%d) evicted %d entries, want eviction %v", id, len(evicted), wantEvicted)
		}
		if len(evicted) == 1 && (evicted[0].topic != topics[id-3] || evicted[0].id != id-3) {
			t.Fatalf("add(%d) evicted id %d, the entry of %s, want %d", id, evicted[0].id, evicted[0].topic.pattern, id-3)
		}
	}
	if h.oldest != 12 {
		t.Errorf("oldest = %d, want 12", h.oldest)
	}
	for _, tt := range []struct {
		last string
		ok   bool
		want string
	}{
		{"6", false, ""},
		{"10", false, ""},
		{"11", true, "[12 13 14]"},
		{"12", true, "[13 14]"},
		{"14", true, "[]"},
		{"15", false, ""},
		{"", false, ""},
		// Not an id the hub sent, though it reads as 12's number.
		{"012", false, ""},
		{"+12", false, ""},
	} {
		after, _, reason := h.resumePoint(tt.last)
		if (reason == "") != tt.ok {
			t.Errorf("resumePoint(%q) reason %q, want ok=%v", tt.last, reason, tt.ok)
			continue
		}
		if !tt.ok {
			continue
		}
		var got []uint64
		for _, m := range h.since(after) {
			got = append(got, m.ID)
		}
		if fmt.Sprint(got) != tt.want && !(got == nil && tt.want == "[]") {
			t.Errorf("since(%s) = %v, want %s", tt.last, got, tt.want)
		}
		if strconv.FormatUint(after, 10) != tt.last {
			t.Errorf("resumePoint(%q) = %d", tt.last, after)
		}
	}
}

// frameMessage returns a message whose retainedBytes is size, for a size of
// at least messageOverhead and at most 32 KiB (no allocator rounding).
func frameMessage(id uint64, size int) *Message {
	return &Message{ID: id, Frame: make([]byte, size-messageOverhead)}
}

// TestHistoryByteCap fills a history of 6 slots and 1000 bytes with
// messages of known size: the oldest go first when the bytes run out, the
// count still bounds small messages, the newest stays even alone above the
// cap, and every evicted slot is emptied.
func TestHistoryByteCap(t *testing.T) {
	h := newHistory(6, 1000, 1)
	topic := newTopicEntry("t")
	steps := []struct {
		size       int
		evicted    int
		oldest     uint64
		wantBytes  int
		wantReplay string // since(oldest-1)
	}{
		{300, 0, 1, 300, "[1]"},
		{300, 0, 1, 600, "[1 2]"},
		{300, 0, 1, 900, "[1 2 3]"},
		{300, 1, 2, 900, "[2 3 4]"}, // bytes: #1 goes
		{700, 2, 4, 1000, "[4 5]"},  // bytes: #2 and #3 go; exactly at the cap stays
		{100, 1, 5, 800, "[5 6]"},   // bytes: #4 goes
		{100, 0, 5, 900, "[5 6 7]"},
		{2000, 3, 8, 2000, "[8]"}, // alone above the cap: kept, all others go
		{64, 1, 9, 64, "[9]"},     // the big one goes
		{64, 0, 9, 2 * 64, "[9 10]"},
		{64, 0, 9, 3 * 64, "[9 10 11]"},
		{64, 0, 9, 4 * 64, "[9 10 11 12]"},
		{64, 0, 9, 5 * 64, "[9 10 11 12 13]"},
		{64, 0, 9, 6 * 64, "[9 10 11 12 13 14]"},
		{64, 1, 10, 6 * 64, "[10 11 12 13 14 15]"}, // count, not bytes: #9 goes
	}
	for i, st := range steps {
		id := uint64(i + 1)
		evicted := h.add(frameMessage(id, st.size), topic, "", time.Time{})
		if len(evicted) != st.evicted || h.oldest != st.oldest || h.bytes != st.wantBytes {
			t.Fatalf("add(%d, %d bytes): evicted %d, oldest %d, bytes %d; want %d, %d, %d",
				id, st.size, len(evicted), h.oldest, h.bytes, st.evicted, st.oldest, st.wantBytes)
		}
		if got := fmt.Sprint(ids(h.since(h.oldest - 1))); got != st.wantReplay {
			t.Fatalf("after add(%d): retained %s, want %s", id, got, st.wantReplay)
		}
		for slot, e := range h.ring {
			retained := false
			for r := h.oldest; r < h.next; r++ {
				retained = retained || r%uint64(len(h.ring)) == uint64(slot)
			}
			if (e.msg != nil) != retained {
				t.Fatalf("after add(%d): slot %d holds %v, want retained=%v", id, slot, e.msg, retained)
			}
		}
	}
	for _, tt := range []struct{ last, want string }{
		{"8", "reset"},               // #9 is gone
		{"9", "[10 11 12 13 14 15]"}, // #9 is gone, but nothing after it is
		{"10", "[11 12 13 14 15]"},   // the oldest retained
	} {
		after, _, reason := h.resumePoint(tt.last)
		got := fmt.Sprint(ids(h.since(after)))
		if reason != "" {
			got = "reset"
		}
		if got != tt.want {
			t.Errorf("resume from %s: %s (%q), want %s", tt.last, got, reason, tt.want)
		}
	}
}

// TestHistoryByteCapOneByteShort: with a cap one byte short of three
// messages, the third takes the history a byte over it, and the oldest
// goes.
func TestHistoryByteCapOneByteShort(t *testing.T) {
	h := newHistory(6, 3*300-1, 1)
	topic := newTopicEntry("t")
	for i, wantEvicted := range []int{0, 0, 1} {
		id := uint64(i + 1)
		if evicted := h.add(frameMessage(id, 300), topic, "", time.Time{}); len(evicted) != wantEvicted {
			t.Fatalf("add(%d): evicted %d, want %d", id, len(evicted), wantEvicted)
		}
	}
	if got := fmt.Sprint(ids(h.since(h.oldest - 1))); got != "[2 3]" || h.bytes != 600 {
		t.Errorf("retained %s in %d bytes, want [2 3] in 600", got, h.bytes)
	}
}

func TestAllocBytes(t *testing.T) {
	for _, tt := range []struct{ n, want int }{
		{0, 0}, {100, 100}, {32 << 10, 32 << 10}, {32<<10 + 1, 40 << 10}, {64 << 10, 64 << 10}, {65600, 72 << 10},
	} {
		if got := allocBytes(tt.n); got != tt.want {
			t.Errorf("allocBytes(%d) = %d, want %d", tt.n, got, tt.want)
		}
	}
}

// since returns the retained messages with an id above after, in id order:
// what Subscribe copied as the replay before Replay read it in pieces, the
// reference the tests compare Replay with. after must be a resume point
// returned by resumePoint.
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

// TestHistoryResumeAroundTheFirstEvent: the id before a boot's first, the
// position of a subscription made before anything was published, resumes
// with everything published since. An id below it is from before the
// boot (a restart): a reset, and a replay of everything retained, all of
// it after that id. Once the first event is evicted, the id before it is
// a reset with no replay, as any evicted id is.
func TestHistoryResumeAroundTheFirstEvent(t *testing.T) {
	h := newHistory(3, 1<<20, 7)
	resume := func(last string) (string, bool) {
		after, replay, reason := h.resumePoint(last)
		if !replay {
			return "none", reason != ""
		}
		return fmt.Sprint(ids(h.since(after))), reason != ""
	}
	for _, tt := range []struct {
		add         uint64 // added before the resumes, if not 0
		last        string
		replay      string
		wantReset   bool
		description string
	}{
		{0, "6", "[]", false, "before the first event, with nothing published"},
		{0, "5", "[]", true, "from before the boot, with nothing published"},
		{7, "6", "[7]", false, "before the first event"},
		{8, "5", "[7 8]", true, "from before the boot"},
		{9, "6", "[7 8 9]", false, "before the first event, the ring full"},
		{10, "6", "none", true, "before the first event, evicted"},
		{0, "5", "[8 9 10]", true, "from before the boot, the first event evicted"},
	} {
		if tt.add != 0 {
			h.add(&Message{ID: tt.add}, newTopicEntry("t"), "", time.Time{})
		}
		replay, reset := resume(tt.last)
		if replay != tt.replay || reset != tt.wantReset {
			t.Errorf("%s: resume from %s replays %s, reset %v; want %s, reset %v", tt.description, tt.last, replay, reset, tt.replay, tt.wantReset)
		}
	}
}
