package stream

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// patternsAndTopics returns every wildcard pattern of up to four segments
// over a, b, * and a final >, and every topic of up to five segments over
// a, b and c.
func patternsAndTopics() (patterns, topics []string) {
	var grow func(prefix string, n, most int, segs []string, add func(string))
	grow = func(prefix string, n, most int, segs []string, add func(string)) {
		for _, seg := range segs {
			s := seg
			if prefix != "" {
				s = prefix + "." + seg
			}
			add(s)
			if seg != ">" && n < most {
				grow(s, n+1, most, segs, add)
			}
		}
	}
	grow("", 1, 4, []string{"a", "b", "*", ">"}, func(p string) {
		if IsWildcard(p) {
			patterns = append(patterns, p)
		}
	})
	grow("", 1, 5, []string{"a", "b", "c"}, func(topic string) { topics = append(topics, topic) })
	return patterns, topics
}

// matchedPatterns returns the sorted patterns of x's groups matching topic.
func matchedPatterns(x *wildIndex, topic string) []string {
	var out []string
	for _, g := range x.match(topic, nil) {
		out = append(out, g.pattern)
	}
	slices.Sort(out)
	return out
}

// TestWildIndexAgreesWithMatch: with every pattern indexed, then as they
// are removed in a random order, then with every other one indexed again,
// then with none, the index finds on every topic exactly the patterns
// Match says match it, each once; it holds two nodes a pattern at most,
// and removing them all leaves no branch behind.
func TestWildIndexAgreesWithMatch(t *testing.T) {
	patterns, topics := patternsAndTopics()
	var x wildIndex
	groups := make(map[string]*group)
	for _, p := range patterns {
		groups[p] = &group{pattern: p}
		x.add(groups[p])
	}
	check := func(stage string, indexed map[string]*group) {
		t.Helper()
		for _, topic := range topics {
			checkMatches(t, &x, indexed, topic, stage)
		}
		if nodes := x.root.count() - 1; nodes > 2*len(indexed) {
			t.Fatalf("%s: %d nodes for %d patterns, want 2 a pattern at most", stage, nodes, len(indexed))
		}
	}
	check("all indexed", groups)
	rng := rand.New(rand.NewPCG(1, 2))
	order := slices.Clone(patterns)
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for i, p := range order {
		x.remove(groups[p])
		delete(groups, p)
		if i%16 == 0 {
			check(fmt.Sprintf("%d removed", i+1), groups)
		}
	}
	check("all removed", groups)
	for i, p := range order {
		if i%2 == 0 {
			groups[p] = &group{pattern: p}
			x.add(groups[p])
		}
	}
	check("half indexed again", groups)
	for p, g := range groups {
		x.remove(g)
		delete(groups, p)
	}
	check("none left", groups)
	if !x.root.empty() {
		t.Errorf("every pattern removed, the index still holds %+v", x.root)
	}
}

// count returns the nodes of n's tree, n included.
func (n *wildNode) count() int {
	c := 1
	for _, next := range n.next {
		c += next.count()
	}
	return c
}

// TestDeepPatternsTakeLittleMemory: a subscription to as many patterns of
// 255 bytes as hub.max_topics_per_subscription allows by default, of many
// segments each, holds less memory than its request's head may take
// (64 KiB). Indexed a node a segment, each held 1.1 MB.
func TestDeepPatternsTakeLittleMemory(t *testing.T) {
	const subs, perSub = 100, 32
	b := newTestMemory(t, MemoryOptions{})
	patterns := make([][]string, subs)
	for i := range patterns {
		for j := range perSub {
			p := fmt.Sprintf("demo.u%d-%d", i, j)
			p += strings.Repeat(".a", (MaxTopicLen-2-len(p))/2) + ".*"
			patterns[i] = append(patterns[i], p)
		}
	}
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	for _, p := range patterns {
		mustSubscribe(t, b, "", p...)
	}
	per := (int64(heap()) - int64(before)) / subs
	t.Logf("a subscription to %d patterns of %d bytes: %d bytes", perSub, len(patterns[0][0]), per)
	if per > 64<<10 {
		t.Errorf("a subscription to %d patterns of %d bytes takes %d bytes, want less than 64 KiB", perSub, len(patterns[0][0]), per)
	}
	want := patterns[7][3]
	if got := matchedPatterns(&b.wildIdx, strings.TrimSuffix(want, "*")+"x"); !slices.Equal(got, []string{want}) {
		t.Errorf("matches %v, want [%s]", got, want)
	}
}

