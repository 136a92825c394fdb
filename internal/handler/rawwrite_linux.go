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

// rawConnOf returns the connection's raw file descriptor access, or nil
// when it has none (an in-memory or TLS connection).
func rawConnOf(conn net.Conn) syscall.RawConn {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// rawWrite writes p whole to raw, waiting for the socket to take more
// while it is full.
func rawWrite(raw syscall.RawConn, p []byte) error {
	var werr error
	err := raw.Write(func(fd uintptr) bool {
		for len(p) > 0 {
			n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch errno {
			case 0:
				p = p[n:]
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // wait until writable, then call again
			default:
				werr = errno
				return true
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	return werr
}
