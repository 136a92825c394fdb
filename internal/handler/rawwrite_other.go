//go:build !linux

package handler

import "net"

// rawWriter is for Linux only (rawwrite_linux.go); elsewhere streams
// write through net.Conn.
type rawWriter struct{}

func newRawWriter(net.Conn) *rawWriter { return nil }

func (*rawWriter) Write([]byte) error { panic("unreachable: newRawWriter returns nil") }
