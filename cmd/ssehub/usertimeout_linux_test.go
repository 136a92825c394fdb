package main

import (
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// An accepted connection has TCP_USER_TIMEOUT at what listen was given
// (stream.write_timeout in Run), inherited from the listening socket: a
// client gone without a word is dropped once a heartbeat goes
// unacknowledged that long.
func TestListenSetsTheUserTimeout(t *testing.T) {
	for _, tt := range []struct {
		unacked time.Duration
		want    int // milliseconds; 0 is the system's default
	}{
		{10 * time.Second, 10000},
		{1500 * time.Millisecond, 1500},
		{0, 0},
	} {
		ln, err := listen(t.Context(), "127.0.0.1:0", tt.unacked)
		if err != nil {
			t.Fatal(err)
		}
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := conn.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var got int
		var optErr error
		if err := raw.Control(func(fd uintptr) {
			got, optErr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
		}); err != nil || optErr != nil {
			t.Fatal(err, optErr)
		}
		if got != tt.want {
			t.Errorf("listen with %v: TCP_USER_TIMEOUT %d ms on an accepted connection, want %d", tt.unacked, got, tt.want)
		}
		conn.Close()
		client.Close()
		ln.Close()
	}
}
