package stream

import (
	"fmt"
	"strconv"
	"testing"
)

// TestHistoryRing walks a ring of 3 whose first id is not a multiple of
// its size through filling, wrapping and resuming at every boundary.
func TestHistoryRing(t *testing.T) {
	h := newHistory(3, 7)
	if h.oldest() != 7 || h.since(6) != nil {
		t.Fatalf("empty history: oldest %d, since(6) %v", h.oldest(), h.since(6))
	}
	topic := newTopicEntry("t")
	for id := uint64(7); id <= 14; id++ {
		old := h.add(&Message{ID: id}, topic)
		if wantEvicted := id >= 10; (old.msg != nil) != wantEvicted {
			t.Fatalf("add(%d) evicted %v, want eviction %v", id, old.msg, wantEvicted)
		}
		if old.msg != nil && old.msg.ID != id-3 {
			t.Fatalf("add(%d) evicted id %d, want %d", id, old.msg.ID, id-3)
		}
	}
	if h.oldest() != 12 {
		t.Errorf("oldest = %d, want 12", h.oldest())
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
	} {
		after, reason := h.resumePoint(tt.last)
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
