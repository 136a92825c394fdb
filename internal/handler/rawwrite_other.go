//go:build !linux

package handler

import (
	"net"
	"syscall"
)

// rawConnOf returns nil: raw writes (rawwrite_linux.go) are for Linux.
func rawConnOf(net.Conn) syscall.RawConn { return nil }

func rawWrite(syscall.RawConn, []byte) error { panic("unreachable") }
