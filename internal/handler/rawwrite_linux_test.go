package handler

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return server, client
}

func TestRawWriteWaitsForAFullSocket(t *testing.T) {
	server, client := tcpPair(t)
	w := newRawWriter(server)
	if w == nil {
		t.Fatal("no raw writer for a TCP connection")
	}
	// Far more than the socket buffers hold: the write must wait for
	// the reader, more than once, and lose nothing.
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	done := make(chan error, 1)
	go func() { done <- w.Write(want) }()
	got, err := io.ReadAll(io.LimitReader(client, int64(len(want))))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the %d written", len(got), len(want))
	}
}

func TestRawWriteKeepsTheWriteDeadline(t *testing.T) {
	server, _ := tcpPair(t) // the client never reads
	w := newRawWriter(server)
	if err := server.SetWriteDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	err := w.Write(make([]byte, 64<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write to a client that does not read: %v, want the deadline exceeded", err)
	}
}

func TestRawWriteReportsAClosedPeer(t *testing.T) {
	server, client := tcpPair(t)
	// Linger 0: Close resets the connection, and on loopback the reset
	// has reached the server by the time Close returns.
	if err := client.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	client.Close()
	if err := newRawWriter(server).Write([]byte("data: x\n\n")); err == nil {
		t.Fatal("Write to a reset connection succeeded")
	}
}

func TestNoRawWriterForAConnWithoutFD(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if w := newRawWriter(a); w != nil {
		t.Errorf("newRawWriter(net.Pipe) = %v, want nil", w)
	}
}

func TestRawWriteDoesNotAllocate(t *testing.T) {
	server, client := tcpPair(t)
	go io.Copy(io.Discard, client)
	w := newRawWriter(server)
	p := []byte("id: 1\ndata: Streamed line 1\n\n")
	if n := testing.AllocsPerRun(100, func() {
		if err := w.Write(p); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per write, want 0", n)
	}
}
