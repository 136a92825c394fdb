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
	q := strconv.Quote(Prefix(s, MaxQuoted))
	return q[:len(q)-1] + `…" (` + strconv.Itoa(len(s)) + " bytes)"
}

// Prefix returns s cut to at most n bytes, at a rune boundary where s is
// UTF-8 there (else at n: what follows escapes the bytes one by one);
// s itself when it is that short.
func Prefix(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	if cut == 0 || n-cut >= utf8.UTFMax {
		cut = n
	}
	return s[:cut]
}
