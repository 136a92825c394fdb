package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
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

// TestLoadDurationAndBoolReadAsAVariable checks that a duration or a bool
// the file writes as a YAML number or bool means what the same text means
// in its variable, or is refused in both, naming the text written. YAML
// reads retry: 0.0, .0, 00 or 0x0 as the number 0, which was taken as 0s
// where SSEHUB_STREAM_RETRY refuses them; 0x10, 1_000 and 015 were refused
// as "16", "1000" and "13", none of them in the file; h2c: 0x1, 01 or 1.0
// turned HTTP/2 on where SSEHUB_SERVER_H2C refuses them.
func TestLoadDurationAndBoolReadAsAVariable(t *testing.T) {
	tests := []struct {
		section, key, value, want string // want: the error, or "" for none
	}{
		{"stream", "retry", "0.0", `stream.retry: invalid duration "0.0" (use a Go duration such as 15s or 1500ms)`},
		{"stream", "retry", ".0", `stream.retry: invalid duration ".0" (use a Go duration such as 15s or 1500ms)`},
		{"stream", "retry", "00", `stream.retry: invalid duration "00" (use a Go duration such as 15s or 1500ms)`},
		{"stream", "retry", "0x0", `stream.retry: invalid duration "0x0" (use a Go duration such as 15s or 1500ms)`},
		{"stream", "heartbeat_interval", "0x10", `stream.heartbeat_interval: invalid duration "0x10" (use a Go duration such as 15s or 1500ms)`},
		{"stream", "heartbeat_interval", "1_000", `stream.heartbeat_interval: invalid duration "1_000" (use a Go duration such as 15s or 1500ms)`},
		{"stream", "heartbeat_interval", "015", `stream.heartbeat_interval: invalid duration "015" (use a Go duration such as 15s or 1500ms)`},
		{"stream", "heartbeat_interval", "15.0", `stream.heartbeat_interval: invalid duration "15.0" (use a Go duration such as 15s or 1500ms)`},
		{"stream", "heartbeat_interval", "1e3", `stream.heartbeat_interval: invalid duration "1e3" (use a Go duration such as 15s or 1500ms)`},
		{"stream", "heartbeat_interval", "15", `stream.heartbeat_interval: invalid duration "15" (use a Go duration such as 15s or 1500ms)`},
		{"stream", "retry", "0", ""},
		{"stream", "retry", "-0", ""},
		{"server", "h2c", "0x1", `server.h2c: invalid bool "0x1" (use true or false)`},
		{"server", "h2c", "01", `server.h2c: invalid bool "01" (use true or false)`},
		{"server", "h2c", "1.0", `server.h2c: invalid bool "1.0" (use true or false)`},
		{"server", "h2c", "1_0", `server.h2c: invalid bool "1_0" (use true or false)`},
		{"server", "h2c", "1", ""},
		{"server", "h2c", "TRUE", ""},
	}
	for _, tt := range tests {
		key := tt.section + "." + tt.key
		path := writeYAML(t, tt.section+":\n  "+tt.key+": "+tt.value+"\n")
		fileCfg, fileErr := Load([]string{"--config", path}, nil)
		envCfg, envErr := Load([]string{"--config", os.DevNull}, env(map[string]string{EnvName(key): tt.value}))
		if tt.want == "" {
			if fileErr != nil || envErr != nil {
				t.Errorf("%s: %s: file: %v; variable: %v; want no error", key, tt.value, fileErr, envErr)
			} else if !reflect.DeepEqual(fileCfg, envCfg) {
				t.Errorf("%s: %s: the file and the variable give two configurations:\n%+v\n%+v", key, tt.value, fileCfg, envCfg)
			}
			continue
		}
		// The file's error names the file and the line, as the variable's names the variable.
		if want := fmt.Sprintf("%s %q: line 2: %s", ErrConfigFile, path, tt.want); fileErr == nil || fileErr.Error() != want {
			t.Errorf("%s: %s in the file: err = %v\nwant %s", key, tt.value, fileErr, want)
		}
		if want := tt.want + "; set by " + EnvName(key); envErr == nil || envErr.Error() != want {
			t.Errorf("%s=%s: err = %v\nwant %s", EnvName(key), tt.value, envErr, want)
		}
	}
}

