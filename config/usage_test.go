package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestUsageDoesNotGiveTheBuiltInValueAsTheFlagsDefault checks the help's
// lines for the flags that set a key: without the flag, the key's value is
// the file's or the variable's, the built-in one only without either. The
// help said `(default ":8111")` for --addr whatever the file and the
// environment set, so a user with SSEHUB_SERVER_ADDR=:9000 read that the
// server would listen on :8111 without --addr.
func TestUsageDoesNotGiveTheBuiltInValueAsTheFlagsDefault(t *testing.T) {
	env := map[string]string{"SSEHUB_SERVER_ADDR": ":9000", "SSEHUB_LOG_LEVEL": "debug"}
	_, err := Load([]string{"--config", os.DevNull, "-h"}, func(k string) string { return env[k] })
	var help *HelpError
	if !errors.As(err, &help) {
		t.Fatalf("err %v, want a *HelpError", err)
	}
	for _, f := range flagKeys() {
		var line string
		for l := range strings.Lines(help.Usage) {
			if strings.Contains(l, "--"+f.flag+" ") {
				line = l
			}
		}
		if line == "" {
			t.Fatalf("no line for --%s in:\n%s", f.flag, help.Usage)
		}
		if strings.Contains(line, "(default ") {
			t.Errorf("--%s: %q gives the built-in value as the default, which the file or the environment may override", f.flag, line)
		}
		for _, want := range []string{f.key, EnvName(f.key), "built-in"} {
			if !strings.Contains(line, want) {
				t.Errorf("--%s: %q does not name %s", f.flag, line, want)
			}
		}
	}
}
