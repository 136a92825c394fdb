//go:build !linux

package main

import (
	"syscall"
	"time"
)

// userTimeout is nil where the system has no TCP_USER_TIMEOUT: a client
// gone without a word is noticed when the system gives up retransmitting.
func userTimeout(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