func TestWildIndexMatchDoesNotAllocate(t *testing.T) {
	var x wildIndex
	for _, p := range []string{"a.*", "a.>", "*.b.c", ">", "a.b.*"} {
		x.add(&group{pattern: p})
	}
	dst := make([]*group, 0, 8)
	if n := testing.AllocsPerRun(100, func() { dst = x.match("a.b.c", dst[:0]) }); n != 0 {
		t.Errorf("match allocates %.0f times", n)
	}
	if len(dst) != 4 {
		t.Errorf("a.b.c matched %d patterns, want 4 (a.>, *.b.c, >, a.b.*)", len(dst))
	}
}

// TestTopicsCountsEachSubscriptionOnce: counting by sums, as Topics does
// while no subscription has several matching patterns, and by marks once
// one has, gives the same answer as counting by hand.
func TestTopicsCountsEachSubscriptionOnce(t *testing.T) {
	b := NewMemory(MemoryOptions{})
	defer b.Close()
	for _, topic := range []string{"x.a", "x.b", "y.a"} {
		if _, _, err := b.Publish(Publication{Topic: topic, Data: "d"}); err != nil {
			t.Fatal(err)
		}
	}
	subscribe := func(patterns ...string) {
		if _, err := b.Subscribe(patterns, ""); err != nil {
			t.Fatal(err)
		}
	}
	counts := func() string {
		var out []string
		for _, ti := range b.Topics() {
			out = append(out, fmt.Sprintf("%s=%d", ti.Topic, ti.Subscribers))
		}
		return strings.Join(out, " ")
	}
	subscribe("x.>")
	subscribe("*.a")
	subscribe("x.a")
	if got, want := counts(), "x.a=3 x.b=1 y.a=1"; got != want {
		t.Errorf("one pattern each: %s, want %s", got, want)
	}
	subscribe("x.>", "*.a", "x.a") // matches x.a three times: counts once
	subscribe("y.>", "x.b")
	if got, want := counts(), "x.a=4 x.b=3 y.a=3"; got != want {
		t.Errorf("with several patterns each: %s, want %s", got, want)
	}
}

// TestWildcardGroupsShrinkWithTheirPatterns opens as many subscriptions
// as a broker takes by default, each to a wildcard pattern of its own (one
// per user), and closes all but one: the map of wildcard groups and their
// index do not keep the memory they took for all of them.
func TestWildcardGroupsShrinkWithTheirPatterns(t *testing.T) {
	const patterns = DefaultMaxSubscribers // some 4 MB of maps
	b := newTestMemory(t, MemoryOptions{})
	subs := make([]Subscription, patterns)
	for i := range subs {
		subs[i] = mustSubscribe(t, b, "", "user."+strconv.Itoa(i)+".>")
	}
	for _, s := range subs[1:] {
		s.Close()
	}
	var with, without runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&with)
	b.mu.Lock()
	if len(b.wild) != 1 {
		b.mu.Unlock()
		t.Fatalf("%d wildcard groups, want 1", len(b.wild))
	}
	fresh, idx := make(map[string]*group, 1), wildIndex{}
	for p, g := range b.wild {
		fresh[p] = g
		idx.add(g)
	}
	b.wild, b.wildIdx = fresh, idx
	b.mu.Unlock()
	runtime.GC()
	runtime.ReadMemStats(&without)
	if got := int64(with.HeapAlloc) - int64(without.HeapAlloc); got > 64<<10 {
		t.Errorf("the wildcard groups of one pattern take %d bytes more than new ones, want at most 64 KiB", got)
	}
	if got := matchedPatterns(&b.wildIdx, "user.0.x"); !slices.Equal(got, []string{"user.0.>"}) {
		t.Errorf("user.0.x matches %v, want [user.0.>]", got)
	}
}

