package stream_test

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

// sizedReader returns at most size bytes per Read, so fuzz inputs also
// choose where reads split the stream.
type sizedReader struct {
	s    string
	size int
}

func (r *sizedReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.size)], r.s)
	r.s = r.s[n:]
	return n, nil
}

func newSizedReader(s string, size uint8) io.Reader {
	return &sizedReader{s: s, size: int(size%16) + 1}
}

// normalizeNewlines turns CRLF and lone CR into LF, as a round trip
// through the wire format does.
func normalizeNewlines(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// wireRetry is what a Retry becomes on the wire and back: whole
// milliseconds, truncated, at least 1 ms when positive.
func wireRetry(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return max(d.Truncate(time.Millisecond), time.Millisecond)
}

// FuzzEncodeParse checks that any event AppendTo encodes parses back to
// the same event. "The same" means:
//
//   - ID and Type are equal;
//   - Data and Comment are equal once CRLF and lone CR are turned into LF
//     (the encoder splits them into lines, the parser joins lines with LF);
//   - Retry equals the encoded value truncated to whole milliseconds, and
//     at least 1 ms when positive;
//   - an event with empty ID, Type and Data (a comment or retry only
//     frame) is not dispatched: its Comment and Retry are carried to the
//     next dispatched event, and its Retry sets ReconnectionTime.
//
// A fixed event follows each encoded one, so the test also checks that
// the frame ends where it should and that the id persists.
func FuzzEncodeParse(f *testing.F) {
	f.Add("1", "", "hello", "", int64(0), uint8(0))
	f.Add("", "", "", "heartbeat", int64(0), uint8(0))
	f.Add("", "", "", "", int64(1500*time.Millisecond), uint8(3))
	f.Add("", "", "", "", int64(time.Microsecond), uint8(3))
	f.Add("", "", "", "", int64(1<<63-1), uint8(3))
	f.Add("id", "type", "", "", int64(0), uint8(1))
	f.Add(" 1", " t", " d", " c", int64(time.Second), uint8(2))
	f.Add("", "", "a\r\nb\rc\nd", "x\r\ny", int64(0), uint8(1))
	f.Add("", "", "\r", "\r", int64(0), uint8(0))
	f.Add("", "", "\n", "\n", int64(0), uint8(0))
	f.Add("", "", "\r\n", "", int64(0), uint8(0))
	f.Add("", "", "a\n\rb\r\r\nc", "", int64(0), uint8(0))
	f.Add("", "", "trailing\n", ":colon", int64(0), uint8(4))
	f.Add("", "", "data: injected\n\nid: 9", "", int64(0), uint8(5))
	f.Add("bad\n", "", "x", "", int64(0), uint8(0))
	f.Add("", "bad\x00", "x", "", int64(0), uint8(0))
	f.Add("", "", "x", "", int64(-1), uint8(0))
	f.Add("\xEF\xBB\xBF", "\xff", "\x00", "\xEF\xBB\xBF", int64(0), uint8(0))
	f.Fuzz(func(t *testing.T, id, typ, data, comment string, retry int64, size uint8) {
		ev := stream.Event{ID: id, Type: typ, Data: data, Retry: time.Duration(retry), Comment: comment}
		wire, err := ev.AppendTo(nil)
		if err != nil {
			if ev.Validate() == nil {
				t.Fatalf("AppendTo failed but Validate passed: %v", err)
			}
			if !errors.Is(err, stream.ErrInvalidField) && !errors.Is(err, stream.ErrInvalidRetry) {
				t.Fatalf("AppendTo error %v is not a sentinel", err)
			}
			return
		}
		last := stream.Event{Data: "end"}
		wire, err = last.AppendTo(wire)
		if err != nil {
			t.Fatal(err)
		}

		p := stream.NewParser(newSizedReader(string(wire), size))
		got, err := parseAll(p)
		if !errors.Is(err, io.EOF) {
			t.Fatalf("Next error = %v on %q", err, wire)
		}
		var want []stream.Event
		last.ID = id
		if id != "" || typ != "" || data != "" {
			want = append(want, stream.Event{
				ID:      id,
				Type:    typ,
				Data:    normalizeNewlines(data),
				Retry:   wireRetry(ev.Retry),
				Comment: normalizeNewlines(comment),
			})
		} else {
			last.Retry = wireRetry(ev.Retry)
			last.Comment = normalizeNewlines(comment)
		}
		want = append(want, last)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("wire %q\n got %q\nwant %q", wire, got, want)
		}
		if p.LastEventID() != id || p.ReconnectionTime() != wireRetry(ev.Retry) {
			t.Fatalf("LastEventID, ReconnectionTime = %q, %v; want %q, %v",
				p.LastEventID(), p.ReconnectionTime(), id, wireRetry(ev.Retry))
		}
	})
}

