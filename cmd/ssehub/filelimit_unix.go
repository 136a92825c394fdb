//go:build unix

package main

import "syscall"

// openFilesLimit returns how many files the process may open: the soft
// RLIMIT_NOFILE, which Go's runtime raised to the hard one at start; 0
// when unknown.
func openFilesLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	return uint64(l.Cur) // int64 on some systems
}
