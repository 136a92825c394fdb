package stream_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

func TestEventAppendTo(t *testing.T) {
	tests := []struct {
		name string
		ev   stream.Event
		want string
	}{
		{"zero value writes nothing", stream.Event{}, ""},
		{"data", stream.Event{Data: "hello"}, "data: hello\n\n"},
		{
			"every field",
			stream.Event{ID: "7", Type: "tick", Data: "x", Retry: 3 * time.Second, Comment: "hb"},
			": hb\nretry: 3000\nid: 7\nevent: tick\ndata: x\n\n",
		},
		{"data split on LF", stream.Event{Data: "a\nb"}, "data: a\ndata: b\n\n"},
		{"data split on CR", stream.Event{Data: "a\rb"}, "data: a\ndata: b\n\n"},
		{"data split on CRLF", stream.Event{Data: "a\r\nb"}, "data: a\ndata: b\n\n"},
		{"data split on mixed line ends", stream.Event{Data: "a\rb\nc\r\nd"}, "data: a\ndata: b\ndata: c\ndata: d\n\n"},
		{"LF then CR is two line ends", stream.Event{Data: "a\n\rb"}, "data: a\ndata: \ndata: b\n\n"},
		{"CRLF CRLF keeps the empty line", stream.Event{Data: "a\r\n\r\nb"}, "data: a\ndata: \ndata: b\n\n"},
		{"trailing newline", stream.Event{Data: "a\n"}, "data: a\ndata: \n\n"},
		{"data of one newline", stream.Event{Data: "\n"}, "data: \ndata: \n\n"},
		{"leading space in data is kept", stream.Event{Data: " x"}, "data:  x\n\n"},
		{"colon in data", stream.Event{Data: "a: b"}, "data: a: b\n\n"},
		{"empty data with id", stream.Event{ID: "1"}, "id: 1\ndata: \n\n"},
		{"empty data with type", stream.Event{Type: "ping"}, "event: ping\ndata: \n\n"},
		{"leading space in id is kept", stream.Event{ID: " 1", Data: "x"}, "id:  1\ndata: x\n\n"},
		{"comment only", stream.Event{Comment: "ping"}, ": ping\n\n"},
		{"empty comment line", stream.Event{Comment: "\n"}, ": \n: \n\n"},
		{"multi-line comment", stream.Event{Comment: "a\r\nb\rc", Data: "x"}, ": a\n: b\n: c\ndata: x\n\n"},
		{"retry only", stream.Event{Retry: 1500 * time.Millisecond}, "retry: 1500\n\n"},
		{"retry truncated to milliseconds", stream.Event{Retry: 2*time.Millisecond - 1}, "retry: 1\n\n"},
		{"positive retry under a millisecond", stream.Event{Retry: 500 * time.Microsecond}, "retry: 1\n\n"},
		{"largest retry", stream.Event{Retry: time.Duration(1<<63 - 1)}, "retry: 9223372036854\n\n"},
		{"data with NUL is allowed", stream.Event{Data: "a\x00b"}, "data: a\x00b\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("prev")
			got, err := tt.ev.AppendTo(prefix)
			if err != nil {
				t.Fatalf("AppendTo: %v", err)
			}
			if !bytes.HasPrefix(got, []byte("prev")) {
				t.Fatalf("AppendTo overwrote dst: %q", got)
			}
			if s := string(got[len(prefix):]); s != tt.want {
				t.Errorf("AppendTo = %q, want %q", s, tt.want)
			}
			var buf bytes.Buffer
			n, err := tt.ev.WriteTo(&buf)
			if err != nil || n != int64(len(tt.want)) || buf.String() != tt.want {
				t.Errorf("WriteTo = %d, %v, %q; want %d, nil, %q", n, err, buf.String(), len(tt.want), tt.want)
			}
		})
	}
}

