package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinaryReportsEachUnknownVariableOnItsLine checks that misspelt
// SSEHUB_ variables, found before the config is read, are reported as
// config problems are: one line each, each saying it is ssehub's. The
// second and later lines came without the "ssehub:" that says whose they
// are.
func TestBinaryReportsEachUnknownVariableOnItsLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "ssehub")
	goBuild(t, bin, "./cmd/ssehub")
	cmd := exec.Command(bin, "--config", "/dev/null")
	cmd.Env = []string{"SSEHUB_SERVER_ADR=127.0.0.1:0", "SSEHUB_SREAM_RETRY=1s", "ssehub_log_level=debug"}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("err %v, want exit 1; output:\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 3 {
		t.Fatalf("output:\n%s\nwant a line for each of the three variables", out)
	}
	for i, want := range []string{"ssehub: SSEHUB_SERVER_ADR: ", "ssehub: SSEHUB_SREAM_RETRY: ", "ssehub: ssehub_log_level: "} {
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("line %q: want it to start with %q", lines[i], want)
		}
	}
}
