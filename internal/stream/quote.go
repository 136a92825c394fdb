package stream

import (
	"strconv"
	"unicode/utf8"
)

// MaxQuoted is the most bytes of a client's input that an error message
// or a reset event quotes: a 10 KB topic or a 500 KB Last-Event-ID is not
// sent back whole.
const MaxQuoted = 64

// Quote quotes s for a message to the client that sent it, as %q does,
// keeping at most MaxQuoted bytes of it. A longer s is cut at a rune
// boundary, so the quote stays valid UTF-8, and the cut is marked with
// "…" inside the quotes and the whole length after them:
// "aaaa…" (10240 bytes). It is safe for concurrent use.
func Quote(s string) string {
	if len(s) <= MaxQuoted {
		return strconv.Quote(s)
	}
	n := MaxQuoted
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	if n == 0 || MaxQuoted-n >= utf8.UTFMax {
		n = MaxQuoted // not UTF-8 there: %q escapes the bytes one by one
	}
	q := strconv.Quote(s[:n])
	return q[:len(q)-1] + `…" (` + strconv.Itoa(len(s)) + " bytes)"
}
