// Package testpass is for tests only: a TestMain that runs its package's
// tests in several passes (testing.M.Run once per transport or broker)
// gives them one -timeout between them.
//
// testing.M.Run starts its alarm anew at each call, so each pass had the
// whole of go test's -timeout: a run slowed by a loaded machine went on
// past it, and go test, which kills the binary a minute after -timeout,
// ended it with only a SIGQUIT dump, not the panic that names the tests
// still running, nor TestMain's cleanup.
package testpass

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Timeout is go test's -timeout, shared by a TestMain's passes.
type Timeout struct {
	start   time.Time
	timeout time.Duration // 0: none
}

// Start reads -timeout, after flag.Parse, and starts counting it.
func Start() *Timeout {
	timeout := flag.Lookup("test.timeout").Value.(flag.Getter).Get().(time.Duration)
	return &Timeout{start: time.Now(), timeout: timeout}
}

// Next sets -timeout to what is left of it for the pass about to run, or
// returns an error that says none is.
func (t *Timeout) Next() error {
	left, err := remaining(t.timeout, time.Since(t.start))
	if err != nil {
		return err
	}
	return flag.Set("test.timeout", left.String())
}

// remaining is what is left of timeout elapsed into the run (0: none), or an
// error when nothing is.
func remaining(timeout, elapsed time.Duration) (time.Duration, error) {
	if timeout <= 0 {
		return 0, nil
	}
	left := timeout - elapsed
	if left <= 0 {
		return 0, fmt.Errorf("go test's -timeout %v has passed: the passes before took %v", timeout, elapsed.Round(time.Millisecond))
	}
	return left, nil
}

// probeEnv is set in the environment of the run CheckTimeoutCoversPasses
// starts, to the name of the probe it runs.
const probeEnv = "SSEHUB_TEST_TIMEOUT_PROBE"

// probeTimeout is the -timeout of that run, and probePass what its probe
// sleeps in each pass it counts: two such passes take more than it.
const (
	probeTimeout = 2 * time.Second
	probePass    = 1200 * time.Millisecond
)

// CheckTimeoutCoversPasses runs the test binary again with -timeout 2s,
// and only probe, a test that calls Probe in at least two of TestMain's
// passes: 2.4 s in all, so the run must fail, with the panic of testing's
// alarm ("test timed out"). With -timeout given to each pass whole
// (Timeout.Next not called, or setting it whole), it passed. The caller
// runs it in one pass only; in the run it starts, it is skipped.
func CheckTimeoutCoversPasses(t *testing.T, probe string) {
	t.Helper()
	if os.Getenv(probeEnv) != "" {
		t.Skip("in the run this test starts")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+probe+"$", "-test.timeout="+probeTimeout.String(), "-test.count=1")
	cmd.Env = append(os.Environ(), probeEnv+"="+probe)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("the run with -timeout %v: %v, want it to fail\n%s", probeTimeout, err, out)
	}
	if !strings.Contains(string(out), "panic: test timed out after") {
		t.Fatalf("the run with -timeout %v failed without testing's timeout panic:\n%s", probeTimeout, out)
	}
}

// Probe is the body of the probe CheckTimeoutCoversPasses runs: in that
// run, it sleeps 1.2 s, a pass that takes most of -timeout (the sleep is
// the scenario, not a wait for something to happen); elsewhere it skips t.
func Probe(t *testing.T) {
	t.Helper()
	if os.Getenv(probeEnv) != t.Name() {
		t.Skip("run by CheckTimeoutCoversPasses")
	}
	time.Sleep(probePass)
}
