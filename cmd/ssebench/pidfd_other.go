//go:build !linux

package main

// processHandle is a stand-in where there is no pidfd: it cannot tell a
// process from a later one with its pid (nor is there a /proc to read).
type processHandle struct{}

func openProcess(int) processHandle { return processHandle{} }

func (processHandle) exited() bool { return false }

func (processHandle) close() {}
