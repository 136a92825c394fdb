package stream

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateTopic(t *testing.T) {
	long := strings.Repeat("a", MaxTopicLen)
	tests := []struct {
		topic string
		ok    bool
	}{
		{"a", true},
		{"orders", true},
		{"orders.eu-west_1.Created", true},
		{"0.1.2", true},
		{long, true},
		{long + "a", false},
		{"", false},
		{".", false},
		{"a.", false},
		{".a", false},
		{"a..b", false},
		{"a b", false},
		{"a/b", false},
		{"a.*", false},
		{"a.>", false},
		{"*", false},
		{">", false},
		{"é", false},
		{"a\n", false},
		{"a\x00", false},
	}
	for _, tt := range tests {
		err := ValidateTopic(tt.topic)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateTopic(%q) = %v, want ok=%v", tt.topic, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("ValidateTopic(%q) = %v, want ErrInvalidTopic", tt.topic, err)
		}
	}
}

// TestValidateTopicNamesTheCharacter: the error names the character a
// topic may not hold as the client wrote it, not its first byte.
func TestValidateTopicNamesTheCharacter(t *testing.T) {
	for topic, want := range map[string]string{
		"a.é":    `character 'é' not allowed`,
		"a b":    `character ' ' not allowed`,
		"a.\xff": `byte 0xff not allowed`,
		"a\n":    `character '\n' not allowed`,
	} {
		err := ValidateTopic(topic)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateTopic(%q) = %v, want it to say %s", topic, err, want)
		}
	}
}

// TestValidatePatternNamesTheWildcardRule: a wildcard that is part of a
// segment is refused for what it is, not as a character patterns may not
// hold: they may, as a whole segment.
func TestValidatePatternNamesTheWildcardRule(t *testing.T) {
	for pattern, want := range map[string]string{
		"a.b*":  `"*" must be a whole segment`,
		"**":    `"*" must be a whole segment`,
		"*>":    `"*" must be a whole segment`,
		"a.>>":  `">" must be a whole segment, the last one`,
		"a>.b":  `">" must be a whole segment, the last one`,
		"a.>.b": `">" must be the last segment`,
		"a.b c": `character ' ' not allowed`,
		"a.*.é": `character 'é' not allowed`,
	} {
		err := ValidatePattern(pattern)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidatePattern(%q) = %v, want it to say %s", pattern, err, want)
		}
	}
	// A topic has no wildcard at all.
	if err := ValidateTopic("a.b*"); err == nil || !strings.Contains(err.Error(), `character '*' not allowed`) {
		t.Errorf("ValidateTopic(%q) = %v, want it to say character '*' not allowed", "a.b*", err)
	}
}

func TestValidatePattern(t *testing.T) {
	tests := []struct {
		pattern string
		ok      bool
	}{
		{"a", true},
		{"a.b", true},
		{"*", true},
		{">", true},
		{"a.*", true},
		{"*.b", true},
		{"a.*.c", true},
		{"a.>", true},
		{"*.>", true},
		{"*.*", true},
		{"", false},
		{"a.>.b", false},
		{">.a", false},
		{"a*", false},
		{"a.b*", false},
		{"a.>>", false},
		{"**", false},
		{"a..*", false},
		{"a.", false},
		{strings.Repeat("*.", 128), false},
	}
	for _, tt := range tests {
		err := ValidatePattern(tt.pattern)
		if (err == nil) != tt.ok {
			t.Errorf("ValidatePattern(%q) = %v, want ok=%v", tt.pattern, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidPattern) {
			t.Errorf("ValidatePattern(%q) = %v, want ErrInvalidPattern", tt.pattern, err)
		}
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, topic string
		want           bool
	}{
		{"a", "a", true},
		{"a", "b", false},
		{"a", "a.b", false},
		{"a.b", "a", false},
		{"a.b", "a.b", true},
		{"a.b", "a.bc", false},
		{"ab", "a.b", false},
		{"*", "a", true},
		{"*", "a.b", false},
		{"a.*", "a.b", true},
		{"a.*", "a", false},
		{"a.*", "a.b.c", false},
		{"a.*", "b.c", false},
		{"*.b", "a.b", true},
		{"*.b", "a.c", false},
		{"a.*.c", "a.b.c", true},
		{"a.*.c", "a.b.d", false},
		{"*.*", "a.b", true},
		{"*.*", "a", false},
		{">", "a", true},
		{">", "a.b.c", true},
		{"a.>", "a", false},
		{"a.>", "a.b", true},
		{"a.>", "a.b.c", true},
		{"a.>", "b.c", false},
		{"*.>", "a", false},
		{"*.>", "a.b", true},
		{"a.*.>", "a.b", false},
		{"a.*.>", "a.b.c.d", true},
		{"orders.*.created", "orders.eu.created", true},
		{"orders.*.created", "orders.eu.deleted", false},
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.topic); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.topic, got, tt.want)
		}
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		Match("orders.*.>", "orders.eu.created.today")
		Match("orders.eu.created", "orders.eu.created")
	})
	if allocs != 0 {
		t.Errorf("Match allocates %v times per run, want 0", allocs)
	}
}

