package config

import (
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/spf13/viper"
)

// TestExampleFileIsDefault keeps ssehub.yaml and Default in step: the
// documented example, loaded, is exactly the built-in defaults.
func TestExampleFileIsDefault(t *testing.T) {
	got, err := Load([]string{"--config", "ssehub.yaml"}, nil)
	if err != nil {
		t.Fatalf("Load(ssehub.yaml): %v", err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("ssehub.yaml differs from Default():\n got %+v\nwant %+v", got, want)
	}
	// With the memory broker the nats keys are not even parsed: load the
	// file again where they are used (usedEnv), and nats.store_dir too.
	for _, key := range []string{"nats.url", "nats.store_dir"} {
		env := usedEnv(key)
		getenv := func(name string) string { return env[name] }
		want, err := Load([]string{"--config", os.DevNull}, getenv)
		if err != nil {
			t.Fatalf("Load(defaults) with %v: %v", env, err)
		}
		got, err := Load([]string{"--config", "ssehub.yaml"}, getenv)
		if err != nil {
			t.Errorf("Load(ssehub.yaml) with %v: %v", env, err)
		} else if !reflect.DeepEqual(got, want) {
			t.Errorf("ssehub.yaml, with %v, differs from the defaults:\n got %+v\nwant %+v", env, got.NATS, want.NATS)
		}
	}
}

// TestExampleFileHasEveryKey checks that the documented example spells
// out every key, not just the ones whose default it would otherwise miss.
func TestExampleFileHasEveryKey(t *testing.T) {
	data, err := os.ReadFile("ssehub.yaml")
	if err != nil {
		t.Fatal(err)
	}
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(strings.NewReader(string(data))); err != nil {
		t.Fatal(err)
	}
	inFile := v.AllKeys()
	for _, key := range Keys() {
		if !slices.Contains(inFile, key) {
			t.Errorf("ssehub.yaml lacks key %s", key)
		}
	}
}

// TestFieldsCoverConfig checks that every field of Config has exactly one
// key, named after it (section.snake_case; a nested section such as
// server.tls or auth.jwt adds its own part), pointing at that field.
func TestFieldsCoverConfig(t *testing.T) {
	var c Config
	fields := c.fields()
	i := 0
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		for f := range v.NumField() {
			name := prefix + snake(v.Type().Field(f).Name)
			if fv := v.Field(f); fv.Kind() == reflect.Struct {
				walk(name+".", fv)
				continue
			}
			if i >= len(fields) {
				t.Fatalf("no key for %s", name)
			}
			got := fields[i]
			if got.key != name {
				t.Errorf("key %d = %s, want %s", i, got.key, name)
			}
			ptr := reflect.ValueOf(got.target)
			if ptr.Pointer() != v.Field(f).Addr().Pointer() || ptr.Type().Elem() != v.Field(f).Type() {
				t.Errorf("key %s points at the wrong field", got.key)
			}
			i++
		}
	}
	walk("", reflect.ValueOf(&c).Elem())
	if i != len(fields) {
		t.Errorf("%d keys for %d fields", len(fields), i)
	}
}

// snake turns a Go field name into the key spelling: CORS → cors,
// MaxAge → max_age, HMACSecret → hmac_secret.
func snake(name string) string {
	var b strings.Builder
	for i, r := range name {
		wordStart := i > 0 && unicode.IsUpper(r) &&
			(unicode.IsLower(rune(name[i-1])) || i+1 < len(name) && unicode.IsLower(rune(name[i+1])))
		if wordStart {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestEnvName(t *testing.T) {
	for key, want := range map[string]string{
		"server.addr":                     "SSEHUB_SERVER_ADDR",
		"cors.allowed_origins":            "SSEHUB_CORS_ALLOWED_ORIGINS",
		"hub.max_topics_per_subscription": "SSEHUB_HUB_MAX_TOPICS_PER_SUBSCRIPTION",
		"nats.publish_batching":           "SSEHUB_NATS_PUBLISH_BATCHING",
	} {
		if got := EnvName(key); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestSlogLevel(t *testing.T) {
	for level, want := range map[string]slog.Level{
		"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn,
		"error": slog.LevelError, "DEBUG": slog.LevelDebug, "": slog.LevelInfo,
	} {
		if got := (LogConfig{Level: level}).SlogLevel(); got != want {
			t.Errorf("SlogLevel(%q) = %v, want %v", level, got, want)
		}
	}
}

func TestLogJSON(t *testing.T) {
	if (LogConfig{Format: "text"}).JSON() || !(LogConfig{Format: "json"}).JSON() {
		t.Error("JSON() does not follow Format")
	}
}

// TestDefaultExposesTheHeadersSSEHubSends: a cross-origin page reads, by
// default, every header ssehub answers with that is not a simple one, and
// so why it got a 401 (WWW-Authenticate says invalid_token, an expired
// one, say, or no token).
func TestDefaultExposesTheHeadersSSEHubSends(t *testing.T) {
	for _, h := range []string{"Idempotent-Replayed", "Retry-After", "WWW-Authenticate"} {
		if !slices.Contains(Default().CORS.ExposedHeaders, h) {
			t.Errorf("cors.exposed_headers %q by default, want %s in it", Default().CORS.ExposedHeaders, h)
		}
	}
}
