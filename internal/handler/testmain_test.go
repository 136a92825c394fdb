package handler

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestTimeoutCoversEveryPass runs this test binary again with -timeout
// 2s, and only the test below, which sleeps 1.2 s in each of the passes
// on the memory broker: 2.4 s in the first two, so the run must fail, with
// the panic of testing's alarm ("test timed out"). With -timeout given to
// each pass whole, it passed. The sleep is the scenario (a pass that
// takes most of -timeout), not a wait for something to happen.
func TestTimeoutCoversEveryPass(t *testing.T) {
	if os.Getenv("SSEHUB_TEST_TIMEOUT_PROBE") != "" {
		t.Skip("in the run this test starts")
	}
	if testDetached || testNATS != nil {
		t.Skip("a test of TestMain: runs in the first pass")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestTimeoutProbe$", "-test.timeout=2s", "-test.count=1")
	cmd.Env = append(os.Environ(), "SSEHUB_TEST_TIMEOUT_PROBE=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("the run with -timeout 2s: %v, want it to fail\n%s", err, out)
	}
	if !strings.Contains(string(out), "panic: test timed out after") {
		t.Fatalf("the run with -timeout 2s failed without testing's timeout panic:\n%s", out)
	}
}

// TestTimeoutProbe is the test TestTimeoutCoversEveryPass runs.
func TestTimeoutProbe(t *testing.T) {
	if os.Getenv("SSEHUB_TEST_TIMEOUT_PROBE") == "" {
		t.Skip("run by TestTimeoutCoversEveryPass")
	}
	if testNATS == nil {
		time.Sleep(1200 * time.Millisecond)
	}
}
