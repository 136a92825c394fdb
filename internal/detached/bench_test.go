package detached

import (
	"io"
	"strings"
	"testing"
)

// BenchmarkWrite writes an event-sized step (62 bytes, as a ticker line
// with its id) per operation to a real loopback TCP connection, chunked
// (HTTP/1.1), while the client reads and discards: the system call and
// the framing of one step, which a ticker stream does once per event.
func BenchmarkWrite(b *testing.B) {
	payload := []byte("id: 12\ndata: " + strings.Repeat("x", 47) + "\n\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	done := make(chan struct{})
	s := serve(b, NewGroup(), eventStream(), func(*Conn) func(io.Writer) bool {
		return func(w io.Writer) bool {
			b.ResetTimer()
			for range b.N {
				if _, err := w.Write(payload); err != nil {
					b.Error(err)
					break
				}
			}
			b.StopTimer()
			close(done)
			return false
		}
	})
	conn := dial(b, s.Server, "HTTP/1.1")
	if _, err := io.Copy(io.Discard, conn); err != nil {
		b.Fatal(err)
	}
	<-done
	recv(b, s.ended, "end of the response")
}
