//go:build linux

package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// fifoWait bounds the wait for a writer of a FIFO given as the YAML file
// (mkfifo, or a pipe through /dev/fd): the writer of a process
// substitution (--config <(envsubst < ssehub.yaml)) is there at once.
var fifoWait = 10 * time.Second

// errNoWriter reports a FIFO that no process opened to write within
// fifoWait.
var errNoWriter = errors.New("a FIFO (named pipe) that nothing opened to write")

// readConfigFile returns the file at path, at most maxConfigBytes and one
// byte more, so that a file longer than maxConfigBytes is told apart.
//
// A FIFO is opened without waiting for a writer: the open(2) that waits
// is no call a signal ends, so `--config FIFO` that nothing wrote to hung
// the start, and SIGTERM and Ctrl-C went unheeded. Its writer is waited
// for, and it is read, in the runtime's poller, which ctx's end stops at
// once: the error then says so, with its cause (the signal). A FIFO that
// no writer opened within fifoWait is an error naming it as one. A
// terminal (--config /dev/stdin, waiting for Ctrl-D) is read in the
// poller too, and ctx's end stops it. A file another process holds a
// lease on is read once the lease is given up (openNonblock).
func readConfigFile(ctx context.Context, path string) ([]byte, error) {
	f, err := openNonblock(ctx, path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	if st.Mode()&fs.ModeNamedPipe == 0 {
		if f.SetReadDeadline(time.Time{}) == nil {
			// In the poller, a terminal (--config /dev/stdin, waiting
			// for Ctrl-D): read there, which ctx's end stops.
			stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Unix(1, 0)) })
			defer stop()
			data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
			if ctx.Err() != nil {
				return nil, fmt.Errorf("stopped reading it: %w", context.Cause(ctx))
			}
			return data, err
		}
		// A file, or a device the poller does not take: read as os.Open
		// would, blocking.
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = syscall.SetNonblock(int(fd), false) }); err != nil {
			return nil, err
		}
		if serr != nil {
			return nil, serr
		}
		return io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	}
	if err := f.SetReadDeadline(time.Now().Add(fifoWait)); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	first, err := waitWriter(rc)
	if err == nil {
		// No bound on a writer that is there: it may be slow to write.
		err = f.SetReadDeadline(time.Time{})
	}
	var data []byte
	if err == nil && ctx.Err() == nil {
		data, err = io.ReadAll(io.LimitReader(io.MultiReader(bytes.NewReader(first), f), maxConfigBytes+1))
	}
	switch {
	case ctx.Err() != nil:
		what := "its writer"
		if first != nil {
			what = "its end"
		}
		return nil, fmt.Errorf("a FIFO (named pipe): stopped waiting for %s: %w", what, context.Cause(ctx))
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, fmt.Errorf("%w in %v: start what writes it first, or give a file", errNoWriter, fifoWait)
	}
	return data, err
}

// waitWriter waits, until the deadline of the FIFO rc reads, for a process
// to open it to write, and returns what it wrote so far, non-nil: the
// FIFO was opened without waiting for one, and a read without a writer
// ends at once, as at the end of what one wrote. A writer that came and
// went without writing is an empty file.
func waitWriter(rc syscall.RawConn) ([]byte, error) {
	buf := make([]byte, 4096)
	var n int
	var rerr error
	ready := func(fd uintptr) bool {
		for {
			n, rerr = syscall.Read(int(fd), buf)
			if !errors.Is(rerr, syscall.EINTR) {
				break
			}
		}
		switch {
		case errors.Is(rerr, syscall.EAGAIN):
			n, rerr = 0, nil // a writer, that has written nothing yet
			return true
		case rerr != nil || n > 0:
			return true
		}
		// No writer: none came yet, or one came and went without
		// writing, which Linux tells with POLLHUP.
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		k, err := unix.Poll(fds, 0)
		return err == nil && k > 0 && fds[0].Revents&unix.POLLHUP != 0
	}
	err := rc.Read(ready)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// One last look: a writer that came without a word wakes no
		// poller.
		var done bool
		if cerr := rc.Control(func(fd uintptr) { done = ready(fd) }); cerr == nil && done {
			err = nil
		}
	}
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, err
	}
	return bytes.Clone(buf[:n]), nil
}
