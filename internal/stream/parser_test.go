package stream_test

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

// readers are the ways each parser test feeds its input: whole, one byte
// per Read (so every CRLF is split across reads), half of each request,
// and with io.EOF returned together with the last bytes.
var readers = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"OneByte", iotest.OneByteReader},
	{"Half", iotest.HalfReader},
	{"DataErr", iotest.DataErrReader},
}

// parseAll returns every event in input and the error that ended it.
func parseAll(p *stream.Parser) ([]stream.Event, error) {
	var events []stream.Event
	for {
		ev, err := p.Next()
		if err != nil {
			return events, err
		}
		events = append(events, ev)
	}
}

func TestParser(t *testing.T) {
	const maxRetry = time.Duration(1<<63-1) / time.Millisecond * time.Millisecond
	tests := []struct {
		name       string
		in         string
		want       []stream.Event
		lastID     string
		reconn     time.Duration
		maxLine    int
		maxEvent   int
		wantErr    error
		wantOnComm []string
	}{
		// Examples from the WHATWG HTML standard, "Parsing an event stream"
		// and "Interpreting an event stream".
		{
			name: "spec stock ticker: multi-line data",
			in:   "data: YHOO\ndata: +2\ndata: 10\n\n",
			want: []stream.Event{{Data: "YHOO\n+2\n10"}},
		},
		{
			name: "spec first/second/third: id set, reset, last block not ended",
			in:   ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n",
			want: []stream.Event{
				{ID: "1", Data: "first event", Comment: "test stream"},
				{ID: "", Data: "second event"},
			},
			lastID:     "",
			wantOnComm: []string{"test stream"},
		},
		{
			name: "spec first/second/third followed by a blank line",
			in:   ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
			want: []stream.Event{
				{ID: "1", Data: "first event", Comment: "test stream"},
				{ID: "", Data: "second event"},
				{ID: "", Data: " third event"},
			},
		},
		{
			name: "spec empty data, newline data, unterminated block",
			in:   "data\n\ndata\ndata\n\ndata:",
			want: []stream.Event{{Data: ""}, {Data: "\n"}},
		},
		{
			name: "spec data:test and data: test are identical",
			in:   "data:test\n\ndata: test\n\n",
			want: []stream.Event{{Data: "test"}, {Data: "test"}},
		},
		{
			name: "spec event types",
			in:   "event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n",
			want: []stream.Event{
				{Type: "add", Data: "73857293"},
				{Type: "remove", Data: "2153"},
				{Type: "add", Data: "113411"},
			},
		},
		{
			name: "spec messages with and without blank data",
			in:   "data: This is the first message.\n\ndata: This is the second message, it\ndata: has two lines.\n\ndata: This is the third message.\n\n",
			want: []stream.Event{
				{Data: "This is the first message."},
				{Data: "This is the second message, it\nhas two lines."},
				{Data: "This is the third message."},
			},
		},

		// Comments and blank lines.
		{
			name:       "comment heartbeats before an event",
			in:         ":\n\n: ping\n\n:  two spaces\n:no space\ndata: x\n\n",
			want:       []stream.Event{{Data: "x", Comment: "\nping\n two spaces\nno space"}},
			wantOnComm: []string{"", "ping", " two spaces", "no space"},
		},
		{
			name:       "comments only",
			in:         ": a\n\n: b\n\n",
			wantOnComm: []string{"a", "b"},
		},
		{
			name: "comment is reset by dispatch",
			in:   ": a\ndata: 1\n\ndata: 2\n\n",
			want: []stream.Event{{Data: "1", Comment: "a"}, {Data: "2"}},
		},
		{
			name: "blank lines alone dispatch nothing",
			in:   "\n\n\r\n\r\r",
		},
		{
			name: "blank line without data resets the type",
			in:   "event: x\n\ndata: a\n\n",
			want: []stream.Event{{Data: "a"}},
		},

		// Byte order mark.
		{
			name: "BOM at the start is dropped",
			in:   "\xEF\xBB\xBFdata: a\n\n",
			want: []stream.Event{{Data: "a"}},
		},
		{
			name: "only one BOM is dropped",
			in:   "\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n",
			want: []stream.Event{{Data: "b"}},
		},
		{
			name: "BOM after the start is part of the field name",
			in:   "data: a\n\n\xEF\xBB\xBFdata: b\n\n",
			want: []stream.Event{{Data: "a"}},
		},
		{
			name: "partial BOM is not dropped",
			in:   "\xEF\xBBdata: a\n\ndata: b\n\n",
			want: []stream.Event{{Data: "b"}},
		},
		{
			name: "BOM alone",
			in:   "\xEF\xBB\xBF",
		},

		// Fields.
		{
			name: "field without colon has an empty value",
			in:   "event\ndata\n\n",
			want: []stream.Event{{Data: ""}},
		},
		{
			name:   "only one leading space is removed",
			in:     "data:  a\nevent:  t\nid:  1\n\n",
			want:   []stream.Event{{ID: " 1", Type: " t", Data: " a"}},
			lastID: " 1",
		},
		{
			name: "colon in the value is kept",
			in:   "data: a:b: c\n\n",
			want: []stream.Event{{Data: "a:b: c"}},
		},
		{
			name: "unknown and differently cased fields are ignored",
			in:   "foo: bar\nData: x\n data: y\ndata : z\ndata: a\n\n",
			want: []stream.Event{{Data: "a"}},
		},
		{
			name: "the last event field wins",
			in:   "event: a\nevent: b\ndata: x\n\n",
			want: []stream.Event{{Type: "b", Data: "x"}},
		},
		{
			name:   "id persists across events",
			in:     "id: 1\ndata: a\n\ndata: b\n\n",
			want:   []stream.Event{{ID: "1", Data: "a"}, {ID: "1", Data: "b"}},
			lastID: "1",
		},
		{
			name:   "empty id resets it",
			in:     "id: 1\ndata: a\n\nid:\ndata: b\n\n",
			want:   []stream.Event{{ID: "1", Data: "a"}, {ID: "", Data: "b"}},
			lastID: "",
		},
		{
			name:   "id containing NUL is ignored",
			in:     "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",
			want:   []stream.Event{{ID: "1", Data: "a"}, {ID: "1", Data: "b"}},
			lastID: "1",
		},
		{
			name:   "id without data sets the last event ID at the blank line",
			in:     "id: 5\n\n",
			lastID: "5",
		},
		{
			name:   "id in an unterminated frame is dropped",
			in:     "id: 1\n\nid: 5\ndata: x\n",
			lastID: "1",
		},
		{
			name:   "retry in milliseconds",
			in:     "retry: 1500\ndata: a\n\ndata: b\n\n",
			want:   []stream.Event{{Retry: 1500 * time.Millisecond, Data: "a"}, {Data: "b"}},
			reconn: 1500 * time.Millisecond,
		},
		{
			name:   "retry with anything but digits is ignored",
			in:     "retry: 100\n\nretry: 15x\nretry: -1\nretry:  200\nretry: 1.5\nretry: +3\nretry:\nretry\ndata: a\n\n",
			want:   []stream.Event{{Retry: 100 * time.Millisecond, Data: "a"}},
			reconn: 100 * time.Millisecond,
		},
		{
			name:   "retry zero is valid",
			in:     "retry: 100\n\nretry: 0\n\n",
			reconn: 0,
		},
		{
			name:   "retry too large for a Duration is clamped",
			in:     "retry: 99999999999999999999999\ndata: a\n\n",
			want:   []stream.Event{{Retry: maxRetry, Data: "a"}},
			reconn: maxRetry,
		},
		{
			name:   "retry with leading zeros",
			in:     "retry: 000000000000000000000000042\n\n",
			reconn: 42 * time.Millisecond,
		},

		// Line ends.
		{
			name:   "CR line ends",
			in:     "data: a\rdata: b\r\rid: 3\r\r",
			want:   []stream.Event{{Data: "a\nb"}},
			lastID: "3",
		},
		{
			name: "CRLF line ends",
			in:   "data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n",
			want: []stream.Event{{Data: "a\nb"}, {Data: "c"}},
		},
		{
			name: "LF then CR is two line ends",
			in:   "data: a\n\rdata: b\n\n",
			want: []stream.Event{{Data: "a"}, {Data: "b"}},
		},
		{
			name: "CR CR LF is two line ends",
			in:   "data: a\r\r\ndata: b\n\n",
			want: []stream.Event{{Data: "a"}, {Data: "b"}},
		},
		{
			name: "mixed line ends in one stream",
			in:   "data: a\rdata: b\ndata: c\r\n\ndata: d\r\r",
			want: []stream.Event{{Data: "a\nb\nc"}, {Data: "d"}},
		},
		{
			name: "CR at the very end ends the line",
			in:   "data: a\n\r",
			want: []stream.Event{{Data: "a"}},
		},
		{
			name: "NUL in data and type is kept",
			in:   "event: a\x00\ndata: b\x00c\n\n",
			want: []stream.Event{{Type: "a\x00", Data: "b\x00c"}},
		},
		{
			name: "invalid UTF-8 is passed through",
			in:   "data: \xff\xfe\n\n",
			want: []stream.Event{{Data: "\xff\xfe"}},
		},

		// Limits.
		{
			name:    "line of exactly MaxLineBytes",
			in:      "data: 0123\n\n",
			maxLine: 10,
			want:    []stream.Event{{Data: "0123"}},
		},
		{
			name:    "line longer than MaxLineBytes",
			in:      "data: a\n\ndata: 01234\n\n",
			maxLine: 10,
			want:    []stream.Event{{Data: "a"}},
			wantErr: stream.ErrLineTooLong,
		},
		{
			name:    "unterminated line longer than MaxLineBytes",
			in:      "data: 0123456789",
			maxLine: 10,
			wantErr: stream.ErrLineTooLong,
		},
		{
			name:    "comment longer than MaxLineBytes",
			in:      ": 0123456789\r\n",
			maxLine: 10,
			wantErr: stream.ErrLineTooLong,
		},
		{
			name:     "data of exactly MaxEventBytes",
			in:       "data: 123\ndata: 45678\n\n",
			maxEvent: 9,
			want:     []stream.Event{{Data: "123\n45678"}},
		},
		{
			name:     "one line of exactly MaxEventBytes",
			in:       "data: 123456789\n\n",
			maxEvent: 9,
			want:     []stream.Event{{Data: "123456789"}},
		},
		{
			name:     "data longer than MaxEventBytes",
			in:       "data: 1234\ndata: 56789\n\n",
			maxEvent: 9,
			wantErr:  stream.ErrEventTooLong,
		},
		{
			name:       "comments beyond MaxEventBytes are left out of Comment",
			in:         ": 1234\n: 5678\n: 9\ndata: x\n\n",
			maxEvent:   8,
			want:       []stream.Event{{Data: "x", Comment: "1234\n9"}},
			wantOnComm: []string{"1234", "5678", "9"},
		},
		{
			name:       "a comment of exactly MaxEventBytes is kept",
			in:         ": 12345678\ndata: x\n\n",
			maxEvent:   8,
			want:       []stream.Event{{Data: "x", Comment: "12345678"}},
			wantOnComm: []string{"12345678"},
		},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				p := stream.NewParser(rd.wrap(strings.NewReader(tt.in)))
				p.MaxLineBytes = tt.maxLine
				p.MaxEventBytes = tt.maxEvent
				var comments []string
				p.OnComment = func(text string) { comments = append(comments, text) }

				got, err := parseAll(p)
				wantErr := tt.wantErr
				if wantErr == nil {
					wantErr = io.EOF
				}
				if !errors.Is(err, wantErr) {
					t.Fatalf("Next error = %v, want %v", err, wantErr)
				}
				if _, again := p.Next(); !errors.Is(again, err) {
					t.Errorf("Next after %v = %v, want the same error", err, again)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("events:\n got %q\nwant %q", got, tt.want)
				}
				if tt.wantErr != nil {
					return
				}
				if p.LastEventID() != tt.lastID {
					t.Errorf("LastEventID = %q, want %q", p.LastEventID(), tt.lastID)
				}
				if p.ReconnectionTime() != tt.reconn {
					t.Errorf("ReconnectionTime = %v, want %v", p.ReconnectionTime(), tt.reconn)
				}
				if tt.wantOnComm != nil && !reflect.DeepEqual(comments, tt.wantOnComm) {
					t.Errorf("OnComment saw %q, want %q", comments, tt.wantOnComm)
				}
			})
		}
	}
}

