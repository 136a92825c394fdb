package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http/httputil"
	"strconv"
)

// Errors reading a response head.
var (
	// ErrBadResponse reports a status line or header ssebench cannot read.
	ErrBadResponse = errors.New("malformed HTTP response")
	// ErrStatus reports a status other than the one expected.
	ErrStatus = errors.New("unexpected status")
)

// maxHeadBytes bounds a response head.
const maxHeadBytes = 64 << 10

// responseHead is what ssebench needs from a response's status line and
// headers.
type responseHead struct {
	status        int
	contentLength int64 // -1 when absent
	chunked       bool
	close         bool // Connection: close, or HTTP/1.0
	contentType   string
}

// readResponseHead reads a status line and headers from br, which may be
// small: lines longer than its buffer are joined.
func readResponseHead(br *bufio.Reader) (responseHead, error) {
	h := responseHead{contentLength: -1}
	line, err := readLine(br)
	if err != nil {
		return h, err
	}
	proto, rest, _ := bytes.Cut(line, []byte(" "))
	code, _, _ := bytes.Cut(rest, []byte(" "))
	h.status, err = strconv.Atoi(string(code))
	if err != nil || !bytes.HasPrefix(proto, []byte("HTTP/1.")) {
		return h, fmt.Errorf("status line %.60q: %w", line, ErrBadResponse)
	}
	h.close = string(proto) == "HTTP/1.0"
	total := len(line)
	for {
		line, err := readLine(br)
		if err != nil {
			return h, err
		}
		if len(line) == 0 {
			return h, nil
		}
		if total += len(line); total > maxHeadBytes {
			return h, fmt.Errorf("head over %d bytes: %w", maxHeadBytes, ErrBadResponse)
		}
		if err := h.addHeader(line); err != nil {
			return h, err
		}
	}
}

// addHeader records the headers ssebench cares about.
func (h *responseHead) addHeader(line []byte) error {
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok {
		return fmt.Errorf("header %.60q: %w", line, ErrBadResponse)
	}
	value = bytes.TrimSpace(value)
	switch {
	case bytes.EqualFold(name, []byte("Content-Length")):
		n, err := strconv.ParseInt(string(value), 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("content-length %.30q: %w", value, ErrBadResponse)
		}
		h.contentLength = n
	case bytes.EqualFold(name, []byte("Transfer-Encoding")):
		h.chunked = bytes.EqualFold(value, []byte("chunked"))
	case bytes.EqualFold(name, []byte("Connection")):
		h.close = bytes.EqualFold(value, []byte("close"))
	case bytes.EqualFold(name, []byte("Content-Type")):
		h.contentType = string(value)
	}
	return nil
}

// body returns a reader of the response body that follows the head in br.
func (h *responseHead) body(br *bufio.Reader) io.Reader {
	switch {
	case h.chunked:
		return httputil.NewChunkedReader(br)
	case h.contentLength >= 0:
		return io.LimitReader(br, h.contentLength)
	default:
		return br // delimited by the end of the connection
	}
}

// readLine reads one CRLF- or LF-terminated line without its end. The
// slice is valid until the next read from br.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		long := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) && len(long) <= maxHeadBytes {
			line, err = br.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// statusError describes a refused request: its status and the start of
// its body, which for ssehub is a JSON error.
func statusError(h responseHead, br *bufio.Reader) error {
	var msg []byte
	if h.contentLength > 0 || h.chunked {
		msg, _ = io.ReadAll(io.LimitReader(h.body(br), 200))
	}
	if len(msg) == 0 {
		return fmt.Errorf("status %d: %w", h.status, ErrStatus)
	}
	return fmt.Errorf("status %d %s: %w", h.status, bytes.TrimSpace(msg), ErrStatus)
}
