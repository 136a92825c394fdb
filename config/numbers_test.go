package config

import (
	"errors"
	"strings"
	"testing"
)

// TestLoadYAMLNumberForText checks that a text key, or a list item of one,
// that YAML reads as a number, a bool or a timestamp written otherwise
// than the text ssehub would take stops the start: nats.stream: 0123 ran
// on a stream named 83, and auth.jwt.audience: 123456789012345678901
// required the audience 1.2345678901234568e+20. So does an integer with a
// leading zero, which YAML reads as octal (010 is 8) where the variable
// SSEHUB_HUB_HISTORY_SIZE=010 is 10; written 0_10, YAML's octal too. The
// nats keys are checked where they are used (TestLoadUnusedNATSKeysInFile).
func TestLoadYAMLNumberForText(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{"hub:\n  broker: nats\nnats:\n  stream: 0123\n", `nats.stream: YAML reads 0123 as 83, not as the text "0123": quote it`},
		{"hub:\n  broker: nats\nnats:\n  subject_prefix: 1.50\n", `nats.subject_prefix: YAML reads 1.50 as 1.5, not as the text "1.50": quote it`},
		{"auth:\n  jwt:\n    hmac_secret: " + jwtSecret + "\n    audience: 123456789012345678901\n", `auth.jwt.audience: YAML reads 123456789012345678901 as 1.2345678901234568e+20`},
		{"hub:\n  broker: nats\nnats:\n  embedded: true\n  store_dir: 2024-01-01\n", `nats.store_dir: YAML reads 2024-01-01 as 2024-01-01 00:00:00 +0000 UTC, not as the text "2024-01-01": quote it`},
		{"cors:\n  allowed_headers: [X-A, 0x1F]\n", `cors.allowed_headers[1]: YAML reads 0x1F as 31, not as the text "0x1F": quote it`},
		{"hub:\n  history_size: 010\n", `hub.history_size: YAML reads 010 as the octal 8: write 8, or 10 without the leading zero`},
		// YAML drops an integer's underscores, so 0_10 is octal too; the
		// variable refuses it.
		{"hub:\n  history_size: 0_10\n", `hub.history_size: YAML reads 0_10 as the octal 8: write 8, or 10 without the leading zero`},
		// Too large for YAML's integers, it is a float to YAML: the error
		// said invalid integer "1e+20", not the digits written.
		{"hub:\n  history_size: 100000000000000000000\n", `hub.history_size: integer "100000000000000000000" is out of range`},
		{"stream:\n  max_streams: -1_000_000_000_000_000_000_000\n", `stream.max_streams: integer "-1_000_000_000_000_000_000_000" is out of range`},
		// In exponent form, an integer is a float to YAML: 1e3 was taken
		// as 1000, where a variable refuses it, and 1e6 was refused as
		// "1e+06".
		{"hub:\n  max_subscribers: 1e3\n", `hub.max_subscribers: invalid integer "1e3": write it in digits, 1000`},
		{"stream:\n  max_streams: 1e6\n", `stream.max_streams: invalid integer "1e6": write it in digits, 1000000`},
		{"hub:\n  max_event_bytes: 1.5\n", `hub.max_event_bytes: invalid integer "1.5"`},
		{"hub:\n  max_event_bytes: .inf\n", `hub.max_event_bytes: invalid integer ".inf"`},
		{"hub:\n  history_max_bytes: -00_1_0\n", `hub.history_max_bytes: YAML reads -00_1_0 as the octal -8: write -8, or -10 without the leading zero`},
	}
	for _, tt := range tests {
		_, err := Load([]string{"--config", writeYAML(t, tt.yaml)}, nil)
		if !errors.Is(err, ErrInvalidValue) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v\nwant it to contain %s", tt.yaml, err, tt.want)
		}
	}
	// Written as the text it stands for, a number is that text.
	cfg, err := Load([]string{"--config", writeYAML(t, "nats:\n  stream: 123\n  subject_prefix: 1.5\nhub:\n  history_size: 0x10\n  history_max_bytes: 1_000_000\ncors:\n  allowed_headers: [X-1]\n")}, nil)
	if err != nil || cfg.NATS.Stream != "123" || cfg.NATS.SubjectPrefix != "1.5" || cfg.Hub.HistorySize != 16 || cfg.Hub.HistoryMaxBytes != 1_000_000 {
		t.Errorf("err = %v, nats %+v, hub %+v", err, cfg.NATS, cfg.Hub)
	}
}
