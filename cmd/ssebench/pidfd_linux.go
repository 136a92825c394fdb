package main

import (
	"errors"

	"golang.org/x/sys/unix"
)

// processHandle refers to one process, not to its pid, which the kernel
// gives to a later process once that one exited and was reaped.
type processHandle struct {
	fd int // a pidfd; -1 where the kernel has none (before Linux 5.3)
}

// openProcess returns a handle on process pid as it is now.
func openProcess(pid int) processHandle {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return processHandle{fd: -1}
	}
	return processHandle{fd: fd}
}

// exited reports whether the process has exited and was reaped, so that
// its pid may be another process's. Without a pidfd it cannot tell, and
// says no.
func (h processHandle) exited() bool {
	if h.fd < 0 {
		return false
	}
	return errors.Is(unix.PidfdSendSignal(h.fd, 0, nil, 0), unix.ESRCH)
}

func (h processHandle) close() {
	if h.fd >= 0 {
		_ = unix.Close(h.fd)
	}
}
