package stream_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/internal/stream"
)

// BenchmarkEncode encodes a 100-byte event with an id into a reused
// buffer, as the broker does once per published event. It must not
// allocate.
func BenchmarkEncode(b *testing.B) {
	ev := stream.Event{ID: "1234567", Data: strings.Repeat("x", 100)}
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		dst, err = ev.AppendTo(dst[:0])
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(dst)))
}

// loopReader yields buf over and over, never reaching the end.
type loopReader struct {
	buf []byte
	off int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p, r.buf[r.off:])
	r.off = (r.off + n) % len(r.buf)
	return n, nil
}

// BenchmarkParse parses a long stream of events shaped like the hub's: an
// id, a 100-byte data line, and a heartbeat comment every tenth event.
// One op is one event; events/s is reported.
func BenchmarkParse(b *testing.B) {
	var stream1k []byte
	for i := range 1000 {
		ev := stream.Event{ID: strconv.Itoa(i), Data: strings.Repeat("x", 100)}
		if i%10 == 0 {
			stream1k = append(stream1k, ": ping\n\n"...)
		}
		var err error
		if stream1k, err = ev.AppendTo(stream1k); err != nil {
			b.Fatal(err)
		}
	}
	p := stream.NewParser(&loopReader{buf: stream1k})
	b.ReportAllocs()
	b.SetBytes(int64(len(stream1k) / 1000))
	for b.Loop() {
		if _, err := p.Next(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
