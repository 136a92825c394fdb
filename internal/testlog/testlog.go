// Package testlog is for tests only: a log sink that a server writes to
// from its goroutines while the test reads it.
package testlog

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer collects what is written to it. Its methods are safe for
// concurrent use; the zero value is ready.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Count returns how many times text occurs in what was written.
func (b *Buffer) Count(text string) int {
	return strings.Count(b.String(), text)
}
