package main

import (
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
