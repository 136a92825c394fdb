package handler

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

// A subscriber that stops reading is dropped by the broker while its
// stream is blocked in a write, which then times out. It is counted once,
// by the broker, and its stream ends as dropped, not as a failed write.
// synctest makes it exact: after each publish every goroutine is blocked,
// so the drop comes while the write is (net.Pipe holds nothing).
func TestHubDropsASlowSubscriberAndCountsItOnce(t *testing.T) {
	skipOnNATS(t, synctestWhy)
	synctest.Test(t, func(t *testing.T) {
		opts, broker := hubOptions(t, stream.MemoryOptions{SubscriberBuffer: 4})
		opts.Stream.WriteTimeout = 7 * time.Second
		h := New(opts)
		defer h.Close()
		client, ended := bubbleServerTimed(t, h)
		resp, err := client.Get("http://ssehub/api/v1/events?topic=a")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		// The client never reads: the first writes fill what the
		// connection holds, then the queue of 4, then the broker drops
		// the subscriber. The publisher never waits.
		data := strings.Repeat("x", 1000)
		for range 20 {
			if _, _, err := broker.Publish(stream.Publication{Topic: "a", Data: data}); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}
		if got := broker.Stats().Dropped; got != 1 {
			t.Fatalf("%d subscribers dropped by the broker, want 1", got)
		}
		// The blocked write ends at the write timeout, and the
		// connection closes.
		wantReturnedAt(t, ended, 7*time.Second)
		if _, err := io.Copy(io.Discard, resp.Body); err == nil {
			t.Error("the stream of a dropped subscriber ended cleanly, want a cut connection")
		}

		metrics, err := client.Get("http://ssehub/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer metrics.Body.Close()
		b, _ := io.ReadAll(metrics.Body)
		if !strings.Contains(string(b), "\nssehub_slow_subscribers_dropped_total 1\n") {
			t.Errorf("/metrics, want ssehub_slow_subscribers_dropped_total 1:\n%s", grepLines(string(b), "ssehub_"))
		}
		// The broker dropped it while its write was blocked: the write's
		// timeout is how the stream learnt it, not why it ended. The
		// README tells operators to alert on reason="dropped".
		ends := streamEnds(string(b))
		if ends != `ssehub_streams_ended_total{reason="dropped"} 1` {
			t.Errorf("/metrics: %s; want the stream ended as dropped, and only that", ends)
		}
		if got := h.metrics.writeTimeouts.Load(); got != 0 {
			t.Errorf("%d write timeouts counted, want 0: the broker counted the drop", got)
		}
	})
}

func TestHubStreamStartsWithTheRetryField(t *testing.T) {
	ts := newHubServer(t) // retry 2500ms
	p := ts.subscribe(t, "topic=a", nil)
	ev, err := p.Next()
	if err != nil {
		t.Fatal(err)
	}
	if ev.Retry != 2500*time.Millisecond || ev.Type != "position" {
		t.Errorf("first event %+v, want the stream's position, with retry 2.5s before it", ev)
	}
}

// streamEnds returns the lines of the metrics text s that count ended
// streams, those at 0 left out.
func streamEnds(s string) string {
	var out []string
	for _, line := range strings.Split(grepLines(s, "ssehub_streams_ended_total{"), "\n") {
		if !strings.HasSuffix(line, " 0") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// Over a real socket, with either transport: a subscriber that does not
// read is dropped at the write timeout, and counted once (with Gin the
// timeout shows as the flush's error, which ginWriter keeps). The client
// reads nothing, not even the answer's head: it waits for the
// subscription in the broker. It read the head, which had to be written
// within the 300 ms timeout, and a loaded machine that ran it out failed
// the test with the stream dropped just as it should be.
func TestHubWriteTimeoutOverTCP(t *testing.T) {
	opts, broker := hubOptions(t, stream.MemoryOptions{SubscriberBuffer: 100000})
	opts.Stream.WriteTimeout = 300 * time.Millisecond
	ts := newTestServer(t, opts)
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /api/v1/events?topic=a HTTP/1.1\r\nHost: ssehub\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Subscribed, or already dropped at the timeout (its head's write
	// ran it out).
	waitFor(t, func() bool { return broker.Stats().Subscribers == 1 || ts.h.metrics.writeTimeouts.Load() > 0 })
	// 16 MB is far more than the socket buffers hold (Linux lets a send
	// buffer grow to 4 MiB by default, so 4 MB could all fit).
	data := strings.Repeat("x", 4000)
	for range 4000 {
		if _, _, err := broker.Publish(stream.Publication{Topic: "a", Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	ts.waitReturned(t, "/api/v1/events")
	if got := ts.h.metrics.writeTimeouts.Load(); got != 1 {
		t.Errorf("%d write timeouts counted, want 1", got)
	}
	if got := broker.Stats().Subscribers; got != 0 {
		t.Errorf("%d subscribers left, want 0", got)
	}
}

// A replay still being sent ends at its next step when the handler closes
// or the broker drops the subscription: not once the client has read the
// rest, which for a slow client may take minutes (shutdown would wait for
// it, and a dropped subscription would stream on outside
// hub.max_subscribers). Over a real socket, in either transport. (Live
// events that overflow the queue of a subscription whose replay is still
// being sent do not drop it: the replay reads on to them. The history
// letting go of the rest of its replay does.)
func TestAReplayInProgressEndsAtItsNextStep(t *testing.T) {
	tests := []struct {
		name    string
		end     func(t *testing.T, ts *testServer, broker testBroker)
		dropped uint64
	}{
		{"handler closed", func(_ *testing.T, ts *testServer, _ testBroker) { ts.h.Close() }, 0},
		{"dropped by the broker", func(t *testing.T, _ *testServer, broker testBroker) {
			// The queue holds 1: live events overflow it, then the
			// history lets go of every event of "a".
			for _, data := range []string{"live 1", "live 2"} {
				if _, _, err := broker.Publish(stream.Publication{Topic: "a", Data: data}); err != nil {
					t.Fatal(err)
				}
			}
			publishN(t, broker, "b", "evicts", 1000)
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, broker := hubOptions(t, stream.MemoryOptions{SubscriberBuffer: 1, HistorySize: 1000, HistoryMaxBytes: 32 << 20})
			ts := newTestServer(t, opts)
			// 24 MB of history: far more than the socket buffers hold (a
			// send buffer may grow to 4 MiB, a receive buffer to 6 MiB), so
			// the replay is under way, blocked, when the test ends it.
			const events, size = 400, 60000
			first := publishN(t, broker, "a", strings.Repeat("x", size), events)
			resp := resumeRaw(t, ts.dial(t), "a", first.IDString())
			// The replay's first byte: it is under way, an event of it
			// handed out. Ended before (the headers come first, then the
			// retry field in a step of its own), a resume with nothing
			// handed out is overtaken, not dropped, and goes on with a
			// reset and live events.
			body := bufio.NewReader(resp.Body)
			if retry, err := body.ReadString('\n'); err != nil || !strings.HasPrefix(retry, "retry: ") {
				t.Fatalf("the stream began with %q, %v; want its retry field", retry, err)
			}
			if blank, err := body.ReadString('\n'); err != nil || blank != "\n" {
				t.Fatalf("the retry field went on with %q, %v; want its end", blank, err)
			}
			if _, err := body.ReadByte(); err != nil {
				t.Fatal(err)
			}
			tt.end(t, ts, broker)
			// Now read it all: the stream ends (a clean end of the
			// response; the Gin transport keeps the connection) after
			// what the buffers held and at most one more step.
			n, err := io.Copy(io.Discard, body)
			if err != nil {
				t.Fatalf("after %d bytes: %v, want the stream to end", n, err)
			}
			if replay := int64(events-1) * size; n > replay/2 {
				t.Errorf("read %d bytes of a %d-byte replay before the end: it went on", n, replay)
			}
			ts.waitReturned(t, "/api/v1/events")
			if got := broker.Stats().Subscribers; got != 0 {
				t.Errorf("%d subscribers left, want 0", got)
			}
			if got := broker.Stats().Dropped; got != tt.dropped {
				t.Errorf("%d subscribers dropped by the broker, want %d", got, tt.dropped)
			}
		})
	}
}

// A resume holds its place in the history, not a copy of its replay:
// resumers that read nothing, blocked in the middle of their replay, do
// not keep what the history evicts meanwhile, so the heap stays about
// hub.history_max_bytes however far the history moves on. Before, each
// held its whole replay until its stream ended (here, up to the write
// timeout): the heap grew by a history per resumer.
func TestAStalledResumeHoldsNoEvictedHistory(t *testing.T) {
	skipOnNATS(t, "it measures the memory broker's heap")
	const historyBytes, size, resumers = 8 << 20, 60000, 3
	opts, broker := hubOptions(t, stream.MemoryOptions{HistorySize: 10000, HistoryMaxBytes: historyBytes})
	opts.Stream.WriteTimeout = time.Minute // the streams stay blocked
	ts := newTestServer(t, opts)
	heap := func() int64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	base := heap()

	data := strings.Repeat("x", size)
	// An event of 60 KB is retained as 64 KiB (whole pages) and a little:
	// the history holds full events.
	const full = historyBytes/(64<<10+1<<10) - 1
	// Each resumer asks for a history's worth of its own topic, which
	// the next one's replaces: 8 MiB of replay, more than the socket
	// buffers take from a client that reads nothing (a send buffer may
	// grow to 4 MiB; the client's receive buffer is kept small), so every
	// replay is blocked half way. No live event is queued to a resumer:
	// none is dropped, and each holds no more than its replay.
	for i := range resumers {
		topic := fmt.Sprintf("r%d", i)
		first := publishN(t, broker, topic, data, full)
		conn := ts.dial(t)
		if tcp, ok := conn.(*net.TCPConn); ok {
			if err := tcp.SetReadBuffer(64 << 10); err != nil {
				t.Fatal(err)
			}
		}
		resumeRaw(t, conn, topic, first.IDString())
	}
	// The history is replaced four times over, by events no resumer
	// wants. A resumer whose write was not blocked yet may find the rest
	// of its replay evicted at its next step: it is dropped, as too slow.
	publishN(t, broker, "other", data, 4*full)
	if st := broker.Stats(); st.Subscribers+int(st.Dropped) != resumers || st.Replayed == 0 {
		t.Errorf("%d subscribers, %d dropped, %d events replayed; want %d in all and replays under way", st.Subscribers, st.Dropped, st.Replayed, resumers)
	}
	if grown := heap() - base; grown > 2*historyBytes {
		t.Errorf("the heap grew by %.1f MB with a %d MiB history and %d stalled resumers: they hold what it evicted",
			float64(grown)/1e6, historyBytes>>20, resumers)
	} else {
		t.Logf("the heap grew by %.1f MB with a %d MiB history", float64(grown)/1e6, historyBytes>>20)
	}
}

// A client so slow that the history evicts the rest of its replay before
// it is sent is dropped there, as a slow subscriber is, rather than sent
// the replay with a gap; reconnecting with the last id it got, it is told
// that events were missed. Over a real socket, in either transport.
func TestAResumeOvertakenByItsHistoryIsDroppedAndReset(t *testing.T) {
	skipOnNATS(t, "with NATS the reconnect resumes from the stream, which keeps every event")
	opts, broker := hubOptions(t, stream.MemoryOptions{HistorySize: 1000, HistoryMaxBytes: 32 << 20})
	ts := newTestServer(t, opts)
	// 24 MB of replay: more than the socket buffers hold.
	const events, size = 400, 60000
	data := strings.Repeat("x", size)
	first := publishN(t, broker, "a", data, events)
	resp := resumeRaw(t, ts.dial(t), "a", first.IDString())
	// The replay under way: its first event read (else, in the detached
	// transport, the history was sometimes replaced before the stream
	// wrote anything, and nothing was replayed: once in 6 CI runs).
	p := stream.NewParser(resp.Body)
	ev, err := nextEvent(p)
	if err != nil {
		t.Fatal(err)
	}
	n, last := 1, ev.ID
	// Events of another topic replace the whole history (about 510 of
	// these fit) while the client reads nothing more.
	publishN(t, broker, "other", data, 600)
	// Now it reads: what the buffers held and the piece being written,
	// then the stream ends.
	for {
		ev, err := nextEvent(p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("after %d events: %v, want the stream to end", n, err)
		}
		n++
		last = ev.ID
	}
	if n == 0 || n >= events-1 {
		t.Fatalf("%d of the %d events replayed before the end, want some and not all", n, events-1)
	}
	if got := broker.Stats().Dropped; got != 1 {
		t.Errorf("%d subscribers dropped, want 1", got)
	}
	ts.waitReturned(t, "/api/v1/events")
	again := ts.subscribe(t, "topic=a", map[string]string{"Last-Event-ID": last})
	if ev := next(t, again); ev.Type != "reset" || !strings.Contains(ev.Data, "older than the retained history") {
		t.Errorf("reconnect from %s: %+v, want a reset: events were missed", last, ev)
	}
}

// publishN publishes n events of data to topic and returns the first.
func publishN(t *testing.T, broker testBroker, topic, data string, n int) *stream.Message {
	t.Helper()
	var first *stream.Message
	for i := range n {
		m, _, err := broker.Publish(stream.Publication{Topic: topic, Data: data})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = m
		}
	}
	return first
}

// resumeRaw subscribes to topic over conn, resuming after lastID, and
// returns the stream's response once its head is read.
func resumeRaw(t *testing.T, conn net.Conn, topic, lastID string) *http.Response {
	t.Helper()
	if _, err := fmt.Fprintf(conn, "GET /api/v1/events?topic=%s HTTP/1.1\r\nHost: ssehub\r\nLast-Event-ID: %s\r\n\r\n", topic, lastID); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("answer %v, %v; want a stream", resp, err)
	}
	return resp
}

// A client that resumes thousands of events back on a topic that gets
// busy while its replay is sent gets every event once, in order, and is
// not dropped: more live events arrived while its replay was sent
// than hub.subscriber_buffer holds, and its stream ended as a slow
// subscriber's though every event it had not been sent was in the
// history. Over a real socket, with each broker.
func TestADeepResumeOnABusyTopicIsNotDropped(t *testing.T) {
	opts, broker := hubOptions(t, stream.MemoryOptions{SubscriberBuffer: 8, HistorySize: 20000})
	ts := newTestServer(t, opts)
	const behind = 3000
	// 12 MB of replay, more than the sockets between them hold: while the
	// client reads nothing after its first event, its stream is held in
	// the replay's write.
	first := publishN(t, broker, "a", strings.Repeat("x", 4000), behind)

	p := ts.subscribe(t, "topic=a", map[string]string{"Last-Event-ID": first.IDString()})
	got := []string{next(t, p).ID}
	// 25 times what its queue holds, published while the replay is being
	// sent, and then no more: kept on past the replay, a publisher would
	// drop a caught-up subscriber whose stream a loaded machine holds
	// back, as a slow subscriber is meant to be.
	var live []string
	for range 200 {
		m, _, err := broker.Publish(stream.Publication{Topic: "a", Data: "live"})
		if err != nil {
			t.Fatal(err)
		}
		live = append(live, m.IDString())
	}
	for len(got) < behind-1+len(live) {
		ev, err := nextEvent(p)
		if err != nil {
			t.Fatalf("after %d events (%d replayed): %v; %d dropped", len(got), behind-1, err, broker.Stats().Dropped)
		}
		got = append(got, ev.ID)
	}
	if first, _ := strconv.ParseUint(first.IDString(), 10, 64); got[0] != strconv.FormatUint(first+1, 10) || !slices.Equal(got[behind-1:], live) {
		t.Fatalf("got %v ... %v, want from %d, then the %d live events in order", got[:3], got[behind-1:min(len(got), behind+2)], first+1, len(live))
	}
	if !slices.IsSortedFunc(got, func(x, y string) int {
		a, _ := strconv.ParseUint(x, 10, 64)
		b, _ := strconv.ParseUint(y, 10, 64)
		return cmp.Compare(a, b)
	}) || len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Fatal("events out of order or sent twice")
	}
	if d := broker.Stats().Dropped; d != 0 {
		t.Errorf("%d subscribers dropped, want 0", d)
	}
}

// readThrough reads c a byte at a time until what it read ends with end,
// and returns it: no byte past it is taken from the connection, so the
// server's write of what follows stays blocked (net.Pipe holds nothing).
func readThrough(t *testing.T, c net.Conn, end string) string {
	t.Helper()
	var got []byte
	b := make([]byte, 1)
	for !strings.HasSuffix(string(got), end) {
		if _, err := c.Read(b); err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		got = append(got, b[0])
	}
	return string(got)
}

// A subscriber that reads slowly is dropped once hub.subscriber_buffer
// events wait for it behind the piece its stream is writing, not twice
// that: its stream takes from the queue what one write sends (64 KiB),
// and what it has not taken still counts in the queue. It took the whole
// queue, which then filled again behind it, so a slow subscriber held
// twice the events (and memory) hub.subscriber_buffer says.
func TestHubSlowSubscriberHoldsAtMostItsBuffer(t *testing.T) {
	skipOnNATS(t, synctestWhy)
	// Its reads follow the gin transport's writes byte for byte; the
	// queue is the broker's, the same with either.
	onlyIn(t, false)
	synctest.Test(t, func(t *testing.T) {
		const buffer = 4
		conn, broker := pipeSubscription(t, buffer)
		// A chunk that ends a step ends with an event's blank line and
		// the chunk's CRLF.
		const stepEnd = "\n\n\r\n"
		if got := readThrough(t, conn, stepEnd); !strings.Contains(got, "event: position") {
			t.Fatalf("the stream began with %q, want its position", got)
		}
		data := strings.Repeat("x", 40000) // two make a write of 64 KiB or more
		publish := func() {
			t.Helper()
			if _, _, err := broker.Publish(stream.Publication{Topic: "a", Data: data}); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}
		publish() // taken and written: the write blocks
		for range buffer {
			publish() // queued behind it
		}
		readThrough(t, conn, stepEnd) // the first event's write ends
		// The stream takes the next write's events from the queue and
		// blocks writing them: the queue holds the rest. (Waited for: the
		// stream goes on as the read ends, and a publish before it took
		// them found the queue full.)
		synctest.Wait()
		more := 0
		for broker.Stats().Dropped == 0 {
			if more++; more > 2*buffer {
				t.Fatalf("%d events published past a full queue, the subscriber still not dropped", more)
			}
			publish()
		}
		// Two events went into the write; the two left and two more make
		// the queue full, and the next one drops the subscriber.
		if more != 3 {
			t.Errorf("the subscriber was dropped at the %dth event published behind its write, want the 3rd: more than %d events waited for it beside the write", more, buffer)
		}
	})
}

// A subscriber dropped while its stream writes a piece of its backlog
// is sent at most one more piece: the stream stops at the step after, as
// it does with a backlog it holds, rather than take the rest of the
// queue piece by piece for as long as the client reads (up to
// hub.subscriber_buffer events, while it no longer counts among
// hub.max_subscribers).
func TestHubDroppedSubscriberIsSentNoMorePieces(t *testing.T) {
	skipOnNATS(t, synctestWhy)
	onlyIn(t, false)
	synctest.Test(t, func(t *testing.T) {
		const buffer = 8
		conn, broker := pipeSubscription(t, buffer)
		const stepEnd = "\n\n\r\n"
		readThrough(t, conn, stepEnd)      // the position
		data := strings.Repeat("x", 40000) // two make a piece of 64 KiB or more
		for range 1 + buffer {
			if _, _, err := broker.Publish(stream.Publication{Topic: "a", Data: data}); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}
		// Event 1 is written; 2 and 3 are taken and their write blocks.
		readThrough(t, conn, stepEnd)
		synctest.Wait()
		for broker.Stats().Dropped == 0 {
			if _, _, err := broker.Publish(stream.Publication{Topic: "a", Data: data}); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}
		// Events 4 to 11 wait in the dropped subscriber's queue: four
		// pieces.
		// The response ends (its last chunk) after what the stream sent.
		var rest string
		for buf := make([]byte, 32<<10); !strings.HasSuffix(rest, "\r\n0\r\n\r\n"); {
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("after %d bytes: %v", len(rest), err)
			}
			rest += string(buf[:n])
		}
		// The piece being written, and the one the stream's next step
		// took at most (the queue's first piece after the end, as with a
		// stream that had nothing left to send when it was dropped).
		if ids := strings.Count(rest, "id: "); ids > 4 {
			t.Errorf("after the drop the stream sent %d events, want the piece being written and one more at most (4)", ids)
		}
	})
}

// A live backlog still being sent ends at its next step when the handler
// closes, as a replay does (TestAReplayInProgressEndsAtItsNextStep): the
// stream takes its queue a piece at a time, and went on taking the
// pieces of an ended subscription's queue until the client had read them
// all, which shutdown waited for. Over a real socket, in either
// transport.
func TestALiveBacklogEndsAtItsNextStepOnClose(t *testing.T) {
	const events, size = 400, 60000
	opts, broker := hubOptions(t, stream.MemoryOptions{SubscriberBuffer: events, HistorySize: 1000, HistoryMaxBytes: 32 << 20})
	ts := newTestServer(t, opts)
	conn := ts.dial(t)
	if _, err := io.WriteString(conn, "GET /api/v1/events?topic=a HTTP/1.1\r\nHost: ssehub\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("answer %v, %v; want a stream", resp, err)
	}
	// 24 MB queued: far more than the socket buffers hold, so the stream
	// is blocked in a piece when the handler closes.
	publishN(t, broker, "a", strings.Repeat("x", size), events)
	ts.h.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		t.Fatalf("after %d bytes: %v, want the stream to end", n, err)
	}
	if backlog := int64(events) * size; n > backlog/2 {
		t.Errorf("read %d bytes of a %d-byte backlog after the close: it went on", n, backlog)
	}
	ts.waitReturned(t, "/api/v1/events")
}

// pipeSubscription opens, in a synctest bubble, a hub subscription to
// topic a with a queue of buffer events over net.Pipe, which holds
// nothing: a write its client does not read stays blocked, for good
// (stream.write_timeout an hour). The test's end closes it all.
func pipeSubscription(t *testing.T, buffer int) (net.Conn, testBroker) {
	t.Helper()
	opts, broker := hubOptions(t, stream.MemoryOptions{SubscriberBuffer: buffer})
	opts.Stream.WriteTimeout = time.Hour
	h := New(opts)
	t.Cleanup(h.Close)
	ln := newPipeListener()
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	conn, err := ln.dial(t.Context(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if _, err := io.WriteString(conn, "GET /api/v1/events?topic=a HTTP/1.1\r\nHost: ssehub\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return conn, broker
}

// A detached stream learns that its connection ended from its Conn, which
// looks at the connection between two steps: a stream that goes on with
// no wait, as through a replay, ends without a reason of its own. What
// the connection's end saw (StreamOptions.StoppedReading, here saying
// yes to every connection) must still make it a client that stopped
// reading, as it does for a stream that learns it while waiting. The
// client half-closes its connection during the replay: it reads as gone.
func TestDetachedStreamEndedBetweenStepsHeedsStoppedReading(t *testing.T) {
	if !testDetached {
		t.Skip("the detached transport's Conn looks at the connection between steps")
	}
	opts, broker := hubOptions(t, stream.MemoryOptions{FirstID: 1, HistorySize: 4000, HistoryMaxBytes: 64 << 20})
	opts.Stream.StoppedReading = func(net.Conn) bool { return true }
	ts := newTestServer(t, opts)
	data := strings.Repeat("x", 1000)
	for range 3000 {
		if _, _, err := broker.Publish(stream.Publication{Topic: "a", Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "GET /api/v1/events?topic=a HTTP/1.1\r\nHost: ssehub\r\nLast-Event-ID: 1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, len("HTTP/1.1 200"))
	if _, err := io.ReadFull(conn, head); err != nil || string(head) != "HTTP/1.1 200" {
		t.Fatalf("answer %q, %v; want a stream", head, err)
	}
	// The replay, 3 MB, is under way; the client reads it on.
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Fatal(err)
	}
	ts.waitReturned(t, "/api/v1/events")
	waitMetrics(t, ts, []string{
		`ssehub_streams_ended_total{reason="write_failed"} 1`,
		`ssehub_streams_ended_total{reason="client_gone"} 0`,
	})
}
