package testpass

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// MkdirOwned makes a folder in os.TempDir() named prefix, this process's
// pid, a dash and a random suffix (os.MkdirTemp), for RemoveStale to
// remove on a later run once this process is gone: a test binary killed
// (by go test at its -timeout, by a signal) runs none of its cleanup.
func MkdirOwned(prefix string) (string, error) {
	return os.MkdirTemp("", prefix+strconv.Itoa(os.Getpid())+"-")
}

// RemoveStale calls remove on each folder in tmp named prefix, the pid of
// the process that made it and a dash (MkdirOwned), whose process is gone
// (not this one, nor one that runs or may: ProcessRuns).
func RemoveStale(tmp, prefix string, remove func(dir string) error) {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.IsDir() {
			continue
		}
		digits, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(digits)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() || ProcessRuns(pid) {
			continue
		}
		_ = remove(filepath.Join(tmp, e.Name()))
	}
}

// ProcessRuns reports whether a process of that pid runs, or may: only
// one known to be gone is not, or to have exited, a zombie its parent has
// yet to reap (a signal reaches that one still, and it was taken for
// running: a test binary killed under a parent that had not reaped it
// kept its folders).
func ProcessRuns(pid int) bool {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// The state follows the command name, in parentheses that may
		// hold any byte.
		i := bytes.LastIndexByte(b, ')')
		if i >= 0 && i+2 < len(b) {
			return b[i+2] != 'Z' && b[i+2] != 'X'
		}
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	return !errors.Is(p.Signal(syscall.Signal(0)), os.ErrProcessDone)
}