// FuzzParse checks that arbitrary bytes never make the parser panic or
// fail other than with io.EOF, that it agrees with specParse however the
// input is split into reads, and that every event it returns, encoded
// again, parses back to itself. Two kinds of event are excepted: one whose
// type holds NUL, which the encoder refuses, and one with empty ID, Type
// and Data (from "data\n\n"), which the encoder writes as a frame that is
// not dispatched, as its zero value must write nothing.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"data: YHOO\ndata: +2\ndata: 10\n\n",
		": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n",
		"data\n\ndata\ndata\n\ndata:",
		"data:test\n\ndata: test\n\n",
		"\xEF\xBB\xBFdata: a\r\n\r\n",
		"data: a\r\ndata: b\r\n\r\n",
		"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\n",
		"\xEF\xBBdata: a\n\n",
		"data: a\rdata: b\r\rid: 3\r\r",
		"data: a\n\rdata: b\r\r\n\n",
		"retry: 1500\nretry: 15x\nretry:\nretry: 99999999999999999999999\ndata\n\n",
		"id: 1\x00\ndata: a\n\nid\n\n",
		"event: a\x00\ndata: b\n\n",
		": a\n:\n:  b\ndata: c\n\n",
		"event: x\n\ndata: y\n\n",
	} {
		f.Add([]byte(s), uint8(0))
	}
	f.Fuzz(func(t *testing.T, in []byte, size uint8) {
		wantEvents, wantID, wantReconn := specParse(string(in))

		for _, r := range []io.Reader{strings.NewReader(string(in)), newSizedReader(string(in), size)} {
			p := stream.NewParser(r)
			got, err := parseAll(p)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("Next error = %v", err)
			}
			if !reflect.DeepEqual(got, wantEvents) {
				t.Fatalf("events differ from specParse:\n got %q\nwant %q", got, wantEvents)
			}
			if p.LastEventID() != wantID || p.ReconnectionTime() != wantReconn {
				t.Fatalf("LastEventID, ReconnectionTime = %q, %v; want %q, %v",
					p.LastEventID(), p.ReconnectionTime(), wantID, wantReconn)
			}
		}

		for _, ev := range wantEvents {
			if ev.ID == "" && ev.Type == "" && ev.Data == "" {
				continue
			}
			wire, err := ev.AppendTo(nil)
			if err != nil {
				if strings.Contains(ev.Type, "\x00") && errors.Is(err, stream.ErrInvalidField) {
					continue
				}
				t.Fatalf("AppendTo(%q): %v", ev, err)
			}
			got, err := parseAll(stream.NewParser(strings.NewReader(string(wire))))
			if !errors.Is(err, io.EOF) || len(got) != 1 || got[0] != ev {
				t.Fatalf("re-encoded %q as %q, parsed back %q, %v", ev, wire, got, err)
			}
		}
	})
}

// specParse is a plain transcription of the WHATWG steps for a whole
// input, written for clarity rather than speed, with Parser's rules for
// Comment and Retry. FuzzParse compares Parser against it.
func specParse(in string) (events []stream.Event, lastID string, reconn time.Duration) {
	in = strings.TrimPrefix(in, "\xEF\xBB\xBF")
	var data, typ, idBuf string
	var comments []string
	var retry time.Duration
	for {
		i := strings.IndexAny(in, "\r\n")
		if i < 0 {
			return events, lastID, reconn // the rest is an incomplete line
		}
		line := in[:i]
		if strings.HasPrefix(in[i:], "\r\n") {
			in = in[i+2:]
		} else {
			in = in[i+1:]
		}

		switch {
		case line == "":
			lastID = idBuf
			if data == "" {
				typ = ""
				continue
			}
			events = append(events, stream.Event{
				ID:      idBuf,
				Type:    typ,
				Data:    strings.TrimSuffix(data, "\n"),
				Retry:   retry,
				Comment: strings.Join(comments, "\n"),
			})
			data, typ, comments, retry = "", "", nil, 0
		case line[0] == ':':
			comments = append(comments, strings.TrimPrefix(line[1:], " "))
		default:
			name, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch name {
			case "event":
				typ = value
			case "data":
				data += value + "\n"
			case "id":
				if !strings.Contains(value, "\x00") {
					idBuf = value
				}
			case "retry":
				if d, ok := specRetry(value); ok {
					retry, reconn = d, d
				}
			}
		}
	}
}

// specRetry parses a retry value of ASCII digits, clamping it to the
// largest whole number of milliseconds a time.Duration holds.
func specRetry(value string) (time.Duration, bool) {
	if value == "" || strings.Trim(value, "0123456789") != "" {
		return 0, false
	}
	const maxMillis = (1<<63 - 1) / int64(time.Millisecond)
	var ms int64
	for _, c := range value {
		ms = ms*10 + int64(c-'0')
		if ms > maxMillis {
			ms = maxMillis
			break
		}
	}
	return time.Duration(ms) * time.Millisecond, true
}
