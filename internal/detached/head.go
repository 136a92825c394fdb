package detached

import (
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
	proto := "HTTP/1.0 "
	if http11 {
		proto = "HTTP/1.1 "
	}
	b = append(b, proto...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	b = append(b, "\r\n"...)
	_ = hdr.WriteSubset(appendWriter{&b}, setHere) // writes to memory: cannot fail
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
