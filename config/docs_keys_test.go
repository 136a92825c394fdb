package config

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// userDocs lists the files a user reads for the configuration, beside the
// README's table: the README itself, docs/, the example file, the compose
// files, the Dockerfile and the nginx files of deploy/.
func userDocs(t *testing.T) map[string]string {
	t.Helper()
	paths := []string{"../README.md", "ssehub.yaml", "../Dockerfile"}
	for _, glob := range []string{"../docs/*.md", "../docker-compose*.yml", "../deploy/*.conf"} {
		m, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, m...)
	}
	docs := map[string]string{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		docs[strings.TrimPrefix(p, "../")] = string(data)
	}
	return docs
}

// keyMention matches what reads as a dotted configuration key: a
// section's name, then names of lower-case letters, digits and _.
var keyMention = regexp.MustCompile(`(^|[^A-Za-z0-9_./@:-])((?:server|cors|stream|demo|log|hub|nats|auth)(?:\.[a-z0-9_]+)+)`)

// docTopics are the hub topics the docs give as examples under demo.>,
// whose names read as keys of the demo section. Add one here when the
// docs name another.
var docTopics = []string{"demo.chat", "demo.a.b"}

// TestDocsNameOnlyKeys keeps every dotted key the user's documents name a
// real one (or a section of some, server.tls): a key that is not, such
// as a timeout the docs tell the user about but nothing reads, would stop
// start-up when set, as an unknown key.
func TestDocsNameOnlyKeys(t *testing.T) {
	keys := Keys()
	known := func(name string) bool {
		if slices.Contains(keys, name) || slices.Contains(docTopics, name) {
			return true
		}
		for _, k := range keys {
			if strings.HasPrefix(k, name+".") {
				return true
			}
		}
		return false
	}
	files := map[string]bool{"go": true, "js": true, "sh": true, "conf": true, "md": true, "yml": true, "yaml": true, "io": true, "com": true}
	seen := 0
	for name, text := range userDocs(t) {
		for _, m := range keyMention.FindAllStringSubmatch(text, -1) {
			mention := m[2]
			if files[mention[strings.LastIndexByte(mention, '.')+1:]] {
				continue // a file or a host name: auth.go, nats.io
			}
			seen++
			if !known(mention) {
				t.Errorf("%s names %s, which is no configuration key (keys: config.Keys())", name, mention)
			}
		}
	}
	if seen < 100 {
		t.Errorf("the docs name %d keys, fewer than expected: is keyMention still right?", seen)
	}
}

// defaultMention matches a key followed by a parenthesis, in backticks
// or not: "`server.shutdown_timeout` (10 s)".
var defaultMention = regexp.MustCompile("`?((?:server|cors|stream|demo|log|hub|nats|auth)(?:\\.[a-z0-9_]+)+)`? \\(([^()\n]{1,40})\\)")

var (
	docDuration = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?) ?(ms|s|m|h)$`)
	docCount    = regexp.MustCompile(`^([0-9][0-9,]*)(?: [a-z]+)?$`)
	docBytes    = regexp.MustCompile(`^([0-9]+) (KiB|MiB)$`)
	docText     = regexp.MustCompile("^`([^`]*)`$")
)

// TestDocsGiveKeysTheirDefaults checks the defaults the user's documents
// give in passing, outside the README's table and the example file's
// values (which TestReadmeConfigTable and TestExampleFileIsDefault keep):
// a key followed by its value in parentheses, "`server.shutdown_timeout`
// (10 s)", "hub.history_size (10,000 events)", "`nats.stream`
// (`SSEHUB`)", "(default 64 MiB)" or "(10 s by default)". A parenthesis
// that gives a bound ("16 MiB at most", "up to 24 h") or a list of
// values is no default, and a size in bytes is taken for one only when
// it says "default".
func TestDocsGiveKeysTheirDefaults(t *testing.T) {
	checked := 0
	for name, text := range userDocs(t) {
		for _, m := range defaultMention.FindAllStringSubmatch(text, -1) {
			key, said := m[1], m[2]
			if !slices.Contains(Keys(), key) {
				continue // TestDocsNameOnlyKeys's
			}
			value, explicit := said, false
			if v, ok := strings.CutPrefix(value, "default "); ok {
				value, explicit = v, true
			}
			if v, ok := strings.CutSuffix(value, " by default"); ok {
				value, explicit = v, true
			}
			switch {
			case docText.MatchString(value):
				value = docText.FindStringSubmatch(value)[1]
			case docDuration.MatchString(value):
				d := docDuration.FindStringSubmatch(value)
				value = d[1] + d[2]
			case docCount.MatchString(value):
				value = strings.ReplaceAll(docCount.FindStringSubmatch(value)[1], ",", "")
			case explicit && docBytes.MatchString(value):
				b := docBytes.FindStringSubmatch(value)
				value = strconv.Itoa(mustInt(t, b[1]) << map[string]int{"KiB": 10, "MiB": 20}[b[2]])
			default:
				continue
			}
			checked++
			isDefault, err := loadsAsDefault(key, value)
			if err != nil {
				t.Errorf("%s gives %s (%s), which does not load: %v", name, key, said, err)
				continue
			}
			if !isDefault {
				t.Errorf("%s gives %s as (%s), but that is not its default", name, key, said)
			}
		}
	}
	if checked < 8 {
		t.Errorf("checked %d defaults given in passing, fewer than expected: is defaultMention still right?", checked)
	}
}
