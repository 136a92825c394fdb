package detached

import (
	"bytes"
	"net/http"
	"strconv"
	"time"
)

// responseHead is the status line and headers of a taken-over response.
// The connection is not reused afterwards, and the head says so
// (Connection: close), so no client sends its next request on a connection
// that is about to close. HTTP/1.1 responses are chunked, so a client can
// tell a complete response from a cut one; HTTP/1.0 responses end when the
// connection closes. hdr is not changed.
func responseHead(r *http.Request, hdr http.Header) []byte {
	return appendHead(make([]byte, 0, 512), r.ProtoAtLeast(1, 1), http.StatusOK, hdr, -1)
}

// appendHead appends a response head to b: the status line and hdr, with
// Connection: close, and the framing of a body of length bytes, or of a
// stream when length is negative (chunked on HTTP/1.1). hdr's own
// Content-Length is not written.
func appendHead(b []byte, http11 bool, status int, hdr http.Header, length int) []byte {
	b = appendStatusLine(b, http11, status)
	_ = hdr.WriteSubset(appendWriter{&b}, setHere) // writes to memory: cannot fail
	return appendFraming(b, http11, length)
}

// appendStatusLine appends a response's status line to b.
func appendStatusLine(b []byte, http11 bool, status int) []byte {
	proto := "HTTP/1.0 "
	if http11 {
		proto = "HTTP/1.1 "
	}
	b = append(b, proto...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	return append(b, "\r\n"...)
}

// appendFields appends the header fields of head, a head appendHead made,
// to b, less those it writes itself (setHere) and those named in hdr.
// Their names are compared as written: hdr's canonical, as Header.Set
// makes them.
func appendFields(b, head []byte, hdr http.Header) []byte {
	_, fields, _ := bytes.Cut(head, crlf) // after the status line
	for len(fields) > 0 {
		var line []byte
		line, fields, _ = bytes.Cut(fields, crlf)
		name, _, ok := bytes.Cut(line, []byte(": "))
		if !ok {
			continue // the empty line that ends the head
		}
		if _, ok := hdr[string(name)]; ok || setHere[string(name)] {
			continue
		}
		b = append(b, line...)
		b = append(b, crlf...)
	}
	return b
}

// appendFraming appends the end of a head to b: Connection: close, the
// framing of a body of length bytes, or of a stream when length is
// negative (chunked on HTTP/1.1), and the Date.
func appendFraming(b []byte, http11 bool, length int) []byte {
	b = append(b, "Connection: close\r\n"...)
	switch {
	case length >= 0:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(length), 10)
		b = append(b, "\r\n"...)
	case http11:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	b = append(b, "Date: "...)
	b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
	return append(b, "\r\n\r\n"...)
}

// setHere are the headers responseHead writes itself, whatever hdr says.
var setHere = map[string]bool{"Connection": true, "Date": true, "Transfer-Encoding": true, "Content-Length": true}

// appendWriter is an io.Writer that appends to a byte slice.
type appendWriter struct{ b *[]byte }

func (w appendWriter) Write(p []byte) (int, error) {
	*w.b = append(*w.b, p...)
	return len(p), nil
}

// WriteString spares http.Header.Write a copy of every string.
func (w appendWriter) WriteString(s string) (int, error) {
	*w.b = append(*w.b, s...)
	return len(s), nil
}
