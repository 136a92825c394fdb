//go:build !linux

package main

import (
	"net"
	"syscall"
	"time"
)

// userTimeout is nil where the system has no TCP_USER_TIMEOUT: a client
// gone without a word is noticed when the system gives up retransmitting.
func userTimeout(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}

// stoppedReading is nil where the system has no TCP_USER_TIMEOUT: a client
// that stopped reading is dropped when a write blocks past
// stream.write_timeout.
func stoppedReading(time.Duration) func(net.Conn) bool {
	return nil
}
