package detached

import (
	"net/http"
	"time"
)

// responseHead is the status line and headers of a taken-over response.
// The connection is not reused afterwards, and the head says so
// (Connection: close), so no client sends its next request on a connection
// that is about to close. HTTP/1.1 responses are chunked, so a client can
// tell a complete response from a cut one; HTTP/1.0 responses end when the
// connection closes. hdr is not changed.
func responseHead(r *http.Request, hdr http.Header) []byte {
	proto, framing := "HTTP/1.0", ""
	if r.ProtoAtLeast(1, 1) {
		proto, framing = "HTTP/1.1", "Transfer-Encoding: chunked\r\n"
	}
	head := append(make([]byte, 0, 512), proto+" 200 OK\r\n"...)
	_ = hdr.WriteSubset(appendWriter{&head}, setHere) // writes to memory: cannot fail
	head = append(head, "Connection: close\r\n"...)
	head = append(head, framing...)
	head = append(head, "Date: "...)
	head = time.Now().UTC().AppendFormat(head, http.TimeFormat)
	return append(head, "\r\n\r\n"...)
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
