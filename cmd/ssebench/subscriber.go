package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

// headReaderBytes is the read buffer for a response head. The body goes
// straight from the socket into the parser's own buffer once the head is
// read, so this stays small: per-connection memory matters at 10k.
const headReaderBytes = 512

// sseConn is one open event stream: a raw connection and the spec parser
// reading its body. It belongs to one goroutine, except Close.
type sseConn struct {
	conn   net.Conn
	parser *stream.Parser
}

// openStream dials the target, sends a GET for path with the given
// headers and reads the response head. Anything but a 200 with an
// event-stream body is an error. timeout bounds the whole exchange.
func openStream(ctx context.Context, t *target, path string, timeout time.Duration, headers ...header) (*sseConn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := t.dial(ctx)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	headers = append(headers, header{"Accept", "text/event-stream"}, header{"Cache-Control", "no-cache"})
	if _, err := conn.Write(t.appendRequest(nil, http.MethodGet, path, nil, headers...)); err != nil {
		_ = conn.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(conn, headReaderBytes)
	head, err := readResponseHead(br)
	if err == nil && head.status != http.StatusOK {
		err = statusError(head, br)
	}
	if err == nil && !strings.HasPrefix(head.contentType, "text/event-stream") {
		err = fmt.Errorf("content-type %q: %w", head.contentType, ErrBadResponse)
	}
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return &sseConn{conn: conn, parser: stream.NewParser(head.body(br))}, nil
}

// Next returns the next event of the stream.
func (c *sseConn) Next() (stream.Event, error) {
	return c.parser.Next()
}

// Close closes the connection; a Next in progress returns an error. Safe
// to call from any goroutine, more than once.
func (c *sseConn) Close() error {
	return c.conn.Close()
}
