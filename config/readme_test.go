package config

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// readmeRow matches a row of the README's configuration table: key,
// default and environment variable, each in backticks.
var readmeRow = regexp.MustCompile("^\\| `([a-z0-9_.]+)` \\| `([^`]*)` \\| `(SSEHUB_[A-Z0-9_]+)` \\|")

// TestReadmeConfigTable keeps the README's configuration table, the
// user's list of every key, in step with the code: one row per key, in
// the order of ssehub.yaml, with the key's environment variable, and a
// default that, given as that variable, loads as Default().
func TestReadmeConfigTable(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for line := range strings.SplitSeq(string(data), "\n") {
		m := readmeRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		key, def, env := m[1], m[2], m[3]
		keys = append(keys, key)
		if want := EnvName(key); env != want {
			t.Errorf("README: %s's variable is %s, want %s", key, env, want)
		}
		value := def
		if list, ok := strings.CutPrefix(def, "["); ok {
			value = strings.ReplaceAll(strings.TrimSuffix(list, "]"), ", ", ",")
			if value == "" {
				value = "," // an empty list, as the README says to write it
			}
		}
		value = strings.Trim(value, `"`)
		if value == "" {
			// An empty variable is unset: check the default itself.
			if !emptyDefault(key) {
				t.Errorf("README: %s's default is %s, but the built-in one is not empty", key, def)
			}
			continue
		}
		isDefault, err := loadsAsDefault(key, value)
		if err != nil {
			t.Errorf("README: %s's default %s does not load: %v", key, def, err)
			continue
		}
		if !isDefault {
			t.Errorf("README: %s's default %s is not the built-in one", key, def)
		}
	}
	if !reflect.DeepEqual(keys, Keys()) {
		t.Errorf("README's configuration table has the keys\n%v\nwant, in this order,\n%v", keys, Keys())
	}
}

// usedEnv returns the variables that make key used, and so checked: a
// nats key needs hub.broker: nats (with the memory broker its value is
// not even parsed, and a default written "one" would load as the
// built-in 1), and nats.store_dir the embedded server too.
func usedEnv(key string) map[string]string {
	switch {
	case key == "nats.store_dir":
		return map[string]string{"SSEHUB_HUB_BROKER": "nats", "SSEHUB_NATS_EMBEDDED": "true"}
	case strings.HasPrefix(key, "nats."):
		return map[string]string{"SSEHUB_HUB_BROKER": "nats"}
	}
	return nil
}

// loadsAsDefault loads value as key's variable, where key is used (see
// usedEnv), and reports whether the config is the one without it.
func loadsAsDefault(key, value string) (bool, error) {
	env := map[string]string{}
	maps.Copy(env, usedEnv(key))
	want, err := Load([]string{"--config", os.DevNull}, func(name string) string { return env[name] })
	if err != nil {
		return false, fmt.Errorf("without %s: %w", EnvName(key), err)
	}
	env[EnvName(key)] = value
	got, err := Load([]string{"--config", os.DevNull}, func(name string) string { return env[name] })
	if err != nil {
		return false, err
	}
	return reflect.DeepEqual(got, want), nil
}

// emptyDefault reports whether key's built-in default is the empty string.
func emptyDefault(key string) bool {
	c := Default()
	for _, f := range c.fields() {
		if f.key == key {
			s, ok := f.target.(*string)
			return ok && *s == ""
		}
	}
	return false
}

// TestReadmeYAMLExamplesLoad loads each of the README's YAML examples as a
// config file, its example files replaced by real ones: a user who copies
// one starts ssehub, not a config error.
func TestReadmeYAMLExamplesLoad(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cert, key := writeTLSPair(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	jwtKey := filepath.Join(t.TempDir(), "jwt.pem")
	if err := os.WriteFile(jwtKey, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	files := strings.NewReplacer(
		"/etc/ssehub/tls/fullchain.pem", cert,
		"/etc/ssehub/tls/privkey.pem", key,
		"keys/jwt.pem", jwtKey,
	)
	blocks := strings.Split(string(data), "\n```yaml\n")[1:]
	if len(blocks) == 0 {
		t.Fatal("README.md has no ```yaml block")
	}
	for i, block := range blocks {
		block, _, ok := strings.Cut(block, "\n```\n")
		if !ok {
			t.Fatalf("README.md: ```yaml block %d does not end", i)
		}
		path := writeYAML(t, files.Replace(block)+"\n")
		if _, err := Load([]string{"--config", path}, nil); err != nil {
			t.Errorf("README.md's ```yaml block %d does not load: %v\n%s", i, err, block)
		}
	}
}

// TestReadmeGoVersion keeps the Go version that "Run it" asks for the one
// go.mod requires, and the build image that "With Docker" names the
// Dockerfile's, of that Go release.
func TestReadmeGoVersion(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?m)^go ([0-9.]+)$`).FindSubmatch(mod)
	if want == nil {
		t.Fatal("go.mod has no go line")
	}
	got := regexp.MustCompile(`You need Go ([0-9.]+) or later`).FindSubmatch(readme)
	if got == nil {
		t.Fatal(`README: no "You need Go ... or later": update this test with the README`)
	}
	if string(got[1]) != string(want[1]) {
		t.Errorf("README asks for Go %s, go.mod for %s", got[1], want[1])
	}
	dockerfile, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	image := regexp.MustCompile(`(?m)^FROM (golang:([0-9]+\.[0-9]+)-alpine) AS build$`).FindSubmatch(dockerfile)
	if image == nil {
		t.Fatal("Dockerfile: no FROM golang:X.Y-alpine AS build: update this test with it")
	}
	if !strings.HasPrefix(string(want[1]), string(image[2])+".") {
		t.Errorf("Dockerfile builds with %s, go.mod requires Go %s", image[1], want[1])
	}
	if !strings.Contains(string(readme), "`"+string(image[1])+"`") {
		t.Errorf("README does not name the Dockerfile's build image, %s", image[1])
	}
}