func TestIsWildcard(t *testing.T) {
	tests := map[string]bool{"a": false, "a.b": false, "*": true, "a.*": true, "a.>": true, "a*": false}
	for p, want := range tests {
		if got := IsWildcard(p); got != want {
			t.Errorf("IsWildcard(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		pattern, sub string
		want         bool
	}{
		{"demo.>", "demo.chat", true},
		{"demo.>", "demo.a.b", true},
		{"demo.>", "demo.*", true},
		{"demo.>", "demo.*.x", true},
		{"demo.>", "demo.>", true},
		{"demo.>", "demo.a.>", true},
		{"demo.>", "demo.*.>", true},
		{"demo.>", "demo", false}, // "demo" itself is not under demo.>
		{"demo.>", ">", false},
		{"demo.>", "*", false},
		{"demo.>", "*.chat", false},
		{"demo.>", "*.>", false},
		{"demo.>", "orders.x", false},
		{"demo.>", "demos.chat", false},
		{"demo.>", "xdemo.chat", false},
		{"a.*", "a.b", true},
		{"a.*", "a.*", true},
		{"a.*", "a.>", false}, // a.> matches a.b.c
		{"a.*", "a.b.c", false},
		{"a.*", "a", false},
		{"*.b", "a.b", true},
		{"*.b", "*.b", true},
		{"*.b", "*.c", false},
		{"a.b", "a.b", true},
		{"a.b", "a.*", false},
		{">", "a", true},
		{">", "*.>", true},
		{">", ">", true},
		{"*.>", ">", false}, // > matches a one-segment topic
		{"*.>", "a.>", true},
		{"a.*.>", "a.b.c", true},
		{"a.*.>", "a.b", false},
		{"a.*.c", "a.*.c", true},
		{"a.*.c", "a.>", false},
	}
	for _, tt := range tests {
		if got := Covers(tt.pattern, tt.sub); got != tt.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", tt.pattern, tt.sub, got, tt.want)
		}
	}
}

// TestCoversAgreesWithMatch checks Covers against its definition, every
// topic sub matches is matched by pattern, for every pair of patterns of
// up to three segments over a, b, c, * and a final >, on every topic of up
// to four segments over a, b and c. That is enough: two patterns name at
// most two literals in one position, so a third stands for any other, and
// a topic that one pattern matches and the other does not stays so when
// cut to four segments.
func TestCoversAgreesWithMatch(t *testing.T) {
	var patterns, topics []string
	var grow func(prefix string, n int)
	grow = func(prefix string, n int) {
		for _, seg := range []string{"a", "b", "c", "*", ">"} {
			s := seg
			if prefix != "" {
				s = prefix + "." + seg
			}
			if seg != "*" && seg != ">" {
				topics = append(topics, s)
			}
			if n <= 3 {
				patterns = append(patterns, s)
			}
			if seg != ">" && n < 4 {
				grow(s, n+1)
			}
		}
	}
	grow("", 1)
	for _, p := range patterns {
		for _, sub := range patterns {
			want := true
			for _, topic := range topics {
				if Match(sub, topic) && !Match(p, topic) {
					want = false
					break
				}
			}
			if got := Covers(p, sub); got != want {
				t.Errorf("Covers(%q, %q) = %v, want %v", p, sub, got, want)
			}
		}
	}
}

// matchReference is Match written the obvious way, to check it against.
func matchReference(pattern, topic string) bool {
	ps, ts := strings.Split(pattern, "."), strings.Split(topic, ".")
	for i, p := range ps {
		if p == ">" && i == len(ps)-1 {
			return len(ts) > i
		}
		if i >= len(ts) || (p != "*" && p != ts[i]) {
			return false
		}
	}
	return len(ps) == len(ts)
}

func FuzzTopic(f *testing.F) {
	for _, s := range []string{"a", "a.b", "a.*", "a.>", ">", "*", "a..b", "", ".", "a.b.c", "x-y_z.0"} {
		f.Add(s, "a.b")
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, pattern, topic string) {
		topicErr := ValidateTopic(topic)
		patternErr := ValidatePattern(pattern)
		got := Match(pattern, topic)
		IsWildcard(pattern)
		if topicErr != nil {
			return
		}
		if err := ValidatePattern(topic); err != nil {
			t.Errorf("valid topic %q is not a valid pattern: %v", topic, err)
		}
		if !Match(topic, topic) {
			t.Errorf("topic %q does not match itself", topic)
		}
		if !Match(">", topic) {
			t.Errorf(`">" does not match topic %q`, topic)
		}
		if patternErr == nil {
			if want := matchReference(pattern, topic); got != want {
				t.Errorf("Match(%q, %q) = %v, reference says %v", pattern, topic, got, want)
			}
		}
	})
}
