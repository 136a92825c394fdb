package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ssehub/ssehub/internal/testpass"
)

// buildsPrefix starts the name of goBuild's folder in the temporary
// directory, followed by the pid of the process that made it and a dash.
const buildsPrefix = "ssehub-test-bin-pid"

// removeStaleBuilds removes the folders of goBuild in tmp whose process is
// gone: TestMain removes its own when it returns, but a test binary killed
// (by go test at its -timeout, by a signal) cannot, and each left one of
// some 30 MB. The folder of a process still running (another package's
// tests, another run at the same time) is kept.
func removeStaleBuilds(tmp string) {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), buildsPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		digits, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(digits)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() || processRuns(pid) {
			continue
		}
		_ = os.RemoveAll(filepath.Join(tmp, e.Name()))
	}
}

// processRuns reports whether a process of that pid runs, or may: only
// one known to be gone is not.
func processRuns(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	return !errors.Is(p.Signal(syscall.Signal(0)), os.ErrProcessDone)
}

// TestTimeoutCoversBothPasses checks that TestMain's two passes share
// -timeout (testpass.CheckTimeoutCoversPasses).
func TestTimeoutCoversBothPasses(t *testing.T) {
	if testTransport != "gin" {
		t.Skip("a test of TestMain: runs in the first pass")
	}
	testpass.CheckTimeoutCoversPasses(t, "TestTimeoutProbe")
}

// TestTimeoutProbe is the test TestTimeoutCoversBothPasses runs: 1.2 s in
// each pass.
func TestTimeoutProbe(t *testing.T) {
	testpass.Probe(t)
}

// TestStaleBuildsAreRemoved checks removeStaleBuilds in a temporary
// directory of its own: the folder of a process that is gone is removed,
// this process's, a running one's (the test's own child, still running),
// and any other folder are kept.
func TestStaleBuildsAreRemoved(t *testing.T) {
	tmp := t.TempDir()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	running := exec.Command("sleep", "600")
	if err := running.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = running.Process.Kill(); _ = running.Wait() })
	names := map[string]bool{ // kept
		fmt.Sprintf("%s%d-123", buildsPrefix, gone.Process.Pid):    false,
		fmt.Sprintf("%s%d-456", buildsPrefix, os.Getpid()):         true,
		fmt.Sprintf("%s%d-789", buildsPrefix, running.Process.Pid): true,
		"ssehub-test-bin-pidx-1":                                   true,
		"ssehub-other":                                             true,
	}
	for name := range names {
		if err := os.MkdirAll(filepath.Join(tmp, name, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	removeStaleBuilds(tmp)
	for name, kept := range names {
		_, err := os.Stat(filepath.Join(tmp, name))
		if exists := err == nil; exists != kept {
			t.Errorf("%s: exists %v, want %v (%v)", name, exists, kept, err)
		}
	}
}