// TestLoadIntegerReadAsAVariable checks that an integer means the same in
// the file and in its variable, or is refused in both. The file took
// 0x10, 0o17, 0b11 and 1_000 (YAML's integers) where the variable refused
// them, and 10_ (YAML drops the _) as 10; the variable took 010 as 10 and
// 09 as 9 where the file refused them, 09 as an integer "out of range".
func TestLoadIntegerReadAsAVariable(t *testing.T) {
	tests := []struct {
		value   string
		want    int    // the value both take, when fileErr and envErr are ""
		fileErr string // the error, the file's
		envErr  string // the error, SSEHUB_STREAM_MAX_STREAMS's
	}{
		{value: "0x4E20", want: 20000},
		{value: "0o47040", want: 20000},
		{value: "0b100111000100000", want: 20000},
		{value: "20_000", want: 20000},
		{value: "+20000", want: 20000},
		{value: "10_", fileErr: `stream.max_streams: invalid integer "10_"`, envErr: `stream.max_streams: invalid integer "10_"`},
		{
			value: "010", fileErr: `stream.max_streams: YAML reads 010 as the octal 8: write 8, or 10 without the leading zero`,
			envErr: `stream.max_streams: invalid integer "010": a leading zero, which YAML reads as the octal 8: write 10, or 8`,
		},
		{
			value: "0_10", fileErr: `stream.max_streams: YAML reads 0_10 as the octal 8`,
			envErr: `stream.max_streams: invalid integer "0_10": a leading zero, which YAML reads as the octal 8: write 10, or 8`,
		},
		{value: "09", fileErr: `stream.max_streams: invalid integer "09": a leading zero: write 9`, envErr: `stream.max_streams: invalid integer "09": a leading zero: write 9`},
		{value: "-09", fileErr: `stream.max_streams: invalid integer "-09": a leading zero: write -9`, envErr: `stream.max_streams: invalid integer "-09": a leading zero: write -9`},
		{value: "0xFFFFFFFFFFFFFFFF", fileErr: `stream.max_streams: integer "0xFFFFFFFFFFFFFFFF" is out of range`, envErr: `stream.max_streams: integer "0xFFFFFFFFFFFFFFFF" is out of range`},
	}
	for _, tt := range tests {
		vars := map[string]string{"SSEHUB_HUB_MAX_SUBSCRIBERS": "1"}
		fileCfg, fileErr := Load([]string{"--config", writeYAML(t, "stream:\n  max_streams: "+tt.value+"\n")}, env(vars))
		vars["SSEHUB_STREAM_MAX_STREAMS"] = tt.value
		envCfg, envErr := Load([]string{"--config", os.DevNull}, env(vars))
		if tt.fileErr == "" {
			if fileErr != nil || envErr != nil || fileCfg.Stream.MaxStreams != tt.want || envCfg.Stream.MaxStreams != tt.want {
				t.Errorf("%s: file: %d, %v; variable: %d, %v; want %d in both", tt.value, fileCfg.Stream.MaxStreams, fileErr, envCfg.Stream.MaxStreams, envErr, tt.want)
			}
			continue
		}
		if !errors.Is(fileErr, ErrInvalidValue) || !strings.Contains(fileErr.Error(), tt.fileErr) {
			t.Errorf("%s in the file: err = %v\nwant it to say %s", tt.value, fileErr, tt.fileErr)
		}
		if want := tt.envErr + "; set by SSEHUB_STREAM_MAX_STREAMS"; envErr == nil || envErr.Error() != want {
			t.Errorf("SSEHUB_STREAM_MAX_STREAMS=%s: err = %v\nwant %s", tt.value, envErr, want)
		}
	}
}

// TestLoadListGivenANumber checks that a list key the file gives a number
// or a bool alone is the list of that text, as the same text in its
// variable is: it was refused as "expected a list, got 42".
func TestLoadListGivenANumber(t *testing.T) {
	for _, value := range []string{"42", "true"} {
		fileCfg, fileErr := Load([]string{"--config", writeYAML(t, "cors:\n  exposed_headers: "+value+"\n")}, nil)
		envCfg, envErr := Load([]string{"--config", os.DevNull}, env(map[string]string{"SSEHUB_CORS_EXPOSED_HEADERS": value}))
		want := []string{value}
		if fileErr != nil || envErr != nil || !reflect.DeepEqual(fileCfg.CORS.ExposedHeaders, want) || !reflect.DeepEqual(envCfg.CORS.ExposedHeaders, want) {
			t.Errorf("%s: file: %q, %v; variable: %q, %v; want %q from both", value, fileCfg.CORS.ExposedHeaders, fileErr, envCfg.CORS.ExposedHeaders, envErr, want)
		}
	}
}

// TestLoadIntegerTaggedFloat checks that an integer key written in
// digits with YAML's own !!float tag is the integer written, as it is
// with !!int or !!str: it was refused with an empty message
// ("stream.max_streams: ").
func TestLoadIntegerTaggedFloat(t *testing.T) {
	cfg, err := Load([]string{"--config", writeYAML(t, "stream:\n  max_streams: !!float 20000\n")}, env(map[string]string{"SSEHUB_HUB_MAX_SUBSCRIBERS": "1"}))
	if err != nil || cfg.Stream.MaxStreams != 20000 {
		t.Errorf("max_streams: !!float 20000: %d, %v; want 20000", cfg.Stream.MaxStreams, err)
	}
}
