package stream

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestQuote(t *testing.T) {
	a64 := strings.Repeat("a", MaxQuoted)
	tests := []struct {
		name, in, want string
	}{
		{"short", "orders.eu", `"orders.eu"`},
		{"escaped as %q", "a\nb\x00", `"a\nb\x00"`},
		{"exactly the limit", a64, `"` + a64 + `"`},
		{"long", strings.Repeat("a", 10240), `"` + a64 + `…" (10240 bytes)`},
		// "é" is 2 bytes: the 64th byte would split it, so it is left out.
		{"cut before a split rune", strings.Repeat("a", MaxQuoted-1) + "éé", `"` + a64[1:] + `…" (67 bytes)`},
		{"invalid UTF-8", strings.Repeat("\xff", 100), `"` + strings.Repeat(`\xff`, MaxQuoted) + `…" (100 bytes)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Quote(tt.in)
			if got != tt.want {
				t.Errorf("Quote = %s, want %s", got, tt.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("Quote = %q: not valid UTF-8", got)
			}
		})
	}
}

func FuzzQuote(f *testing.F) {
	f.Add("orders.eu")
	f.Add(strings.Repeat("é", 40))
	f.Add(strings.Repeat("a", 63) + "\xe2\x82")
	f.Fuzz(func(t *testing.T, s string) {
		q := Quote(s)
		if !utf8.ValidString(q) {
			t.Fatalf("Quote(%q) = %q: not valid UTF-8", s, q)
		}
		if len(s) <= MaxQuoted {
			return
		}
		if !strings.Contains(q, "…\" (") || len(q) > 4*MaxQuoted+32 {
			t.Fatalf("Quote(%d bytes) = %q: want at most %d bytes quoted and the cut marked", len(s), q, MaxQuoted)
		}
	})
}
