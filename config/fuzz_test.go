package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad loads a fuzzed config file, with a fuzzed value in the
// variable of one key: Load returns a configuration that validates, or
// an error, the usage's or the configuration's; never a panic.
func FuzzLoad(f *testing.F) {
	keys := Keys()
	for _, s := range []struct {
		yaml  string
		key   uint8
		value string
	}{
		{"server:\n  addr: \"127.0.0.1:9001\"\nstream:\n  retry: 5s\n", 0, ""},
		{"hub:\n  history_size: 500\nlog:\n  level: warn\n", 3, "7s"},
		{"auth:\n  subscribe_tokens: [a, b]\n", 10, "a,,b"},
		{"auth:\n  subscribe_tokens: &x\n", 10, "\"quoted\""},
		{"cors:\n  allowed_origins:\n    - http://a.test\n    - \"\"\n", 20, ","},
		{"nats:\n  stream: 0123\n", 30, " "},
		{"---\nserver: {}\n---\nx: 1\n", 1, "!x"},
		{"a: &a [*a]\n", 2, "*a"},
		{"server:\n  addr: !!int 1\n", 4, "1e400"},
		{"log: {level: debug, level: info}\n", 5, "0x10"},
		{"? [a]\n: b\n", 6, "-1"},
		{"auth:\n  jwt:\n    hmac_secret: \" x\"\n", 7, "  "},
		{"\ufeffserver:\n\taddr: x\n", 8, "9223372036854775808"},
		{"", 9, "true"},
	} {
		f.Add([]byte(s.yaml), s.key, s.value)
	}
	path := filepath.Join(f.TempDir(), "ssehub.yaml")
	f.Fuzz(func(t *testing.T, yaml []byte, key uint8, value string) {
		if err := os.WriteFile(path, yaml, 0o600); err != nil {
			t.Fatal(err)
		}
		name := EnvName(keys[int(key)%len(keys)])
		getenv := func(n string) string {
			if n == name {
				return value
			}
			return ""
		}
		c, err := Load([]string{"--config", path}, getenv)
		if err != nil {
			var help *HelpError
			if errors.As(err, &help) {
				t.Fatalf("the help, for a config file: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Load accepted a configuration that does not validate: %v", err)
		}
	})
}
