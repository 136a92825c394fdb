package main

import (
	"crypto/tls"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// userTimeout returns the ListenConfig.Control that sets TCP_USER_TIMEOUT
// to d on the listening socket (see listen), or nil for d 0.
func userTimeout(d time.Duration) func(network, address string, c syscall.RawConn) error {
	if d <= 0 {
		return nil
	}
	ms := int(d.Milliseconds())
	return func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, ms)
		}); cerr != nil {
			return cerr
		}
		return err
	}
}

// stoppedReading returns the handler's StreamOptions.StoppedReading for
// connections whose TCP_USER_TIMEOUT is unacked (userTimeout), or nil for
// unacked 0. The timeout bounds a closed receive window too (Linux 5.11
// on): a client that stopped reading, though it acknowledges the
// kernel's zero-window probes, has its connection ended that long after
// its window closed, before a write of its stream need block. It reads
// as a client gone or a failed write. Such a connection is closed by the
// kernel (TCP_CLOSE), the client's window is shut with bytes still to
// send, and none was sent for unacked: a client that went away before
// (a reset) was sent data more recently.
func stoppedReading(unacked time.Duration) func(net.Conn) bool {
	if unacked <= 0 {
		return nil
	}
	ms := uint32(unacked.Milliseconds())
	return func(c net.Conn) bool {
		if tc, ok := c.(*tls.Conn); ok {
			c = tc.NetConn()
		}
		sc, ok := c.(syscall.Conn)
		if !ok {
			return false
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			return false
		}
		var info *unix.TCPInfo
		if cerr := raw.Control(func(fd uintptr) {
			info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		}); cerr != nil || err != nil {
			return false
		}
		return info.State == tcpClose && info.Snd_wnd == 0 && info.Notsent_bytes > 0 && info.Last_data_sent >= ms
	}
}

// tcpClose is TCP_CLOSE of the kernel's tcp_states.h: the state of a
// connection the kernel ended.
const tcpClose = 7
