package stream

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxTopicLen is the longest topic or subscription pattern, in bytes.
const MaxTopicLen = 255

// Errors returned by ValidateTopic and ValidatePattern, wrapped with the
// offending value (its first MaxQuoted bytes: see Quote).
var (
	// ErrInvalidTopic reports a topic that is empty, longer than
	// MaxTopicLen, has an empty segment or a byte outside [A-Za-z0-9_-].
	ErrInvalidTopic = errors.New("invalid topic")
	// ErrInvalidPattern reports a subscription pattern that is not a topic
	// in which whole segments may be "*", and the last one ">".
	ErrInvalidPattern = errors.New("invalid topic pattern")
)

// ValidateTopic reports whether topic is a valid topic to publish to:
// dot-separated segments of ASCII letters, digits, '_' and '-', at most
// MaxTopicLen bytes in all, no empty segment. It is safe for concurrent use.
func ValidateTopic(topic string) error {
	if err := validate(topic, false); err != "" {
		return fmt.Errorf("topic %s: %s: %w", Quote(topic), err, ErrInvalidTopic)
	}
	return nil
}

// ValidatePattern reports whether pattern is a valid subscription pattern:
// a topic in which any segment may be the wildcard "*" (exactly one
// segment) and the last segment may be ">" (one or more segments). Every
// valid topic is a valid pattern. It is safe for concurrent use.
func ValidatePattern(pattern string) error {
	if err := validate(pattern, true); err != "" {
		return fmt.Errorf("pattern %s: %s: %w", Quote(pattern), err, ErrInvalidPattern)
	}
	return nil
}

// validate checks s as a topic, or as a pattern when wildcards is true, and
// returns why it is invalid, or "" when it is valid.
func validate(s string, wildcards bool) string {
	switch {
	case s == "":
		return "empty"
	case len(s) > MaxTopicLen:
		return fmt.Sprintf("longer than %d bytes", MaxTopicLen)
	}
	for rest, more := s, true; more; {
		var seg string
		seg, rest, more = strings.Cut(rest, ".")
		switch {
		case seg == "":
			return "empty segment"
		case wildcards && seg == "*":
		case wildcards && seg == ">":
			if more {
				return `">" must be the last segment`
			}
		default:
			for i := 0; i < len(seg); i++ {
				switch c := seg[i]; {
				case isTopicByte(c):
				case wildcards && c == '*':
					return `"*" must be a whole segment`
				case wildcards && c == '>':
					return `">" must be a whole segment, the last one`
				default:
					return notAllowed(seg[i:])
				}
			}
		}
	}
	return ""
}

// notAllowed names the character s starts with, one a topic may not
// hold: the whole character when s starts with valid UTF-8 ('é', not
// its first byte), else the byte in hex.
func notAllowed(s string) string {
	r, size := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("byte %#02x not allowed", s[0])
	}
	return fmt.Sprintf("character %q not allowed", r)
}

// isTopicByte reports whether c may appear in a topic segment.
func isTopicByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// IsWildcard reports whether pattern holds a "*" or ">" segment, that is,
// whether it can match a topic other than itself.
func IsWildcard(pattern string) bool {
	for rest, more := pattern, true; more; {
		var seg string
		seg, rest, more = strings.Cut(rest, ".")
		if seg == "*" || seg == ">" {
			return true
		}
	}
	return false
}

// Match reports whether topic matches pattern: segment by segment, "*"
// matches any one segment and a final ">" matches one or more. Both are
// expected to be valid; for other input it returns some answer without
// panicking. It does not allocate and is safe for concurrent use.
func Match(pattern, topic string) bool {
	for {
		pseg, prest, pmore := strings.Cut(pattern, ".")
		if pseg == ">" && !pmore {
			return topic != ""
		}
		tseg, trest, tmore := strings.Cut(topic, ".")
		if pseg != tseg && (pseg != "*" || tseg == "") {
			return false
		}
		if !pmore || !tmore {
			return pmore == tmore
		}
		pattern, topic = prest, trest
	}
}

// Covers reports whether pattern matches every topic that sub matches, so
// that a subscription to sub can never see a topic outside pattern. Both
// are patterns (a topic is a pattern without wildcards). Segment by
// segment: a final ">" in pattern covers whatever of sub is left, one or
// more segments of any kind; a "*" covers one literal or "*" segment, but
// not ">", which may stand for several; a literal covers only itself. So
// "demo.>" covers "demo.chat", "demo.*" and "demo.a.>", but not "demo"
// (no segment after it), ">", "*.chat" or "*.>". Both are expected to be
// valid; for other input it returns some answer without panicking. It is
// safe for concurrent use.
func Covers(pattern, sub string) bool {
	for {
		pseg, prest, pmore := strings.Cut(pattern, ".")
		if pseg == ">" && !pmore {
			return sub != ""
		}
		sseg, srest, smore := strings.Cut(sub, ".")
		switch {
		case sseg == ">":
			return false // stands for one or more segments; only ">" covers it
		case pseg == "*":
		case pseg != sseg:
			return false
		}
		if !pmore || !smore {
			return pmore == smore
		}
		pattern, sub = prest, srest
	}
}
