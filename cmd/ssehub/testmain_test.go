package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ssehub/ssehub/internal/testpass"
)

// buildsPrefix starts the name of goBuild's folder in the temporary
// directory, followed by the pid of the process that made it and a dash.
const buildsPrefix = "ssehub-test-bin-pid"

// removeStaleBuilds removes the folders of goBuild in tmp whose process is
// gone (testpass.RemoveStale): TestMain removes its own when it returns,
// but a test binary killed (by go test at its -timeout, by a signal)
// cannot, and each left one of some 30 MB. The folder of a process still running (another package's
// tests, another run at the same time) is kept.
func removeStaleBuilds(tmp string) {
	testpass.RemoveStale(tmp, buildsPrefix, os.RemoveAll)
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

// TestStaleBuildsAreRemoved checks removeStaleBuilds
// (testpass.CheckRemovesStale).
func TestStaleBuildsAreRemoved(t *testing.T) {
	testpass.CheckRemovesStale(t, buildsPrefix, removeStaleBuilds)
}

// TestStaleDockerdFoldersAreRemoved checks removeStaleDockerds in a
// temporary directory of its own: a folder of a test process that is gone
// is removed, the process its pid file names killed first when its command
// line names the folder (a dockerd left running), and left alone when not
// (its pid used again); this process's folder and a running one's are
// kept.
func TestStaleDockerdFoldersAreRemoved(t *testing.T) {
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
	dir := func(pid int, suffix string) string {
		d := filepath.Join(tmp, fmt.Sprintf("%s%d-%s", dockerdPrefix, pid, suffix))
		if err := os.MkdirAll(filepath.Join(d, "exec/containerd"), 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	writePid := func(path string, pid int) {
		if err := os.WriteFile(path, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A stand-in for a dockerd left running: its command line names its folder.
	left := dir(gone.Process.Pid, "1")
	leftLog := filepath.Join(left, "dockerd.log")
	if err := os.WriteFile(leftLog, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	leftDockerd := exec.Command("tail", "-f", leftLog)
	if err := leftDockerd.Start(); err != nil {
		t.Fatal(err)
	}
	leftExit := make(chan struct{})
	go func() { _ = leftDockerd.Wait(); close(leftExit) }()
	t.Cleanup(func() { _ = leftDockerd.Process.Kill(); <-leftExit })
	writePid(filepath.Join(left, "dockerd.pid"), leftDockerd.Process.Pid)
	// A pid file naming another process (the pid used again).
	reused := dir(gone.Process.Pid, "2")
	writePid(filepath.Join(reused, "exec/containerd/containerd.pid"), running.Process.Pid)
	own := dir(os.Getpid(), "3")
	other := dir(running.Process.Pid, "4")

	removeStaleDockerds(tmp)
	for d, kept := range map[string]bool{left: false, reused: false, own: true, other: true} {
		_, err := os.Stat(d)
		if exists := err == nil; exists != kept {
			t.Errorf("%s: exists %v, want %v (%v)", filepath.Base(d), exists, kept, err)
		}
	}
	if !processExited(leftDockerd.Process.Pid) {
		t.Error("the process left running on a stale folder was not killed")
	}
	if processExited(running.Process.Pid) {
		t.Error("a process the stale folder's pid file named, but not running on it, was killed")
	}
}
