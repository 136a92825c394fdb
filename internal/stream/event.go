// Package stream is ssehub's Server-Sent Events domain: the Event type and its
// wire encoding, the spec parser, and the broker. It imports the standard
// library only.
package stream

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Errors returned by Event.Validate and Event.AppendTo.
var (
	// ErrInvalidField reports an id or event name holding CR, LF or NUL,
	// which would end the field early or be ignored by the client.
	ErrInvalidField = errors.New("contains CR, LF or NUL")
	// ErrInvalidRetry reports a negative retry.
	ErrInvalidRetry = errors.New("retry must not be negative")
)

// Event is one Server-Sent Events frame. The zero value writes nothing.
//
// Type is the `event:` field; empty means the default "message". Data may
// hold any text: it is split on CR, LF and CRLF into one `data:` line each.
// Retry, when positive, is sent as the `retry:` field in whole milliseconds,
// truncated, and at least 1 so that a positive Retry never becomes 0.
// Comment is sent as comment lines, which clients ignore (heartbeats).
type Event struct {
	ID      string
	Type    string
	Data    string
	Retry   time.Duration
	Comment string
}

// Validate reports whether e can be written: ID and Type must not hold CR,
// LF or NUL, and Retry must not be negative.
func (e *Event) Validate() error {
	if strings.ContainsAny(e.ID, "\r\n\x00") {
		return fmt.Errorf("id %s: %w", Quote(e.ID), ErrInvalidField)
	}
	if strings.ContainsAny(e.Type, "\r\n\x00") {
		return fmt.Errorf("event %s: %w", Quote(e.Type), ErrInvalidField)
	}
	if e.Retry < 0 {
		return fmt.Errorf("retry %v: %w", e.Retry, ErrInvalidRetry)
	}
	return nil
}

// AppendTo appends the wire form of e to dst: comment lines, then retry,
// id, event and data fields, then the blank line that ends the frame. An
// event with an id or a type always carries a data line, so clients
// dispatch it even when Data is empty. On a validation error dst is
// returned unchanged. It is the one encoding primitive; WriteTo wraps it.
func (e *Event) AppendTo(dst []byte) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return dst, err
	}
	start := len(dst)
	if e.Comment != "" {
		dst = appendLines(dst, ":", e.Comment)
	}
	if e.Retry > 0 {
		dst = append(dst, "retry: "...)
		dst = strconv.AppendInt(dst, max(e.Retry.Milliseconds(), 1), 10)
		dst = append(dst, '\n')
	}
	if e.ID != "" {
		dst = append(dst, "id: "...)
		dst = append(dst, e.ID...)
		dst = append(dst, '\n')
	}
	if e.Type != "" {
		dst = append(dst, "event: "...)
		dst = append(dst, e.Type...)
		dst = append(dst, '\n')
	}
	if e.Data != "" || e.ID != "" || e.Type != "" {
		dst = appendLines(dst, "data:", e.Data)
	}
	if len(dst) > start {
		dst = append(dst, '\n')
	}
	return dst, nil
}

// WriteTo writes the wire form of e to w with a single Write.
func (e *Event) WriteTo(w io.Writer) (int64, error) {
	b, err := e.AppendTo(nil)
	if err != nil {
		return 0, err
	}
	n, err := w.Write(b)
	return int64(n), err
}

// appendLines appends one "prefix value\n" line for each line of text,
// splitting on CR, LF and CRLF.
func appendLines(dst []byte, prefix, text string) []byte {
	// Two byte searches are much faster than strings.IndexAny. Each byte
	// is searched once for LF and once for CR, so the scan stays linear:
	// the next LF is kept while the lines before it end with CR (searching
	// the rest of text for LF at each of them made text of CRs quadratic),
	// and the search for CR stops at it.
	lf := strings.IndexByte(text, '\n')
	for {
		i, line := lf, text
		if i >= 0 {
			line = text[:i]
		}
		if j := strings.IndexByte(line, '\r'); j >= 0 {
			i, line = j, line[:j]
		}
		dst = append(dst, prefix...)
		dst = append(dst, ' ')
		dst = append(dst, line...)
		dst = append(dst, '\n')
		if i < 0 {
			return dst
		}
		if text[i] == '\r' && i+1 < len(text) && text[i+1] == '\n' {
			i++
		}
		text = text[i+1:]
		if lf >= 0 {
			if lf -= i + 1; lf < 0 { // this line ended at the LF
				lf = strings.IndexByte(text, '\n')
			}
		}
	}
}
