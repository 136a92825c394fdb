package handler

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
	"golang.org/x/net/http2"
)

// manyTopics is how many topics manyTopicsOptions' broker has: its list
// is some 2.4 MB of JSON.
const manyTopics = 8000

// manyTopicsOptions are test options with a hub whose broker, in memory,
// has manyTopics topics of 245 bytes, and stream.write_timeout 1 s.
func manyTopicsOptions(t *testing.T) Options {
	t.Helper()
	broker := stream.NewMemory(stream.MemoryOptions{HistorySize: manyTopics})
	t.Cleanup(broker.Close)
	long := strings.Repeat("t", 240)
	for i := range manyTopics {
		if _, _, err := broker.Publish(stream.Publication{Topic: fmt.Sprintf("%s%05d", long, i), Data: "1"}); err != nil {
			t.Fatal(err)
		}
	}
	opts := testOptions()
	opts.Hub = HubOptions{Broker: broker}
	opts.Stream.WriteTimeout = time.Second
	return opts
}

// pacedReader reads at most 16 KiB at a time, every 12 ms: a client on a
// slow link that reads all the same, some 1.3 MB/s at the most.
type pacedReader struct{ r io.Reader }

func (p pacedReader) Read(b []byte) (int, error) {
	time.Sleep(12 * time.Millisecond)
	return p.r.Read(b[:min(len(b), 16<<10)])
}

// TestLargeAnswerToASteadyReaderIsWhole lists some 2.4 MB of topics (GET
// /api/v1/topics without a limit, which Gin writes in one Write) to a
// client that reads slowly but steadily, on a connection with small socket
// buffers: the answer takes two seconds or more, each 32 KiB of it a few
// dozen milliseconds. The write bound of plain answers (boundWrites) was
// set once before the answer's one write, so that write, blocked while the
// client read, failed after stream.write_timeout and the client got a
// truncated answer. A client that reads must get it whole; the bound is
// for one that stops.
func TestLargeAnswerToASteadyReaderIsWhole(t *testing.T) {
	if testDetached || testNATS != nil {
		t.Skip("no stream and a broker of its own: one pass is enough")
	}
	opts := manyTopicsOptions(t)
	h := New(opts)
	ts := httptest.NewUnstartedServer(h)
	ts.Config.ConnState = func(c net.Conn, state http.ConnState) {
		if state == http.StateNew {
			_ = c.(*net.TCPConn).SetWriteBuffer(64 << 10)
		}
	}
	ts.Start()
	t.Cleanup(func() {
		h.Close()
		ts.Close()
	})

	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.(*net.TCPConn).SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetDeadline(time.Now().Add(60 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "GET /api/v1/topics HTTP/1.1\r\nHost: ssehub\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReaderSize(pacedReader{conn}, 16<<10), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("after %d bytes in %v: %v (stream.write_timeout %v)", len(body), time.Since(start), err, opts.Stream.WriteTimeout)
	}
	var out struct{ Topics []struct{ Topic string } }
	if err := json.Unmarshal(body, &out); err != nil || len(out.Topics) != manyTopics {
		t.Fatalf("%d topics of %d bytes in %v (%v), want %d", len(out.Topics), len(body), time.Since(start), err, manyTopics)
	}
	if took := time.Since(start); took < 3*opts.Stream.WriteTimeout/2 {
		t.Fatalf("the answer took %v, not well past stream.write_timeout %v: it proves nothing", took, opts.Stream.WriteTimeout)
	}
}

// TestHTTP2LargeAnswerToASteadyReaderIsWhole is
// TestLargeAnswerToASteadyReaderIsWhole over HTTP/2: the client grants
// the stream and the connection 8 KiB of window again 10 ms after each
// DATA frame, some 800 KB/s. The one Write of the answer waited for the
// window past stream.write_timeout and the stream was reset.
func TestHTTP2LargeAnswerToASteadyReaderIsWhole(t *testing.T) {
	if testDetached || testNATS != nil {
		t.Skip("no stream and a broker of its own: one pass is enough")
	}
	opts := manyTopicsOptions(t)
	ts := newHTTP2TestServer(t, opts)
	c := dialH2(t, ts, 8<<10)
	start := time.Now()
	id := c.open(t, "GET", "/api/v1/topics", nil, nil)
	var body []byte
	timeout := time.After(60 * time.Second)
	for ended := false; !ended; {
		select {
		case f, ok := <-c.frames:
			if !ok {
				t.Fatalf("connection ended after %d bytes", len(body))
			}
			switch f := f.(type) {
			case *http2.RSTStreamFrame:
				if f.StreamID == id {
					t.Fatalf("stream reset (%v) after %d bytes in %v (stream.write_timeout %v)",
						f.ErrCode, len(body), time.Since(start), opts.Stream.WriteTimeout)
				}
			case *dataCopy:
				if f.id != id {
					continue
				}
				body = append(body, f.data...)
				ended = f.end
				if n := uint32(len(f.data)); n > 0 && !ended {
					time.Sleep(10 * time.Millisecond)
					c.mu.Lock()
					err := errors.Join(c.fr.WriteWindowUpdate(id, n), c.fr.WriteWindowUpdate(0, n))
					c.mu.Unlock()
					if err != nil {
						t.Fatal(err)
					}
				}
			}
		case <-timeout:
			t.Fatalf("%d bytes in %v, and no more", len(body), time.Since(start))
		}
	}
	var out struct{ Topics []struct{ Topic string } }
	if err := json.Unmarshal(body, &out); err != nil || len(out.Topics) != manyTopics {
		t.Fatalf("%d topics of %d bytes (%v), want %d", len(out.Topics), len(body), err, manyTopics)
	}
	if took := time.Since(start); took < 2*opts.Stream.WriteTimeout {
		t.Fatalf("the answer took %v, not past stream.write_timeout %v: it proves nothing", took, opts.Stream.WriteTimeout)
	}
}
