package stream

import "strings"

// wildIndex holds the wildcard groups of a Memory broker as a tree of
// their patterns' segments, so that finding the patterns a topic matches
// walks only the branches of the topic's own segments, "*" and ">": a few
// map lookups per segment, however many patterns are open. Trying every
// pattern instead cost each publish about 1.3 ms with 20,000 of them, and
// GET /api/v1/topics held the broker's lock for seconds (topics × patterns).
//
// The tree is compressed: a node stands where patterns part or end, and
// the edge into it is the run of segments (literals and "*") between
// that point and the one above. A node per segment took about 270 bytes a
// segment (a map each), so that one subscription to 32 patterns of 255
// bytes (demo.u1.a.a.a...*) held 1.1 MB: each pattern adds two nodes at
// most now, whatever its length. It is not safe for concurrent use: the
// broker's lock guards it.
type wildIndex struct {
	root wildNode
}

// wildNode is a point of the patterns that share the segments above it.
type wildNode struct {
	// label is the segments, each a literal or "*", of the edge from the
	// node above to this one, joined by "."; "" for the root.
	label string
	next  map[string]*wildNode // the nodes below, by their label's first segment
	end   *group               // the group whose pattern ends here
	tail  *group               // the group whose pattern is this prefix and ">"
}

// cutTail returns pattern without its last segment ">", and whether it
// had one: ">" itself is "" and true.
func cutTail(pattern string) (body string, tail bool) {
	if pattern == ">" {
		return "", true
	}
	if body, ok := strings.CutSuffix(pattern, ".>"); ok {
		return body, true
	}
	return pattern, false
}

// firstSegment returns the first segment of s.
func firstSegment(s string) string {
	seg, _, _ := strings.Cut(s, ".")
	return seg
}

// commonSegments returns the length in bytes of the longest prefix of
// whole segments that a and b share.
func commonSegments(a, b string) int {
	k := 0
	for i := 0; ; i++ {
		aEnd, bEnd := i == len(a) || a[i] == '.', i == len(b) || b[i] == '.'
		switch {
		case aEnd && bEnd:
			k = i
			if i == len(a) || i == len(b) {
				return k
			}
		case aEnd || bEnd || a[i] != b[i]:
			return k
		}
	}
}

// add indexes g by its pattern, a valid wildcard pattern that is not yet
// indexed.
func (x *wildIndex) add(g *group) {
	body, tail := cutTail(g.pattern)
	n := &x.root
	for body != "" {
		seg := firstSegment(body)
		c := n.next[seg]
		if c == nil {
			if n.next == nil {
				n.next = make(map[string]*wildNode)
			}
			c = &wildNode{label: body}
			n.next[seg] = c
			n = c
			break
		}
		k := commonSegments(c.label, body)
		if k < len(c.label) {
			// The pattern parts from c's edge within it: a node where
			// it does, above c.
			mid := &wildNode{label: c.label[:k], next: make(map[string]*wildNode, 2)}
			c.label = c.label[k+1:]
			mid.next[firstSegment(c.label)] = c
			n.next[seg] = mid
			c = mid
		}
		n = c
		if k == len(body) {
			body = ""
		} else {
			body = body[k+1:]
		}
	}
	if tail {
		n.tail = g
	} else {
		n.end = g
	}
}

// remove forgets g, indexed by add, and the nodes left empty.
func (x *wildIndex) remove(g *group) {
	body, tail := cutTail(g.pattern)
	x.root.remove(body, tail)
}

// remove forgets the group of body, below n (with ">" after it when tail
// is true), and tidies the node below n it went through.
func (n *wildNode) remove(body string, tail bool) {
	if body == "" {
		if tail {
			n.tail = nil
		} else {
			n.end = nil
		}
		return
	}
	seg := firstSegment(body)
	c := n.next[seg]
	if c == nil || !strings.HasPrefix(body, c.label) || len(body) > len(c.label) && body[len(c.label)] != '.' {
		return // not indexed
	}
	c.remove(strings.TrimPrefix(body[len(c.label):], "."), tail)
	if c.end != nil || c.tail != nil {
		return
	}
	switch len(c.next) {
	case 0:
		delete(n.next, seg)
	case 1:
		// No pattern parts or ends at c any more: its edge and its one
		// child's are one.
		for _, only := range c.next {
			only.label = c.label + "." + only.label
			n.next[seg] = only
		}
	}
}

func (n *wildNode) empty() bool {
	return n.end == nil && n.tail == nil && len(n.next) == 0
}

// follow matches the segments of label, each a literal or "*", against
// the first ones of topic. It returns what is left of topic after them,
// whether they matched, and whether any segment is left.
func follow(label, topic string) (rest string, ok, more bool) {
	rest, more = topic, true
	for l, lmore := label, true; lmore; {
		if !more {
			return "", false, false // topic is shorter than label
		}
		var ls, ts string
		ls, l, lmore = strings.Cut(l, ".")
		ts, rest, more = strings.Cut(rest, ".")
		if ls != "*" && ls != ts {
			return "", false, false
		}
	}
	return rest, true, more
}

// match appends to dst the groups whose pattern matches topic, a valid
// topic, each once, and returns dst. It does not allocate beyond dst.
func (x *wildIndex) match(topic string, dst []*group) []*group {
	return x.root.match(topic, dst)
}

func (n *wildNode) match(topic string, dst []*group) []*group {
	if n.tail != nil { // ">" takes the one or more segments left
		dst = append(dst, n.tail)
	}
	if len(n.next) == 0 {
		return dst
	}
	// A topic has no "*" segment, so the two branches differ.
	for _, c := range [2]*wildNode{n.next[firstSegment(topic)], n.next["*"]} {
		if c == nil {
			continue
		}
		switch rest, ok, more := follow(c.label, topic); {
		case !ok:
		case !more:
			if c.end != nil {
				dst = append(dst, c.end)
			}
		default:
			dst = c.match(rest, dst)
		}
	}
	return dst
}
