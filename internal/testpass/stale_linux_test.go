package testpass

import (
	"fmt"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRemoveStaleOfAZombie: the folder of a process that has exited, a
// zombie its parent has yet to reap, is removed. A signal reaches a
// zombie still, and it was taken for running: the folder of a test
// binary killed under a parent that had not reaped it was kept.
func TestRemoveStaleOfAZombie(t *testing.T) {
	const prefix = "ssehub-stale-pid"
	zombie := exec.Command("true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = zombie.Wait() })
	// Exited, and not reaped (WNOWAIT): a zombie.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, zombie.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if ProcessRuns(zombie.Process.Pid) {
		t.Errorf("ProcessRuns(%d), a zombie: true, want false", zombie.Process.Pid)
	}
	checkRemoveStale(t, prefix, []staleCase{
		{fmt.Sprintf("%s%d-1", prefix, zombie.Process.Pid), false},
		{fmt.Sprintf("%s%d-2", prefix, startSleep(t)), true},
	})
}
