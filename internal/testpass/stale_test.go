package testpass

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// staleCase is a folder for checkRemoveStale: its name, and whether
// RemoveStale keeps it.
type staleCase struct {
	name string
	kept bool
}

// checkRemoveStale makes each case's folder, with a folder in it, in a
// temporary directory of its own, runs RemoveStale on it with prefix and
// os.RemoveAll, and checks which folders are left.
func checkRemoveStale(t *testing.T, prefix string, cases []staleCase) {
	t.Helper()
	tmp := t.TempDir()
	for _, c := range cases {
		if err := os.MkdirAll(filepath.Join(tmp, c.name, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	RemoveStale(tmp, prefix, os.RemoveAll)
	for _, c := range cases {
		_, err := os.Stat(filepath.Join(tmp, c.name))
		if exists := err == nil; exists != c.kept {
			t.Errorf("%s: exists %v, want %v (%v)", c.name, exists, c.kept, err)
		}
	}
}

// TestRemoveStale: the folder of a process that is gone is removed; this
// process's, a running one's, and any other folder are kept
// (CheckRemovesStale).
func TestRemoveStale(t *testing.T) {
	const prefix = "ssehub-stale-pid"
	CheckRemovesStale(t, prefix, func(tmp string) { RemoveStale(tmp, prefix, os.RemoveAll) })
}

// TestMkdirOwnedIsRemovedOnceItsProcessIsGone: MkdirOwned's folder is
// named as RemoveStale looks for, this process's: kept while it runs.
func TestMkdirOwnedIsRemovedOnceItsProcessIsGone(t *testing.T) {
	const prefix = "ssehub-owned-pid"
	dir, err := MkdirOwned(prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	want := fmt.Sprintf("%s%d-", prefix, os.Getpid())
	if name := filepath.Base(dir); len(name) <= len(want) || name[:len(want)] != want || filepath.Dir(dir) != filepath.Clean(os.TempDir()) {
		t.Fatalf("MkdirOwned made %s, want a folder of %s named %s and a suffix", dir, os.TempDir(), want)
	}
	RemoveStale(os.TempDir(), prefix, os.RemoveAll)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("this process's folder was removed: %v", err)
	}
}

// startSleep starts a process that runs until the test ends, and returns
// its pid.
func startSleep(t *testing.T) int {
	t.Helper()
	running := exec.Command("sleep", "600")
	if err := running.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = running.Process.Kill(); _ = running.Wait() })
	return running.Process.Pid
}
