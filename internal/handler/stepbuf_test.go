package handler

import "testing"

func TestLenderLendsEmptySlicesAndKeepsNothingAlive(t *testing.T) {
	l := lender[*int]{size: 4, max: 16}
	b := l.get()
	if len(*b) != 0 || cap(*b) != 4 {
		t.Fatalf("new slice: len %d cap %d, want 0 and 4", len(*b), cap(*b))
	}
	v := 1
	*b = append(*b, &v, &v)
	full := (*b)[:2]
	l.put(b)
	if len(*b) != 0 {
		t.Errorf("a returned slice has len %d, want 0", len(*b))
	}
	if full[0] != nil || full[1] != nil {
		t.Error("a returned slice still points to its elements")
	}
}

func TestLenderLetsLargeSlicesGo(t *testing.T) {
	l := lender[byte]{size: 8, max: 16}
	big := make([]byte, 0, 17)
	l.put(&big)
	// sync.Pool may drop anything, so only a slice that comes back proves
	// something: it must not be the large one.
	for range 10 {
		if b := l.get(); cap(*b) > 16 {
			t.Fatalf("got back a slice of cap %d, beyond max 16", cap(*b))
		}
	}
}
