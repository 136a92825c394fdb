package handler

import (
	"fmt"
	"os"
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

// TestStaleNATSDirsAreRemoved checks removeStaleNATSDirs
// (testpass.CheckRemovesStale). In the NATS pass, the store folder of its
// server is named as removeStaleNATSDirs looks for, for this process: a
// test binary killed left it behind for good.
func TestStaleNATSDirsAreRemoved(t *testing.T) {
	if testNATS != nil {
		want := fmt.Sprintf("%s%d-", natsDirPrefix, os.Getpid())
		if name := filepath.Base(testNATS.dir); !strings.HasPrefix(name, want) {
			t.Errorf("the NATS pass's store folder is %s, want one named %s and a suffix", name, want)
		}
	}
	testpass.CheckRemovesStale(t, natsDirPrefix, removeStaleNATSDirs)
}
