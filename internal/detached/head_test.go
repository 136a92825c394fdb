package detached

import (
	"bufio"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestResponseFraming reads a taken-over response byte by byte as a raw
// client receives it: the head, then each write as one chunk and the last
// chunk (HTTP/1.1), or the writes as they are until the connection closes
// (HTTP/1.0). Go's own response reader must then read the same bytes back.
func TestResponseFraming(t *testing.T) {
	writes := []string{"data: one\n\n", "", "data: a longer event\n\n"}
	// The handler's headers include every one the head must set itself,
	// and a value that tries to smuggle in a header of its own.
	hdr := eventStream()
	hdr.Set("Connection", "keep-alive")
	hdr.Set("Content-Length", "99")
	hdr.Set("Transfer-Encoding", "identity")
	hdr.Set("Date", "yesterday")
	hdr.Set("X-Topic", "news\r\nInjected: 1")

	tests := []struct {
		proto    string
		framing  []string // the Transfer-Encoding lines
		wantBody string   // the body as sent
	}{
		{
			proto:    "HTTP/1.1",
			framing:  []string{"Transfer-Encoding: chunked"},
			wantBody: "b\r\ndata: one\n\n\r\n" + "16\r\ndata: a longer event\n\n\r\n" + "0\r\n\r\n",
		},
		{
			proto:    "HTTP/1.0",
			framing:  nil,
			wantBody: "data: one\n\n" + "data: a longer event\n\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.proto, func(t *testing.T) {
			s := serve(t, NewGroup(), hdr, writeAll(writes...))
			conn := dial(t, s.Server, tt.proto)
			raw, err := io.ReadAll(conn) // ends when the server closes
			if err != nil {
				t.Fatal(err)
			}
			if p := recv(t, s.ended, "end of the response"); p != nil {
				t.Fatalf("done(%v), want done(nil)", p)
			}

			head, body, ok := strings.Cut(string(raw), "\r\n\r\n")
			if !ok {
				t.Fatalf("no end of head in %q", raw)
			}
			lines := strings.Split(head, "\r\n")
			if want := tt.proto + " 200 OK"; lines[0] != want {
				t.Errorf("status line %q, want %q", lines[0], want)
			}
			for _, c := range []struct {
				name string
				want []string
			}{
				{"Connection", []string{"Connection: close"}},
				{"Transfer-Encoding", tt.framing},
				{"Content-Length", nil},
				{"Keep-Alive", nil},
				{"Injected", nil},
				{"Content-Type", []string{"Content-Type: text/event-stream"}},
				{"Cache-Control", []string{"Cache-Control: no-store"}},
				{"X-Topic", []string{"X-Topic: news  Injected: 1"}},
			} {
				if got := headerLines(lines[1:], c.name); !slices.Equal(got, c.want) {
					t.Errorf("%s lines %q, want %q", c.name, got, c.want)
				}
			}
			date := headerLines(lines[1:], "Date")
			if len(date) != 1 {
				t.Fatalf("Date lines %q, want one", date)
			}
			if _, err := http.ParseTime(strings.TrimPrefix(date[0], "Date: ")); err != nil {
				t.Errorf("%q: %v", date[0], err)
			}
			if body != tt.wantBody {
				t.Errorf("body %q, want %q", body, tt.wantBody)
			}

			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(raw))), nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("reading the body back: %v", err)
			}
			if want := strings.Join(writes, ""); string(got) != want {
				t.Errorf("body read back %q, want %q", got, want)
			}
			if !resp.Close {
				t.Error("Go's reader would reuse the connection")
			}
		})
	}
}

// TestClientReadsEachWriteAtOnce reads a response with Go's http.Client:
// each write must reach it while the step waits for the client, not when
// the response ends.
func TestClientReadsEachWriteAtOnce(t *testing.T) {
	read := make(chan struct{})
	s := serve(t, NewGroup(), eventStream(), func(c *Conn) func(io.Writer) bool {
		return func(w io.Writer) bool {
			if _, err := io.WriteString(w, "data: first\n\n"); err != nil {
				return false
			}
			select {
			case <-read:
			case <-c.Context().Done():
				return false
			}
			_, _ = io.WriteString(w, "data: second\n\n")
			return false
		}
	})
	resp := get(t, s)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	if !slices.Equal(resp.TransferEncoding, []string{"chunked"}) || !resp.Close {
		t.Errorf("Transfer-Encoding %q, Close %v; want chunked and closed", resp.TransferEncoding, resp.Close)
	}
	first := make([]byte, len("data: first\n\n"))
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("first write: %v", err)
	}
	close(read)
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("rest of the body: %v", err)
	}
	if got := string(first) + string(rest); got != "data: first\n\ndata: second\n\n" {
		t.Errorf("body %q", got)
	}
	if p := recv(t, s.ended, "end of the response"); p != nil {
		t.Fatalf("done(%v), want done(nil)", p)
	}
}

// headerLines returns the lines of a response head that set the header
// name, whatever their case.
func headerLines(lines []string, name string) []string {
	var found []string
	for _, l := range lines {
		k, _, _ := strings.Cut(l, ":")
		if strings.EqualFold(k, name) {
			found = append(found, l)
		}
	}
	return found
}
