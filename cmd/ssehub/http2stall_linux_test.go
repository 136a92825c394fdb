package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"golang.org/x/sys/unix"
)

// TestHTTP2ClientThatStopsReadingIsDropped: an HTTP/2 client that stops
// reading its connection altogether, not one stream, while its kernel
// still acknowledges (a zero window), is dropped within about
// stream.write_timeout, its streams with it, where no TCP_USER_TIMEOUT
// ends the connection (every system but Linux; the test turns it off).
// A stream's write deadline resets only that stream, with a RST_STREAM
// that cannot be sent through the full connection: the stream, its slot
// and its connection were held until the client read again.
func TestHTTP2ClientThatStopsReadingIsDropped(t *testing.T) {
	cfg := hubTestConfig()
	cfg.Server.H2C = true
	cfg.Server.ShutdownTimeout = time.Second
	cfg.Stream.WriteTimeout = time.Second
	closed := make(chan string, 100)
	base, _ := startMain(t, cfg, func(m *Main) {
		m.connState = func(c net.Conn, state http.ConnState) {
			switch state {
			case http.StateNew:
				// As on a system without TCP_USER_TIMEOUT; and a small
				// send buffer, filled by a few events.
				raw, err := c.(syscall.Conn).SyscallConn()
				if err != nil {
					t.Error(err)
					return
				}
				if err := raw.Control(func(fd uintptr) {
					if err := unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 0); err != nil {
						t.Error(err)
					}
				}); err != nil {
					t.Error(err)
				}
				if err := c.(*net.TCPConn).SetWriteBuffer(4096); err != nil {
					t.Error(err)
				}
			case http.StateClosed:
				closed <- c.RemoteAddr().String()
			}
		}
	})
	addr := strings.TrimPrefix(base, "http://")

	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096)
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	conn, err := dialer.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	// Windows wide open: only the connection itself holds the server's
	// bytes back.
	const window = 1<<31 - 1
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: window}); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteWindowUpdate(0, window-65535); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range []hpack.HeaderField{
		{Name: ":method", Value: http.MethodGet},
		{Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: "ssehub.test"},
		{Name: ":path", Value: "/api/v1/events?topic=stalled"},
	} {
		if err := enc.WriteField(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	// Read up to the stream's first bytes, its retry field: the
	// subscription is then registered. From here on the client reads
	// nothing.
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for started := false; !started; {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the stream's start: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := fr.WriteSettingsAck(); err != nil {
					t.Fatal(err)
				}
			}
		case *http2.MetaHeadersFrame:
			if status := f.PseudoValue("status"); status != "200" {
				t.Fatalf("subscribe: %s", status)
			}
		case *http2.DataFrame:
			started = f.StreamID == 1
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			t.Fatalf("subscribe: %v", f)
		}
	}

	// 1.2 MB is far more than the client's receive buffer and the
	// server's send buffer hold: the connection's writes block.
	data := strings.Repeat("b", 60000)
	for i := range 20 {
		if status, answer := publishOverHTTP(t, base, hubTestToken, "stalled", data); status != http.StatusCreated {
			t.Fatalf("publish %d: %d %s", i, status, answer)
		}
	}
	start := time.Now()
	deadline := time.After(10 * cfg.Stream.WriteTimeout)
	for done := false; !done; {
		select {
		case remote := <-closed:
			done = remote == conn.LocalAddr().String()
		case <-deadline:
			t.Fatalf("the connection of a client that stopped reading was still open %v after its last publish; stream.write_timeout %v",
				time.Since(start), cfg.Stream.WriteTimeout)
		}
	}
	t.Logf("connection closed %v after the last publish", time.Since(start))
	waitStreams(t, http.DefaultClient, base, 0)
	if n := metricValue(t, base, `ssehub_streams_ended_total{reason="write_failed"}`); n != 1 {
		t.Errorf("%v streams ended write_failed, want the stalled one", n)
	}
}
