package handler

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/internal/testpass"
)

// TestTimeoutCoversEveryPass checks that TestMain's passes share -timeout
// (testpass.CheckTimeoutCoversPasses): the probe takes 1.2 s in each of
// the two passes on the memory broker.
func TestTimeoutCoversEveryPass(t *testing.T) {
	if testDetached || testNATS != nil {
		t.Skip("a test of TestMain: runs in the first pass")
	}
	testpass.CheckTimeoutCoversPasses(t, "TestTimeoutProbe")
}

// TestTimeoutProbe is the test TestTimeoutCoversEveryPass runs: 1.2 s in
// each pass on the memory broker, none on NATS.
func TestTimeoutProbe(t *testing.T) {
	if testNATS != nil {
		t.Skip("the passes on the memory broker are enough")
	}
	testpass.Probe(t)
}

// TestStaleNATSDirsAreRemoved checks removeStaleNATSDirs in a temporary
// directory of its own: the store folder of a test process that is gone
// is removed; this process's, a running one's (the test's own child,
// still running), and any other folder are kept. In the NATS pass, the
// store folder of its server is named as removeStaleNATSDirs looks for,
// for this process: a test binary killed left it behind for good.
func TestStaleNATSDirsAreRemoved(t *testing.T) {
	if testNATS != nil {
		want := fmt.Sprintf("%s%d-", natsDirPrefix, os.Getpid())
		if name := filepath.Base(testNATS.dir); !strings.HasPrefix(name, want) {
			t.Errorf("the NATS pass's store folder is %s, want one named %s and a suffix", name, want)
		}
	}
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
		fmt.Sprintf("%s%d-123", natsDirPrefix, gone.Process.Pid):    false,
		fmt.Sprintf("%s%d-456", natsDirPrefix, os.Getpid()):         true,
		fmt.Sprintf("%s%d-789", natsDirPrefix, running.Process.Pid): true,
		natsDirPrefix + "x-1": true,
		"ssehub-other":        true,
	}
	for name := range names {
		if err := os.MkdirAll(filepath.Join(tmp, name, "jetstream"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	removeStaleNATSDirs(tmp)
	for name, kept := range names {
		_, err := os.Stat(filepath.Join(tmp, name))
		if exists := err == nil; exists != kept {
			t.Errorf("%s: exists %v, want %v (%v)", name, exists, kept, err)
		}
	}
}
