package handler

import (
	"bytes"
	"crypto/tls"
	"net"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawH2 is one HTTP/2 connection to a test server, driven frame by
// frame: a client that can reset a stream, stop reading, send a GOAWAY or
// drop the connection as a browser does.
type rawH2 struct {
	conn net.Conn
	fr   *http2.Framer
	mu   sync.Mutex // guards fr's writes
	next uint32     // the next stream's id
	// frames gets each frame read (copied), until the connection ends.
	frames chan http2.Frame
}

// dialH2 opens an HTTP/2 connection over TLS to ts, announcing window as
// each stream's flow-control window, and reads its frames on a goroutine
// that ends with the connection.
func dialH2(t *testing.T, ts *testServer, window uint32) *rawH2 {
	t.Helper()
	conn, err := tls.Dial("tcp", ts.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	c := &rawH2{conn: conn, fr: http2.NewFramer(conn, conn), next: 1, frames: make(chan http2.Frame, 100000)}
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: window}); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.frames)
		for {
			f, err := c.fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					c.mu.Lock()
					_ = c.fr.WriteSettingsAck()
					c.mu.Unlock()
				}
				continue
			case *http2.DataFrame:
				d := bytes.Clone(f.Data())
				select {
				case c.frames <- &dataCopy{id: f.StreamID, data: d, end: f.StreamEnded()}:
				default:
				}
				continue
			}
			select {
			case c.frames <- f:
			default:
			}
		}
	}()
	return c
}

// dataCopy is a DATA frame's contents, kept past the next read.
type dataCopy struct {
	http2.Frame
	id   uint32
	data []byte
	end  bool
}

// open sends a request's HEADERS (and DATA with body, when not nil) and
// returns its stream's id.
func (c *rawH2) open(t *testing.T, method, path string, header map[string]string, body []byte) uint32 {
	t.Helper()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	fields := []hpack.HeaderField{
		{Name: ":method", Value: method},
		{Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: "ssehub"},
		{Name: ":path", Value: path},
	}
	for k, v := range header {
		fields = append(fields, hpack.HeaderField{Name: k, Value: v})
	}
	if body != nil {
		fields = append(fields, hpack.HeaderField{Name: "content-length", Value: strconv.Itoa(len(body))})
	}
	for _, f := range fields {
		_ = enc.WriteField(f)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.next
	c.next += 2
	err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: body == nil})
	if err == nil && body != nil {
		err = c.fr.WriteData(id, true, body)
	}
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// reset sends RST_STREAM CANCEL for the stream, as a browser does when an
// EventSource closes.
func (c *rawH2) reset(t *testing.T, id uint32) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
}
