package handler

import (
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
