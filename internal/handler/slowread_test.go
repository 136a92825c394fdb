package handler

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

// pacedReader reads at most 8 KiB at a time, every 10 ms: a client on a
// slow link that reads all the same, some 800 KB/s.
type pacedReader struct{ r io.Reader }

func (p pacedReader) Read(b []byte) (int, error) {
	time.Sleep(10 * time.Millisecond)
	return p.r.Read(b[:min(len(b), 8<<10)])
}

// TestLargeAnswerToASteadyReaderIsWhole lists some 2.4 MB of topics (GET
// /api/v1/topics without a limit, which Gin writes in one Write) to a
// client that reads slowly but steadily, on a connection with small socket
// buffers: the answer takes some three seconds, each 32 KiB of it a few
// dozen milliseconds. The write bound of plain answers (boundWrites) was
// set once before the answer's one write, so that write, blocked while the
// client read, failed after stream.write_timeout and the client got a
// truncated answer. A client that reads must get it whole; the bound is
// for one that stops.
func TestLargeAnswerToASteadyReaderIsWhole(t *testing.T) {
	if testDetached || testNATS != nil {
		t.Skip("no stream and a broker of its own: one pass is enough")
	}
	broker := stream.NewMemory(stream.MemoryOptions{HistorySize: 10000})
	t.Cleanup(broker.Close)
	const topics = 8000
	long := strings.Repeat("t", 240)
	for i := range topics {
		if _, _, err := broker.Publish(stream.Publication{Topic: fmt.Sprintf("%s%05d", long, i), Data: "1"}); err != nil {
			t.Fatal(err)
		}
	}
	opts := testOptions()
	opts.Hub = HubOptions{Broker: broker}
	opts.Stream.WriteTimeout = time.Second
	h := New(opts)
	ts := httptest.NewUnstartedServer(h)
	ts.Config.ConnState = func(c net.Conn, state http.ConnState) {
		if state == http.StateNew {
			_ = c.(*net.TCPConn).SetWriteBuffer(16 << 10)
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
	if err := conn.(*net.TCPConn).SetReadBuffer(16 << 10); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetDeadline(time.Now().Add(60 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "GET /api/v1/topics HTTP/1.1\r\nHost: ssehub\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(pacedReader{conn}), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("after %d bytes in %v: %v (stream.write_timeout %v)", len(body), time.Since(start), err, opts.Stream.WriteTimeout)
	}
	var out struct{ Topics []struct{ Topic string } }
	if err := json.Unmarshal(body, &out); err != nil || len(out.Topics) != topics {
		t.Fatalf("%d topics of %d bytes in %v (%v), want %d", len(out.Topics), len(body), time.Since(start), err, topics)
	}
	if took := time.Since(start); took < 2*opts.Stream.WriteTimeout {
		t.Fatalf("the answer took %v, not past stream.write_timeout %v: it proves nothing", took, opts.Stream.WriteTimeout)
	}
}