// TestWildIndexRandomChurn adds and removes random patterns of up to eight
// segments, as subscriptions come and go, and checks after each change
// that random topics match what Match says: the index's edges of several
// segments are split and joined again far deeper than patternsAndTopics
// reaches.
func TestWildIndexRandomChurn(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	segments := func(n int, from []string) string { return randomName(rng, n, from) }
	var x wildIndex
	indexed := make(map[string]*group)
	for step := range 1500 {
		p := segments(1+rng.IntN(8), []string{"a", "b", "*"})
		if rng.IntN(4) == 0 {
			p += ".>"
		}
		if g, ok := indexed[p]; ok {
			x.remove(g)
			delete(indexed, p)
		} else if IsWildcard(p) {
			indexed[p] = &group{pattern: p}
			x.add(indexed[p])
		}
		for range 8 {
			topic := segments(1+rng.IntN(9), []string{"a", "b"})
			checkMatches(t, &x, indexed, topic, fmt.Sprintf("step %d", step))
		}
		if nodes := x.root.count() - 1; nodes > 2*len(indexed) {
			t.Fatalf("step %d: %d nodes for %d patterns", step, nodes, len(indexed))
		}
	}
	for _, g := range indexed {
		x.remove(g)
	}
	if !x.root.empty() {
		t.Errorf("every pattern removed, the index still holds %+v", x.root)
	}
}

// checkMinimal fails t unless every node below n is keyed by its label's
// first segment and stands where a pattern ends or patterns part.
func (n *wildNode) checkMinimal(t *testing.T) {
	t.Helper()
	for k, c := range n.next {
		if c.label == "" || firstSegment(c.label) != k {
			t.Fatalf("label %q under key %q", c.label, k)
		}
		if c.end == nil && c.tail == nil && len(c.next) < 2 {
			t.Fatalf("node %q: no pattern ends there and %d below, want it joined to the one below", c.label, len(c.next))
		}
		c.checkMinimal(t)
	}
}

// TestWildIndexSegmentsOfSeveralBytes churns patterns whose segments are
// prefixes of one another (a, ab, abc), which single-letter segments do
// not try: an edge is split and joined at whole segments only, a topic
// segment that only starts like a literal does not match it, and the
// tree stays minimal after every change.
func TestWildIndexSegmentsOfSeveralBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	segments := func(n int, from []string) string { return randomName(rng, n, from) }
	var x wildIndex
	indexed := make(map[string]*group)
	for step := range 3000 {
		p := ">"
		if rng.IntN(10) > 0 {
			p = segments(1+rng.IntN(5), []string{"a", "ab", "abc", "b", "ba", "*"})
			if rng.IntN(3) == 0 {
				p += ".>"
			}
		}
		if g, ok := indexed[p]; ok {
			x.remove(g)
			delete(indexed, p)
		} else {
			indexed[p] = &group{pattern: p}
			x.add(indexed[p])
		}
		x.root.checkMinimal(t)
		for range 8 {
			topic := segments(1+rng.IntN(6), []string{"a", "ab", "abc", "abcd", "b", "ba", "bb"})
			checkMatches(t, &x, indexed, topic, fmt.Sprintf("step %d", step))
		}
	}
	for _, g := range indexed {
		x.remove(g)
		x.root.checkMinimal(t)
	}
	if !x.root.empty() {
		t.Errorf("every pattern removed, the index still holds %+v", x.root)
	}
}

// checkMatches fails the test when topic's patterns in x are not those of
// indexed that Match says match it; stage names the moment.
func checkMatches(t *testing.T, x *wildIndex, indexed map[string]*group, topic, stage string) {
	t.Helper()
	var want []string
	for p := range indexed {
		if Match(p, topic) {
			want = append(want, p)
		}
	}
	slices.Sort(want)
	if got := matchedPatterns(x, topic); !slices.Equal(got, want) {
		t.Fatalf("%s: %s matches %v, want %v", stage, topic, got, want)
	}
}

// randomName joins n segments drawn by rng from from with dots: a random
// topic or pattern.
func randomName(rng *rand.Rand, n int, from []string) string {
	segs := make([]string, n)
	for i := range segs {
		segs[i] = from[rng.IntN(len(from))]
	}
	return strings.Join(segs, ".")
}