// chunkReader returns its chunks one per Read, then io.EOF, so a test
// controls exactly where reads split the stream.
type chunkReader struct {
	chunks []string
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	if r.chunks[0] == "" {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

func TestParserCRLFSplitAcrossReads(t *testing.T) {
	r := &chunkReader{chunks: []string{"data: a\r", "\ndata: b\r", "\n\r", "\nid: 1\r", "\r", "\n", "data: c\r", "\r"}}
	got, err := parseAll(stream.NewParser(r))
	if !errors.Is(err, io.EOF) {
		t.Fatalf("Next error = %v, want io.EOF", err)
	}
	// "\r" + "\n" is one line end each time; the lone "\n" after "\r\r"
	// belongs to the second CR, so no extra blank line appears.
	want := []stream.Event{{Data: "a\nb"}, {ID: "1", Data: "c"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
}

var errMustNotRead = errors.New("read past the end of the frame")

// TestParserDispatchesWithoutReadingAhead checks that a frame ending in CR
// is dispatched at once: the parser must not wait for the next byte to see
// whether an LF follows, or a live stream would stall.
func TestParserDispatchesWithoutReadingAhead(t *testing.T) {
	for _, frame := range []string{"data: a\r\r", "data: a\n\n", "data: a\r\n\r\n", "\xEF\xBB\xBFdata: a\r\r"} {
		r := io.MultiReader(strings.NewReader(frame), iotest.ErrReader(errMustNotRead))
		p := stream.NewParser(r)
		ev, err := p.Next()
		if err != nil || ev.Data != "a" {
			t.Errorf("%q: Next = %+v, %v; want data a", frame, ev, err)
		}
		if _, err := p.Next(); !errors.Is(err, errMustNotRead) {
			t.Errorf("%q: second Next error = %v, want %v", frame, err, errMustNotRead)
		}
	}
}

func TestParserReturnsReadError(t *testing.T) {
	errReset := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader("data: a\n\ndata: b\n"), iotest.ErrReader(errReset))
	p := stream.NewParser(r)
	got, err := parseAll(p)
	if !errors.Is(err, errReset) {
		t.Fatalf("Next error = %v, want %v unwrapped", err, errReset)
	}
	if want := []stream.Event{{Data: "a"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}
}

// endlessReader yields the same byte forever.
type endlessReader byte

func (r endlessReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

func TestParserEndlessLine(t *testing.T) {
	p := stream.NewParser(io.MultiReader(strings.NewReader("data: "), endlessReader('a')))
	if _, err := p.Next(); !errors.Is(err, stream.ErrLineTooLong) {
		t.Errorf("Next error = %v, want ErrLineTooLong", err)
	}
}

func TestParserDefaultMaxLineBytes(t *testing.T) {
	const limit = 1 << 20
	ok := "data: " + strings.Repeat("x", limit-len("data: "))
	p := stream.NewParser(strings.NewReader(ok + "\n\n" + ok + "y\n\n"))
	ev, err := p.Next()
	if err != nil || len(ev.Data) != limit-len("data: ") {
		t.Fatalf("Next on a line of %d bytes = %d bytes of data, %v", limit, len(ev.Data), err)
	}
	if _, err := p.Next(); !errors.Is(err, stream.ErrLineTooLong) {
		t.Errorf("Next on a line of %d bytes: error = %v, want ErrLineTooLong", limit+1, err)
	}
}

// stallingReader returns (0, nil) forever.
type stallingReader struct{}

func (stallingReader) Read([]byte) (int, error) { return 0, nil }

func TestParserNoProgress(t *testing.T) {
	if _, err := stream.NewParser(stallingReader{}).Next(); !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("Next error = %v, want io.ErrNoProgress", err)
	}
}

// TestParserReusesStrings checks that a repeated id and event type do not
// allocate a new string for each event.
func TestParserReusesStrings(t *testing.T) {
	in := strings.Repeat("id: 42\nevent: tick\ndata: x\n\n", 200)
	p := stream.NewParser(strings.NewReader(in))
	if _, err := p.Next(); err != nil { // warm the buffers up
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := p.Next(); err != nil {
			t.Fatal(err)
		}
	})
	// One allocation: the Data string.
	if allocs > 1 {
		t.Errorf("Next allocated %v times per event, want at most 1", allocs)
	}
}

// TestParserLinearInCRs: lines that end with lone CRs parse as fast as
// the same lines ending with LFs. Each CR-terminated line used to search
// everything buffered after it for an LF, which cost time quadratic in the
// buffer's size once a long line had grown it (to MaxLineBytes, 1 MiB by
// default): the events after a 512 KiB line parsed 40 times slower, so a
// stream sent with CRs could stall a client. Both inputs are timed at
// their best of three, in CPU time (cpuCost); the CRs may cost five times
// the LFs at most. The buffer here grows to 4 MiB, so that the quadratic
// cost stands out from the race detector's, which costs the LFs as much
// as the CRs: with a 1 MiB buffer the CRs cost six times the LFs before,
// with 4 MiB twenty times.
func TestParserLinearInCRs(t *testing.T) {
	const events = 1 << 18
	best := func(eol string) time.Duration {
		in := "data: " + strings.Repeat("x", 2<<20) + eol + eol + strings.Repeat("data: x"+eol+eol, events)
		var d time.Duration
		for i := range 3 {
			var got []stream.Event
			var err error
			took := cpuCost(t, func() {
				p := stream.NewParser(strings.NewReader(in))
				p.MaxLineBytes = 4 << 20
				got, err = parseAll(p)
			})
			if !errors.Is(err, io.EOF) || len(got) != events+1 {
				t.Fatalf("%q: %d events, %v", eol, len(got), err)
			}
			if i == 0 || took < d {
				d = took
			}
		}
		return d
	}
	lf := best("\n")
	if cr := best("\r"); cr > 5*lf+time.Millisecond {
		t.Errorf("lines ending with CR took %v to parse, with LF %v", cr, lf)
	}
}
