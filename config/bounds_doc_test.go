package config

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// docRange matches a range of values as the documentation writes one for a
// key: "1s to 24h", "0s–60s", "1-5", "1 to 10000000".
var docRange = regexp.MustCompile(`(?:^|[\s(])([0-9]+(?:ms|s|m|h)?)(?: to |–|-)([0-9]+(?:ms|s|m|h)?)(?:[\s).,;:]|$)`)

// boundsContext is what a key's bounds are checked with besides the key:
// settings without which its value would not be read (the nats keys are
// unchecked with the memory broker) or another rule would refuse it first
// (10000 ticker lines at 1s each pass demo.max_duration).
var boundsContext = map[string]map[string]string{
	"demo.ticker_count": {"SSEHUB_DEMO_TICKER_INTERVAL": "0s"},
	"nats.replicas":     {"SSEHUB_HUB_BROKER": "nats"},
}

// TestDocumentedBoundsAreEnforced keeps the ranges that the README's
// configuration table and the comments of ssehub.yaml give a key in step
// with validation: both ends of a documented range load, a value just
// outside either end stops start-up naming the key, and the two documents
// agree where both give a range.
func TestDocumentedBoundsAreEnforced(t *testing.T) {
	readme := readmeRanges(t)
	example := exampleRanges(t)
	for key, r := range example {
		if other, ok := readme[key]; ok && other != r {
			t.Errorf("%s: the README says %s–%s, ssehub.yaml %s-%s", key, other[0], other[1], r[0], r[1])
		}
	}
	// The keys with a range today: a range removed from either document,
	// or reworded so that this test no longer sees it, shows here.
	for _, key := range []string{
		"stream.heartbeat_interval", "stream.retry", "stream.write_timeout",
		"demo.ticker_count", "demo.ticker_interval", "hub.history_size",
		"nats.replicas", "auth.jwt.leeway",
	} {
		if _, ok := readme[key]; !ok {
			t.Errorf("README: the row of %s gives no range: update this test with the README", key)
		}
		if _, ok := example[key]; !ok {
			t.Errorf("ssehub.yaml: the comment of %s gives no range: update this test with it", key)
		}
	}
	for key, r := range readme {
		t.Run(key, func(t *testing.T) {
			checkBounds(t, key, r[0], r[1])
		})
	}
	for key, r := range example {
		if _, ok := readme[key]; !ok {
			t.Run(key, func(t *testing.T) {
				checkBounds(t, key, r[0], r[1])
			})
		}
	}
}

// checkBounds loads key at lo and hi, which must pass, and just below lo
// and just above hi, which must stop start-up naming key.
func checkBounds(t *testing.T, key, lo, hi string) {
	t.Helper()
	var below, above string
	if isDuration(lo) {
		l, h := mustDuration(t, lo), mustDuration(t, hi)
		below, above = (l - time.Millisecond).String(), (h + time.Millisecond).String()
	} else {
		l, h := mustInt(t, lo), mustInt(t, hi)
		below, above = strconv.Itoa(l-1), strconv.Itoa(h+1)
	}
	env := EnvName(key)
	load := func(value string) error {
		_, err := Load([]string{"--config", os.DevNull}, func(name string) string {
			if name == env {
				return value
			}
			return boundsContext[key][name]
		})
		return err
	}
	for _, value := range []string{lo, hi} {
		if err := load(value); err != nil {
			t.Errorf("%s=%s, documented as allowed, stops start-up: %v", env, value, err)
		}
	}
	for _, value := range []string{below, above} {
		err := load(value)
		if err == nil {
			t.Errorf("%s=%s, outside the documented %s to %s, loads", env, value, lo, hi)
		} else if !strings.Contains(err.Error(), key) {
			t.Errorf("%s=%s: the error does not name %s: %v", env, value, key, err)
		}
	}
}

// readmeRanges returns the range that the "what" cell of each row of the
// README's configuration table gives its key, if any.
func readmeRanges(t *testing.T) map[string][2]string {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ranges := map[string][2]string{}
	for line := range strings.SplitSeq(string(data), "\n") {
		m := readmeRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		cells := strings.Split(line, " | ")
		if len(cells) < 4 {
			continue
		}
		addRange(t, ranges, m[1], strings.Join(cells[3:], " | "), "README")
	}
	return ranges
}

// exampleRanges returns the range that the comment right above each key
// of ssehub.yaml gives it, if any.
func exampleRanges(t *testing.T) map[string][2]string {
	t.Helper()
	data, err := os.ReadFile("ssehub.yaml")
	if err != nil {
		t.Fatal(err)
	}
	keyLine := regexp.MustCompile(`^(\s*)([a-z0-9_]+):`)
	ranges := map[string][2]string{}
	var comment []string
	var sections []string // the sections that enclose the line, by depth
	for line := range strings.SplitSeq(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			comment = nil
		case strings.HasPrefix(trimmed, "#"):
			comment = append(comment, strings.TrimSpace(strings.TrimPrefix(trimmed, "#")))
		default:
			m := keyLine.FindStringSubmatch(line)
			if m == nil {
				comment = nil
				continue
			}
			depth := len(m[1]) / 2
			sections = append(sections[:min(depth, len(sections))], m[2])
			key := strings.Join(sections, ".")
			if len(sections) == 1 {
				comment = nil // a section's own comment is not a key's
				continue
			}
			addRange(t, ranges, key, strings.Join(comment, " "), "ssehub.yaml")
			comment = nil
		}
	}
	return ranges
}

// addRange records the one range that text gives key.
func addRange(t *testing.T, ranges map[string][2]string, key, text, doc string) {
	t.Helper()
	all := docRange.FindAllStringSubmatch(text, -1)
	switch len(all) {
	case 0:
	case 1:
		ranges[key] = [2]string{all[0][1], all[0][2]}
	default:
		t.Errorf("%s: %s gives %d ranges, %v: update this test to tell which is the key's", doc, key, len(all), all)
	}
}

func isDuration(s string) bool {
	return strings.TrimLeft(s, "0123456789") != ""
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(fmt.Errorf("a documented bound: %w", err))
	}
	return d
}

func mustInt(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(fmt.Errorf("a documented bound: %w", err))
	}
	return n
}
