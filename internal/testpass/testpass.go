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
	"flag"
	"fmt"
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
