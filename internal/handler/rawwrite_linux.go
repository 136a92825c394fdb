package handler

import (
	"net"
	"syscall"
	"unsafe"
)

// Why raw writes: net.Conn.Write makes the write(2) a blocking system call
// for the scheduler, which lets another thread take over the goroutine's P
// when the call takes longer than a scheduler tick. A socket write of one
// step to a loopback or LAN peer takes 10–20 µs, about that tick; with
// many streams due at once (grid.go), the runtime would hand the P back
// and forth between threads around almost every write, and keep its
// monitor thread polling. The socket is non-blocking (Go makes every one
// so), so the call never sleeps: made as a raw system call, it keeps the
// P. When the socket buffer is full, the write waits for the socket to
// become writable through the poller, as net.Conn.Write does, and within
// the same write deadline. docs/BENCHMARKS.md measures the gain.

// rawWriter writes to a connection with raw system calls.
type rawWriter struct {
	raw   syscall.RawConn
	write func(fd uintptr) bool // w.writeSome, bound once: no allocation per write
	p     []byte                // what is left to write
	err   error
}

// newRawWriter returns a rawWriter for conn, or nil when conn has no file
// descriptor to write to (an in-memory or TLS connection).
func newRawWriter(conn net.Conn) *rawWriter {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	w := &rawWriter{raw: raw}
	w.write = w.writeSome
	return w
}

// Write writes p whole, waiting in the poller while the socket is full.
func (w *rawWriter) Write(p []byte) error {
	w.p, w.err = p, nil
	err := w.raw.Write(w.write)
	w.p = nil
	if err != nil {
		return err
	}
	return w.err
}

// writeSome writes what it can of w.p to fd. It reports false when the
// socket is full and the poller must wait until it takes more.
func (w *rawWriter) writeSome(fd uintptr) bool {
	for len(w.p) > 0 {
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&w.p[0])), uintptr(len(w.p)))
		switch errno {
		case 0:
			w.p = w.p[n:]
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			w.err = errno
			return true
		}
	}
	return true
}
