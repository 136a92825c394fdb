package testpass

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
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

// CheckRemovesStale checks removeStale, a package's RemoveStale of
// prefix, on a temporary directory of the test's own: the folder of a
// process that is gone is removed; this process's, a running one's (the
// test's own child, still running), one with no pid after prefix, and
// any other folder are kept.
func CheckRemovesStale(t *testing.T, prefix string, removeStale func(tmp string)) {
	t.Helper()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	running := exec.Command("sleep", "600")
	if err := running.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = running.Process.Kill(); _ = running.Wait() })
	kept := map[string]bool{
		fmt.Sprintf("%s%d-123", prefix, gone.Process.Pid):    false,
		fmt.Sprintf("%s%d-456", prefix, os.Getpid()):         true,
		fmt.Sprintf("%s%d-789", prefix, running.Process.Pid): true,
		prefix + "x-1": true,
		"ssehub-other": true,
	}
	tmp := t.TempDir()
	for name := range kept {
		if err := os.MkdirAll(filepath.Join(tmp, name, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	removeStale(tmp)
	for name, want := range kept {
		_, err := os.Stat(filepath.Join(tmp, name))
		if exists := err == nil; exists != want {
			t.Errorf("%s: exists %v, want %v (%v)", name, exists, want, err)
		}
	}
}