func TestEventAppendToInvalid(t *testing.T) {
	tests := []struct {
		name string
		ev   stream.Event
		want error
	}{
		{"id with CR", stream.Event{ID: "1\r", Data: "x"}, stream.ErrInvalidField},
		{"id with LF", stream.Event{ID: "1\ndata: injected", Data: "x"}, stream.ErrInvalidField},
		{"id with NUL", stream.Event{ID: "1\x00", Data: "x"}, stream.ErrInvalidField},
		{"type with CR", stream.Event{Type: "a\rb", Data: "x"}, stream.ErrInvalidField},
		{"type with LF", stream.Event{Type: "a\n", Data: "x"}, stream.ErrInvalidField},
		{"type with NUL", stream.Event{Type: "\x00", Data: "x"}, stream.ErrInvalidField},
		{"negative retry", stream.Event{Retry: -time.Millisecond, Data: "x"}, stream.ErrInvalidRetry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.ev.Validate(); !errors.Is(err, tt.want) {
				t.Errorf("Validate = %v, want %v", err, tt.want)
			}
			dst := make([]byte, 4, 64)
			copy(dst, "prev")
			got, err := tt.ev.AppendTo(dst)
			if !errors.Is(err, tt.want) {
				t.Errorf("AppendTo error = %v, want %v", err, tt.want)
			}
			if string(got) != "prev" || string(dst[:cap(dst)][4:8]) != "\x00\x00\x00\x00" {
				t.Errorf("AppendTo changed dst: %q", dst[:cap(dst)])
			}
			var buf bytes.Buffer
			n, err := tt.ev.WriteTo(&buf)
			if !errors.Is(err, tt.want) || n != 0 || buf.Len() != 0 {
				t.Errorf("WriteTo = %d, %v and wrote %q; want 0, %v, nothing", n, err, buf.String(), tt.want)
			}
		})
	}
}

// TestEventErrorNamesField checks that the error says which field is bad.
func TestEventErrorNamesField(t *testing.T) {
	for _, tt := range []struct {
		ev   stream.Event
		want string
	}{
		{stream.Event{ID: "a\nb"}, `id "a\nb"`},
		{stream.Event{Type: "a\nb"}, `event "a\nb"`},
		{stream.Event{Retry: -1}, "retry -1ns"},
	} {
		if err := tt.ev.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want it to name %s", tt.ev, err, tt.want)
		}
	}
}

type failWriter struct{ err error }

func (w failWriter) Write(p []byte) (int, error) { return 0, w.err }

func TestEventWriteToReturnsWriteError(t *testing.T) {
	errBroken := errors.New("broken pipe")
	ev := stream.Event{Data: "x"}
	if n, err := ev.WriteTo(failWriter{errBroken}); !errors.Is(err, errBroken) || n != 0 {
		t.Errorf("WriteTo = %d, %v; want 0, %v", n, err, errBroken)
	}
}

// TestEventAppendToLinearInCRs: data whose lines end with lone CRs costs
// what the same data with LFs costs, not time quadratic in its size. A
// publish encodes its event under the broker's lock, so data of 1 Mi CRs
// (a 2 MiB JSON string of "\r" escapes) stopped the whole hub for 10 s,
// and hub.max_event_bytes allows 16 MiB. Both encodings below write the same
// frame; each is timed at its best of three, in CPU time (cpuCost), and the
// CRs may cost ten times the LFs at most (they cost a hundred times and
// more before).
func TestEventAppendToLinearInCRs(t *testing.T) {
	const n = 512 << 10
	best := func(data string) time.Duration {
		dst := make([]byte, 0, 8*n)
		var d time.Duration
		for i := range 3 {
			var frame []byte
			var err error
			took := cpuCost(t, func() { frame, err = (&stream.Event{ID: "1", Data: data}).AppendTo(dst[:0]) })
			if err != nil || len(frame) != len("id: 1\n")+(n+1)*len("data: \n")+1 {
				t.Fatalf("AppendTo: %d bytes, %v", len(frame), err)
			}
			if i == 0 || took < d {
				d = took
			}
		}
		return d
	}
	lf := best(strings.Repeat("\n", n))
	if cr := best(strings.Repeat("\r", n)); cr > 10*lf+time.Millisecond {
		t.Errorf("%d CRs took %v to encode, %d LFs %v", n, cr, n, lf)
	}
}
