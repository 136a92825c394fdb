package stream_test

import (
	"math"
	"regexp"
	"strconv"
	"testing"

	"github.com/ssehub/ssehub/internal/stream"
)

// canonicalID is an event id in its one spelling: decimal, no sign, no
// leading zero.
var canonicalID = regexp.MustCompile(`^(0|[1-9][0-9]*)$`)

// FuzzParseID checks that ParseID takes an id in its one spelling, within
// uint64, and nothing else, and that what it takes round-trips.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"0", "1", "123", "0123", "+1", "-0", " 1", "1 ", "1e3", "0x10", "18446744073709551615", "18446744073709551616", "", "١"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		n, ok := stream.ParseID(id)
		if ok != (canonicalID.MatchString(id) && len(id) <= 20 && (len(id) < 20 || id <= "18446744073709551615")) {
			t.Fatalf("ParseID(%q) = %d, %v", id, n, ok)
		}
		if ok && strconv.FormatUint(n, 10) != id {
			t.Fatalf("ParseID(%q) = %d, which is written %d", id, n, n)
		}
	})
}

// FuzzMemoryResume subscribes with a fuzzed last event id to a memory
// broker whose history has let its oldest events go: the subscription
// resumes, replaying exactly the retained events after the id, or starts
// with a reset (and a replay of every retained event for an id from
// before the broker's first). Never a panic, never an event twice.
func FuzzMemoryResume(f *testing.F) {
	const first = 1000
	for _, s := range []string{
		"", "999", "1000", "1003", "1005", "1006", "1007", "5", "0", "abc", "01003",
		"18446744073709551615", strconv.FormatUint(math.MaxUint64-1, 10),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, lastID string) {
		b := stream.NewMemory(stream.MemoryOptions{FirstID: first, HistorySize: 4})
		defer b.Close()
		for range 7 { // ids 1000 to 1006; 1003 to 1006 retained
			if _, _, err := b.Publish(stream.Publication{Topic: "t", Data: "x"}); err != nil {
				t.Fatal(err)
			}
		}
		sub, err := b.Subscribe([]string{">"}, lastID)
		if err != nil {
			t.Fatalf("Subscribe(%q): %v", lastID, err)
		}
		defer sub.Close()
		if _, ok := stream.ParseID(sub.Position()); !ok {
			t.Fatalf("position %q", sub.Position())
		}
		var replayed []uint64
		for done := false; !done; {
			var msgs []*stream.Message
			msgs, done = sub.Replay(nil, 1<<10)
			for _, m := range msgs {
				replayed = append(replayed, m.ID)
			}
		}
		id, ok := stream.ParseID(lastID)
		var want []uint64
		switch {
		case lastID == "":
			if sub.Reset() != "" {
				t.Fatalf("a live subscription reset: %s", sub.Reset())
			}
		case ok && id >= first+2 && id <= first+6: // the id before the oldest retained, or a retained one
			if sub.Reset() != "" {
				t.Fatalf("resume after %d reset: %s", id, sub.Reset())
			}
			for i := id + 1; i <= first+6; i++ {
				want = append(want, i)
			}
		case ok && id < first-1: // from before the broker started
			if sub.Reset() == "" {
				t.Fatalf("resume after %d, from before the first id %d: no reset", id, first)
			}
			want = []uint64{first + 3, first + 4, first + 5, first + 6}
		default:
			if sub.Reset() == "" {
				t.Fatalf("resume after %q: no reset", lastID)
			}
		}
		if len(replayed) != len(want) {
			t.Fatalf("last event id %q: replayed %v, want %v", lastID, replayed, want)
		}
		for i := range want {
			if replayed[i] != want[i] {
				t.Fatalf("last event id %q: replayed %v, want %v", lastID, replayed, want)
			}
		}
	})
}
