package main

import (
	"bytes"
	"errors"
	"os"
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
	cmd := exec.Command(bin, "--config", os.DevNull)
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

// TestRunNamesTheVariableOfABadValue checks that a bad value set in the
// environment is reported with the variable that set it, which is what
// the user wrote, and a flag's with the flag.
func TestRunNamesTheVariableOfABadValue(t *testing.T) {
	var stdout, stderr bytes.Buffer
	env := map[string]string{"SSEHUB_STREAM_RETRY": "3x"}
	if code := run(t.Context(), []string{"--config", os.DevNull}, func(k string) string { return env[k] }, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if want := "ssehub: stream.retry: invalid duration \"3x\" (use a Go duration such as 15s or 1500ms); set by SSEHUB_STREAM_RETRY\n"; stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	stderr.Reset()
	if code := run(t.Context(), []string{"--config", os.DevNull, "--log-level", "loud"}, func(string) string { return "" }, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if want := "; set by --log-level\n"; !strings.HasSuffix(stderr.String(), want) {
		t.Errorf("stderr %q, want it to end with %q", stderr.String(), want)
	}
}
