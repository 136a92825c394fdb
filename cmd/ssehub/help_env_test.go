package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinaryHelpDespiteAMisspeltVariable runs `ssehub -h` (and each
// subcommand's help) with a misspelt SSEHUB_ variable in the environment:
// the help is printed and the exit is 0, as without it. The check of the
// variables, made before the arguments were looked at, refused the help
// with exit 1, so a user could not read the usage until the environment
// was right. Serving with the same environment still stops start-up.
func TestBinaryHelpDespiteAMisspeltVariable(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "ssehub")
	goBuild(t, bin, "./cmd/ssehub")
	env := []string{"SSEHUB_SERVER_ADR=127.0.0.1:0"}
	for _, args := range [][]string{
		{"-h"}, {"--help"}, {"--config", os.DevNull, "-h"}, {"healthcheck", "-h"}, {"token", "--help"}, {"token", "--subscribe", "a", "-h"},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Errorf("ssehub %s: %v, stderr %q: want the help and exit 0", strings.Join(args, " "), err, stderr.String())
			continue
		}
		if !strings.HasPrefix(stdout.String(), "Usage:") {
			t.Errorf("ssehub %s: stdout %q, want the help", strings.Join(args, " "), stdout.String())
		}
	}
	for _, args := range [][]string{{"--config", os.DevNull}, {"--config", os.DevNull, "--bogus", "-h"}} {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "SSEHUB_SERVER_ADR") {
			t.Errorf("ssehub %s: err %v, output %q: want exit 1 naming SSEHUB_SERVER_ADR", strings.Join(args, " "), err, out)
		}
	}
}
